//! The WAL checkpointer of create runs.

use super::*;

/// A thread with its own connection that checkpoints the WAL every few milliseconds, so that
/// the writer seldom stops to do it (a checkpoint was a sixth of the writer's time in create).
/// Passive checkpoints never block the writer. But the WAL starts again from its beginning
/// only when a write begins with every frame checkpointed, which a checkpoint running beside
/// a busy writer never achieves: the WAL grew by four times the data written (gigabytes for
/// 100,000 accounts) and the writer paid for the growing file. So every few chunks the writer
/// finishes the checkpoint itself (a few frames, one fsync) and the WAL starts again.
pub(super) struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    /// Accounts written since the writer last caught the checkpoint up.
    accounts: usize,
}

impl Checkpointer {
    const EVERY: Duration = Duration::from_millis(50);
    /// About 10 MB of WAL (8 full chunks): counted in accounts, not chunks, so that the small
    /// chunks of `ferry serve` do not catch up more often.
    const CATCH_UP_EVERY: usize = 320;

    /// Called by the writer after each chunk: every [`Self::CATCH_UP_EVERY`] accounts it
    /// checkpoints what the thread has not yet, so that the next write restarts the WAL.
    pub(super) fn chunk_written(&mut self, writer: &Connection, accounts: usize) {
        self.accounts += accounts;
        if self.accounts >= Self::CATCH_UP_EVERY {
            self.accounts = 0;
            // Busy (the thread is checkpointing) or failed: the next catch-up tries again.
            let _ = writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }

    pub(super) fn start(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Self::EVERY) {
                // A failed passive checkpoint only leaves the WAL longer: the writer's
                // connection checkpoints what is left when the run finishes.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        });
        Ok(Self { stop, thread, accounts: 0 })
    }

    pub(super) fn stop(self) {
        drop(self.stop);
        self.thread.join().expect("the checkpointer does not panic");
    }
}
