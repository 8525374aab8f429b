//! The embedded store: SQLite (bundled) in WAL mode with foreign keys on.
//!
//! The schema is created and upgraded by [`MIGRATIONS`], applied in order, each in its own
//! transaction, and counted in SQLite's `user_version`; opening a store written by a newer
//! ferry fails instead of guessing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::{new_run_id, now};
use crate::guide;

use super::{
    AuditRecord, CreateItem, CreateResult, MigrationStatus, NewVersion, Process, ProcessFilter, ProcessState,
    ProcessStatus, Run, RunStart, SkipRefused, StageSnapshot, StagedRef, Store, StoreError, Supplier, Team, records,
};

/// The store's schema, one step per version. Never edit a step that has shipped: add one.
pub const MIGRATIONS: &[&str] = &[
    // 1: suppliers, teams, import processes, staged versions, runs and the audit table.
    "
    CREATE TABLE import_suppliers (
        code        TEXT PRIMARY KEY,
        status      TEXT NOT NULL CHECK (status IN ('ONGOING', 'PAUSED', 'COMPLETE')),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE operations_teams (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        command     TEXT NOT NULL,
        pid         INTEGER NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        status      TEXT
    );
    CREATE TABLE import_processes (
        import_supplier         TEXT NOT NULL REFERENCES import_suppliers(code),
        external_account_number TEXT NOT NULL,
        status                  TEXT NOT NULL CHECK (status IN ('STAGED', 'SKIPPED', 'IMPORTED')),
        current_version         INTEGER,
        skip_reason             TEXT,
        kraken_account_number   TEXT UNIQUE,
        account_created_at      TEXT,
        created_at              TEXT NOT NULL,
        updated_at              TEXT NOT NULL,
        PRIMARY KEY (import_supplier, external_account_number)
    );
    CREATE TABLE staged_versions (
        id                      INTEGER PRIMARY KEY,
        import_supplier         TEXT NOT NULL,
        external_account_number TEXT NOT NULL,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        location                TEXT NOT NULL,
        payload_hash            TEXT NOT NULL,
        created_at              TEXT NOT NULL,
        FOREIGN KEY (import_supplier, external_account_number)
            REFERENCES import_processes(import_supplier, external_account_number)
    );
    CREATE TABLE audit (
        id                      INTEGER PRIMARY KEY,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        operation               TEXT NOT NULL CHECK (operation IN ('validate', 'stage', 'create')),
        attempt                 INTEGER NOT NULL,
        import_supplier         TEXT,
        external_account_number TEXT,
        line                    INTEGER,
        status_code             INTEGER NOT NULL,
        error_code              TEXT,
        body                    TEXT NOT NULL,
        kraken_account_number   TEXT,
        started_at              TEXT NOT NULL,
        finished_at             TEXT NOT NULL
    );
    CREATE INDEX audit_by_process ON audit (import_supplier, external_account_number, operation);
    ",
    // 2: run fingerprints and commit times, the staged row of each version, and the state
    // machine of spec/operations.md enforced by the database itself; the audit is append-only.
    "
    ALTER TABLE runs ADD COLUMN fingerprint TEXT;
    ALTER TABLE runs ADD COLUMN committed_at TEXT;
    ALTER TABLE runs ADD COLUMN args TEXT;
    ALTER TABLE runs ADD COLUMN parent TEXT REFERENCES runs(id);
    ALTER TABLE staged_versions ADD COLUMN account_row INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX staged_versions_by_run ON staged_versions (run_id);
    CREATE INDEX audit_by_run ON audit (run_id);
    CREATE TRIGGER import_process_starts_staged BEFORE INSERT ON import_processes
    WHEN NEW.status <> 'STAGED'
    BEGIN SELECT RAISE(ABORT, 'an import process starts STAGED'); END;
    CREATE TRIGGER import_process_transitions BEFORE UPDATE OF status ON import_processes
    WHEN NOT (
        (OLD.status = 'STAGED' AND NEW.status IN ('STAGED', 'SKIPPED', 'IMPORTED'))
        OR (OLD.status = 'SKIPPED' AND NEW.status = 'STAGED')
    )
    BEGIN SELECT RAISE(ABORT, 'import process transition not allowed'); END;
    CREATE TRIGGER import_process_versions BEFORE UPDATE OF current_version ON import_processes
    WHEN OLD.current_version IS NOT NEW.current_version AND (OLD.status <> 'STAGED' OR NEW.status <> 'STAGED')
    BEGIN SELECT RAISE(ABORT, 'only a STAGED import process takes a new staged version'); END;
    CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
    CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
    ",
    // 3: the creations in flight. A chunk's intents commit before its transaction begins and
    // are deleted by it; intents found later belong to an interrupted chunk, whose attempts
    // the next create records in the audit before it retries them.
    "
    CREATE TABLE create_intents (
        import_supplier         TEXT NOT NULL,
        external_account_number TEXT NOT NULL,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        attempt                 INTEGER NOT NULL,
        line                    INTEGER,
        started_at              TEXT NOT NULL,
        PRIMARY KEY (import_supplier, external_account_number)
    ) WITHOUT ROWID;
    ",
];

/// The embedded store of one work directory.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// The last staged version id taken inside the open stage transaction.
    last_version: Option<i64>,
    /// Copies the WAL into the database on its own thread while create writes chunks.
    checkpointer: Option<Checkpointer>,
    /// The statements create writes accounts with, made once per schema rather than per chunk.
    account_write: Option<AccountWrite>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Its prepared statements are finalized while the connection is still open.
        self.account_write = None;
    }
}

/// A thread with its own connection that checkpoints the WAL every few milliseconds, so that
/// the writer seldom stops to do it (a checkpoint was a sixth of the writer's time in create).
/// Passive checkpoints never block the writer. But the WAL starts again from its beginning
/// only when a write begins with every frame checkpointed, which a checkpoint running beside
/// a busy writer never achieves: the WAL grew by four times the data written (gigabytes for
/// 100,000 accounts) and the writer paid for the growing file. So every few chunks the writer
/// finishes the checkpoint itself (a few frames, one fsync) and the WAL starts again.
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    /// Chunks written since the writer last caught the checkpoint up.
    chunks: u32,
}

impl Checkpointer {
    const EVERY: Duration = Duration::from_millis(50);
    /// About 10 MB of WAL.
    const CATCH_UP_EVERY: u32 = 8;

    /// Called by the writer after each chunk: every [`Self::CATCH_UP_EVERY`] chunks it
    /// checkpoints what the thread has not yet, so that the next write restarts the WAL.
    fn chunk_written(&mut self, writer: &Connection) {
        self.chunks += 1;
        if self.chunks >= Self::CATCH_UP_EVERY {
            self.chunks = 0;
            // Busy (the thread is checkpointing) or failed: the next catch-up tries again.
            let _ = writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }

    fn start(path: &Path) -> rusqlite::Result<Self> {
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
        Ok(Self { stop, thread, chunks: 0 })
    }

    fn stop(self) {
        drop(self.stop);
        self.thread.join().expect("the checkpointer does not panic");
    }
}

impl SqliteStore {
    /// Opens `<workdir>/ferry.db`, creating the directory and the store on first use and
    /// applying any pending migrations.
    pub fn open(workdir: &Path) -> Result<Self, crate::error::Error> {
        fs_err::create_dir_all(workdir)?;
        let path = workdir.join("ferry.db");
        let err = |source| StoreError { path: path.display().to_string(), source };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        // A create chunk or a stage run writes many pages in one transaction: keep them in
        // memory (64 MiB) rather than spilling them to the WAL before the commit.
        conn.pragma_update(None, "cache_size", -65536).map_err(err)?;
        // The store's own statements and create's per-table id queries (about 30 record
        // tables): more than rusqlite's default 16, which would re-parse them. (The record
        // INSERTs are prepared by the store itself: see `statement`.)
        conn.set_prepared_statement_cache_capacity(128);
        // Savepoints (one per created account, when a create chunk is written again after a
        // failing account) journal to temporary storage: memory.
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(err)?;
        let mut store = Self { conn, path, last_version: None, checkpointer: None, account_write: None };
        store.migrate()?;
        Ok(store)
    }

    /// The attempt number and start time of each account of a create chunk. Unless it is a
    /// dry run, they are committed as the chunk's intents first, so that a kill before the
    /// chunk commits leaves a trace of the attempts it interrupted.
    fn begin_chunk(
        &mut self,
        run_id: &str,
        items: &[CreateItem<'_>],
        dry_run: bool,
    ) -> rusqlite::Result<Vec<(u32, String)>> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut attempts = Vec::with_capacity(items.len());
        for item in items {
            let attempt: u32 = tx
                .prepare_cached(
                    "SELECT count(*) + 1 FROM audit
                     WHERE import_supplier = ?1 AND external_account_number = ?2 AND operation = 'create'",
                )?
                .query_row(params![item.import_supplier, item.external_account_number], |r| r.get(0))?;
            let started_at = now();
            if !dry_run {
                tx.prepare_cached(
                    "INSERT INTO create_intents
                         (import_supplier, external_account_number, run_id, attempt, line, started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    item.import_supplier,
                    item.external_account_number,
                    run_id,
                    attempt,
                    item.line as i64,
                    started_at
                ])?;
            }
            attempts.push((attempt, started_at));
        }
        if dry_run {
            tx.rollback()?
        } else {
            tx.commit()?
        }
        Ok(attempts)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError { path: self.path.display().to_string(), source }
    }

    fn migrate(&mut self) -> Result<(), crate::error::Error> {
        let version = self.version()?;
        if version > MIGRATIONS.len() {
            return Err(crate::error::Error::usage(
                format!(
                    "{} was written by a newer ferry (schema version {version}; this one knows {})",
                    self.path.display(),
                    MIGRATIONS.len()
                ),
                Some("upgrade ferry, or use another --workdir"),
            ));
        }
        let path = self.path.display().to_string();
        let err = |source| StoreError { path: path.clone(), source };
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction().map_err(err)?;
            tx.execute_batch(step).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    /// The schema version of the open store.
    pub fn version(&self) -> Result<usize, StoreError> {
        let v: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.err(e))?;
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }
}

fn err_at(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError { path: path.display().to_string(), source }
}

const RUN_COLUMNS: &str = "id, command, fingerprint, pid, started_at, committed_at, finished_at, status, args, parent";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        command: r.get(1)?,
        fingerprint: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        pid: r.get(3)?,
        started_at: r.get(4)?,
        committed_at: r.get(5)?,
        finished_at: r.get(6)?,
        status: r.get(7)?,
        args: r.get(8)?,
        parent: r.get(9)?,
    })
}

const PROCESS_COLUMNS: &str = "import_supplier, external_account_number, status, current_version, skip_reason,
    kraken_account_number, account_created_at, created_at, updated_at,
    EXISTS (SELECT 1 FROM create_intents i WHERE i.import_supplier = import_processes.import_supplier
            AND i.external_account_number = import_processes.external_account_number)";

fn process_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Process> {
    let status: String = r.get(2)?;
    Ok(Process {
        import_supplier: r.get(0)?,
        external_account_number: r.get(1)?,
        status: ProcessStatus::parse(&status).unwrap_or(ProcessStatus::Staged),
        current_version: r.get(3)?,
        skip_reason: r.get(4)?,
        kraken_account_number: r.get(5)?,
        account_created_at: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        in_progress: r.get(9)?,
    })
}

impl Store for SqliteStore {
    fn suppliers(&self) -> Result<Vec<Supplier>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT code, status, updated_at FROM import_suppliers ORDER BY code")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let status: String = r.get(1)?;
                Ok(Supplier {
                    code: r.get(0)?,
                    status: MigrationStatus::parse(&status).unwrap_or(MigrationStatus::Ongoing),
                    updated_at: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn set_supplier_status(
        &mut self,
        code: &str,
        status: MigrationStatus,
    ) -> Result<Option<MigrationStatus>, StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let before: Option<String> = tx
            .query_row("SELECT status FROM import_suppliers WHERE code = ?1", params![code], |r| r.get(0))
            .optional()
            .map_err(err)?;
        let t = now();
        tx.execute(
            "INSERT INTO import_suppliers (code, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (code) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
            params![code, status.as_str(), t],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(before.as_deref().and_then(MigrationStatus::parse))
    }

    fn teams(&self) -> Result<Vec<Team>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, created_at FROM operations_teams ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok(Team { name: r.get(0)?, created_at: r.get(1)? })).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn add_team(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT INTO operations_teams (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn begin_run(
        &mut self,
        command: &str,
        fingerprint: &str,
        args: &str,
        parent: Option<&str>,
    ) -> Result<RunStart, StoreError> {
        let err = err_at(&self.path);
        let found = self
            .conn
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE fingerprint = ?1 AND command = ?2 AND finished_at IS NULL
                     ORDER BY id DESC LIMIT 1"
                ),
                params![fingerprint, command],
                run_row,
            )
            .optional()
            .map_err(&err)?;
        let pid = std::process::id();
        if let Some(mut run) = found {
            self.conn.execute("UPDATE runs SET pid = ?2 WHERE id = ?1", params![run.id, pid]).map_err(&err)?;
            run.pid = pid;
            return Ok(RunStart { run, resumed: true });
        }
        let run = Run {
            id: new_run_id(),
            command: command.to_owned(),
            fingerprint: fingerprint.to_owned(),
            pid,
            started_at: now(),
            committed_at: None,
            finished_at: None,
            status: None,
            args: Some(args.to_owned()),
            parent: parent.map(str::to_owned),
        };
        self.conn
            .execute(
                "INSERT INTO runs (id, command, fingerprint, pid, started_at, args, parent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run.id, run.command, run.fingerprint, run.pid, run.started_at, run.args, run.parent],
            )
            .map_err(&err)?;
        Ok(RunStart { run, resumed: false })
    }

    fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        self.conn
            .query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), params![id], run_row)
            .optional()
            .map_err(err_at(&self.path))
    }

    fn failed_in_run(&self, run_id: &str, codes: Option<&[String]>) -> Result<Vec<(String, String, u32)>, StoreError> {
        let err = err_at(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.import_supplier, a.external_account_number, a.status_code, a.error_code,
                     (SELECT count(*) FROM audit c WHERE c.operation = 'create'
                          AND c.import_supplier = a.import_supplier
                          AND c.external_account_number = a.external_account_number)
                 FROM audit a
                 WHERE a.run_id = ?1 AND a.operation = 'create' AND a.external_account_number IS NOT NULL
                   AND a.id = (SELECT max(b.id) FROM audit b WHERE b.run_id = a.run_id AND b.operation = 'create'
                                   AND b.import_supplier = a.import_supplier
                                   AND b.external_account_number = a.external_account_number)
                 ORDER BY a.id",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u16>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, u32>(4)?,
                ))
            })
            .map_err(&err)?;
        let mut out = Vec::new();
        for row in rows {
            let (supplier, ext, status, code, attempts) = row.map_err(&err)?;
            let wanted = codes.is_none_or(|c| code.as_ref().is_some_and(|code| c.contains(code)));
            if status >= 400 && wanted {
                out.push((supplier, ext, attempts));
            }
        }
        Ok(out)
    }

    fn unfinished_runs(&self) -> Result<Vec<Run>, StoreError> {
        let err = err_at(&self.path);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NULL ORDER BY id"))
            .map_err(&err)?;
        let rows = stmt.query_map([], run_row).map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn finish_run(&mut self, run_id: &str, status: &str) -> Result<(), StoreError> {
        let err = err_at(&self.path);
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
            self.conn.pragma_update(None, "wal_autocheckpoint", 1000).map_err(&err)?;
        }
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(&err)?;
        self.conn
            .execute("UPDATE runs SET finished_at = ?2, status = ?3 WHERE id = ?1", params![run_id, now(), status])
            .map_err(&err)?;
        Ok(())
    }

    fn stage_snapshot(&self) -> Result<StageSnapshot, StoreError> {
        let err = err_at(&self.path);
        let mut snapshot = StageSnapshot::default();
        for s in self.suppliers()? {
            snapshot.suppliers.insert(s.code, s.status);
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.import_supplier, p.external_account_number, p.status, v.payload_hash, p.kraken_account_number
                 FROM import_processes p LEFT JOIN staged_versions v ON v.id = p.current_version",
            )
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        while let Some(r) = rows.next().map_err(&err)? {
            let status: String = r.get(2).map_err(&err)?;
            snapshot.processes.insert(
                (r.get(0).map_err(&err)?, r.get(1).map_err(&err)?),
                ProcessState {
                    status: ProcessStatus::parse(&status).unwrap_or(ProcessStatus::Staged),
                    payload_hash: r.get(3).map_err(&err)?,
                    kraken_account_number: r.get(4).map_err(&err)?,
                },
            );
        }
        Ok(snapshot)
    }

    fn begin_stage(&mut self, _run_id: &str) -> Result<(), StoreError> {
        let err = err_at(&self.path);
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(&err)?;
        let last = self.conn.query_row("SELECT coalesce(max(id), 0) FROM staged_versions", [], |r| r.get(0));
        self.last_version = Some(last.map_err(&err)?);
        Ok(())
    }

    fn add_to_stage(&mut self, run_id: &str, versions: &[NewVersion], audit: &[AuditRecord]) -> Result<(), StoreError> {
        let last = self.last_version.as_mut().expect("begin_stage opened the transaction");
        Self::stage_in(&self.conn, last, run_id, versions, audit).map_err(err_at(&self.path))
    }

    fn commit_stage(&mut self, run_id: &str) -> Result<(), StoreError> {
        let err = err_at(&self.path);
        self.conn.execute("UPDATE runs SET committed_at = ?2 WHERE id = ?1", params![run_id, now()]).map_err(&err)?;
        self.conn.execute_batch("COMMIT").map_err(&err)?;
        self.last_version = None;
        Ok(())
    }

    fn rollback_stage(&mut self) -> Result<(), StoreError> {
        self.last_version = None;
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("ROLLBACK").map_err(err_at(&self.path))
    }

    fn run_audit(&self, run_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let err = err_at(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, operation, attempt, import_supplier, external_account_number, line, status_code,
                     error_code, body, kraken_account_number, started_at, finished_at
                 FROM audit WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![run_id], |r| {
                Ok(AuditRecord {
                    run_id: r.get(0)?,
                    operation: r.get(1)?,
                    attempt: r.get(2)?,
                    import_supplier: r.get(3)?,
                    external_account_number: r.get(4)?,
                    line: r.get::<_, Option<i64>>(5)?.map(|l| l as u64),
                    status_code: r.get(6)?,
                    error_code: r.get(7)?,
                    body: r.get(8)?,
                    kraken_account_number: r.get(9)?,
                    started_at: r.get(10)?,
                    finished_at: r.get(11)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn process(&self, supplier: &str, external: &str) -> Result<Option<Process>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {PROCESS_COLUMNS} FROM import_processes
                     WHERE import_supplier = ?1 AND external_account_number = ?2"
                ),
                params![supplier, external],
                process_row,
            )
            .optional()
            .map_err(err_at(&self.path))
    }

    fn processes(&self, supplier: &str, filter: ProcessFilter) -> Result<Vec<Process>, StoreError> {
        let err = err_at(&self.path);
        let condition = match filter {
            ProcessFilter::All => "",
            ProcessFilter::Pending => "AND status = 'STAGED'",
            ProcessFilter::Imported => "AND status = 'IMPORTED'",
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {PROCESS_COLUMNS} FROM import_processes WHERE import_supplier = ?1 {condition}
                 ORDER BY external_account_number"
            ))
            .map_err(&err)?;
        let rows = stmt.query_map(params![supplier], process_row).map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn set_skipped(
        &mut self,
        supplier: &str,
        external: &str,
        skip: bool,
        reason: Option<&str>,
    ) -> Result<Result<(), SkipRefused>, StoreError> {
        let err = err_at(&self.path);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM import_processes WHERE import_supplier = ?1 AND external_account_number = ?2",
                params![supplier, external],
                |r| r.get(0),
            )
            .optional()
            .map_err(&err)?;
        let Some(status) = status.as_deref().and_then(ProcessStatus::parse) else {
            return Ok(Err(SkipRefused::Unknown));
        };
        let (from, to) = if skip {
            (ProcessStatus::Staged, ProcessStatus::Skipped)
        } else {
            (ProcessStatus::Skipped, ProcessStatus::Staged)
        };
        if status != from {
            return Ok(Err(SkipRefused::From(status)));
        }
        tx.execute(
            "UPDATE import_processes SET status = ?3, skip_reason = ?4, updated_at = ?5
             WHERE import_supplier = ?1 AND external_account_number = ?2",
            params![supplier, external, to.as_str(), if skip { reason } else { None }, now()],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(Ok(()))
    }

    fn run_versions(&self, run_id: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM staged_versions WHERE run_id = ?1", params![run_id], |r| r.get(0))
            .map_err(err_at(&self.path))?;
        Ok(n as u64)
    }

    fn staged_locations(&self) -> Result<Vec<String>, StoreError> {
        let err = err_at(&self.path);
        let mut stmt =
            self.conn.prepare("SELECT DISTINCT location FROM staged_versions ORDER BY location").map_err(&err)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn ensure_record_tables(&mut self, schema: &crate::schema::Schema) -> Result<(), StoreError> {
        let err = err_at(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        records::ensure_tables(&tx, schema).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    fn pending_versions(&self, supplier: &str) -> Result<Vec<StagedRef>, StoreError> {
        let err = err_at(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.external_account_number, v.location, v.account_row
                 FROM import_processes p JOIN staged_versions v ON v.id = p.current_version
                 WHERE p.import_supplier = ?1 AND p.status = 'STAGED'
                 ORDER BY v.location, v.account_row",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![supplier], |r| {
                Ok(StagedRef {
                    external_account_number: r.get(0)?,
                    location: r.get(1)?,
                    account_row: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn create_chunk(
        &mut self,
        schema: &crate::schema::Schema,
        run_id: &str,
        items: &[CreateItem<'_>],
        dry_run: bool,
    ) -> Result<Vec<CreateResult>, StoreError> {
        let path = self.path.clone();
        let err = err_at(&path);
        // A chunk commit is atomic and survives a kill of the process without an fsync (WAL);
        // the fsync of every chunk (half the wall time of a create) is paid once, when the
        // run finishes (`finish_run` syncs). Power loss before then can lose the last chunks
        // whole (their accounts are STAGED again, with no records), never half of one.
        self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(&err)?;
        if !dry_run && self.checkpointer.is_none() {
            self.conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(&err)?;
            self.checkpointer = Some(Checkpointer::start(&self.path).map_err(&err)?);
        }
        let attempts = self.begin_chunk(run_id, items, dry_run).map_err(&err)?;
        // Fast path: the chunk's accounts in one transaction, with no savepoint per account
        // (a savepoint copies every page an account touches into its journal first: an eighth
        // of the writer's time). If an account's records fail to write, the chunk is rolled
        // back whole and written again account by account, each in its own savepoint, so that
        // the failing account never takes the others with it.
        let results = match self.write_chunk(schema, run_id, items, &attempts, dry_run, Isolation::Chunk) {
            Err(ChunkError::AccountFailed) => {
                self.write_chunk(schema, run_id, items, &attempts, dry_run, Isolation::Account)
            }
            written => written,
        };
        if let Some(checkpointer) = &mut self.checkpointer {
            checkpointer.chunk_written(&self.conn);
        }
        results.map_err(|e| match e {
            ChunkError::Store(source) => err(source),
            ChunkError::AccountFailed => unreachable!("an account-isolated chunk reports failed accounts as outcomes"),
        })
    }

    fn record_interrupted_creations(&mut self) -> Result<Vec<AuditRecord>, StoreError> {
        let err = err_at(&self.path);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        let body = guide::creation_interrupted();
        let finished_at = now();
        let rows: Vec<AuditRecord> = {
            let mut stmt = tx
                .prepare(
                    "SELECT run_id, attempt, import_supplier, external_account_number, line, started_at
                     FROM create_intents ORDER BY run_id, started_at, external_account_number",
                )
                .map_err(&err)?;
            stmt.query_map([], |r| {
                Ok(AuditRecord {
                    run_id: r.get(0)?,
                    operation: "create".to_owned(),
                    attempt: r.get(1)?,
                    import_supplier: r.get(2)?,
                    external_account_number: r.get(3)?,
                    line: r.get::<_, Option<i64>>(4)?.map(|l| l as u64),
                    status_code: guide::Code::CreationInterrupted.status().code(),
                    error_code: Some(INTERRUPTED.to_owned()),
                    body: body.clone(),
                    kraken_account_number: None,
                    started_at: r.get(5)?,
                    finished_at: finished_at.clone(),
                })
            })
            .map_err(&err)?
            .collect::<Result<_, _>>()
            .map_err(&err)?
        };
        for row in &rows {
            insert_audit(&tx, row).map_err(&err)?;
        }
        tx.execute("DELETE FROM create_intents", []).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(rows)
    }

    fn append_audit(&mut self, rows: &[AuditRecord]) -> Result<(), StoreError> {
        let err = err_at(&self.path);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        for row in rows {
            insert_audit(&tx, row).map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }
}

/// The error code of a creation that a kill interrupted.
pub const INTERRUPTED: &str = guide::Code::CreationInterrupted.as_str();

/// A new Kraken account number: `A-` and 8 random uppercase hex digits.
fn new_account_number() -> String {
    format!("A-{:08X}", rand::random::<u32>())
}

/// A create outcome that did not create: `code` with its guide body.
fn refused(code: guide::Code, body: String, attempt: u32) -> CreateResult {
    CreateResult {
        status: code.status().code(),
        error_code: Some(code.as_str().to_owned()),
        body,
        kraken_account_number: None,
        attempt,
    }
}

/// How a chunk's accounts are kept apart when one of them fails to write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// One transaction for the chunk: a failing account aborts the chunk.
    Chunk,
    /// A savepoint per account: a failing account is undone alone and becomes a 400.
    Account,
}

/// Why a chunk was not written.
enum ChunkError {
    /// An account's records failed under [`Isolation::Chunk`]; the chunk is rolled back.
    AccountFailed,
    Store(rusqlite::Error),
}

impl From<rusqlite::Error> for ChunkError {
    fn from(e: rusqlite::Error) -> Self {
        ChunkError::Store(e)
    }
}

impl SqliteStore {
    /// Writes one create chunk: every account's records and process, and its audit row, in
    /// one transaction, committed (or rolled back for a dry run, or on any error).
    fn write_chunk(
        &mut self,
        schema: &crate::schema::Schema,
        run_id: &str,
        items: &[CreateItem<'_>],
        attempts: &[(u32, String)],
        dry_run: bool,
        isolation: Isolation,
    ) -> Result<Vec<CreateResult>, ChunkError> {
        if self.account_write.as_ref().is_none_or(|w| w.schema_hash != schema.hash) {
            self.account_write = None;
            self.account_write = Some(AccountWrite::new(&self.conn, schema)?);
        }
        let write = self.account_write.as_ref().expect("made above");
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let written = match isolation {
            Isolation::Chunk => write.together(&tx, items)?,
            Isolation::Account => {
                items.iter().map(|item| write.alone(&tx, item, dry_run)).collect::<rusqlite::Result<_>>()?
            }
        };
        let mut results = Vec::with_capacity(items.len());
        for ((item, &(attempt, ref started_at)), written) in items.iter().zip(attempts).zip(written) {
            let result = written.outcome(item, attempt, dry_run);
            if !dry_run {
                insert_audit(
                    &tx,
                    &AuditRecord {
                        run_id: run_id.to_owned(),
                        operation: "create".to_owned(),
                        attempt,
                        import_supplier: Some(item.import_supplier.to_owned()),
                        external_account_number: Some(item.external_account_number.to_owned()),
                        line: Some(item.line),
                        status_code: result.status,
                        error_code: result.error_code.clone(),
                        body: result.body.clone(),
                        kraken_account_number: result.kraken_account_number.clone(),
                        started_at: started_at.clone(),
                        finished_at: now(),
                    },
                )?;
            }
            results.push(result);
        }
        if !dry_run {
            tx.prepare_cached("DELETE FROM create_intents WHERE run_id = ?1")?.execute(params![run_id])?;
        }
        crate::workdir::failpoint("create-chunk");
        if dry_run {
            tx.rollback()?
        } else {
            tx.commit()?
        }
        Ok(results)
    }
}

/// The statements every account of a chunk is written with, for one schema.
struct AccountWrite {
    schema_hash: String,
    inserts: records::Inserts,
    /// Whether an account number is in use.
    taken_sql: String,
}

/// How one account of a chunk came out of its write.
enum Written {
    /// Its process is IMPORTED and its records are written (kept unless it is a dry run).
    Created { number: String },
    /// The staged data fails the rules now: the validate 400 body. Nothing was written.
    Invalid(String),
    /// The process is no longer STAGED. Nothing was written.
    NotStaged,
    /// Its records could not be written, and what was written of it is undone.
    Rejected(rusqlite::Error),
}

impl AccountWrite {
    fn new(conn: &Connection, schema: &crate::schema::Schema) -> rusqlite::Result<Self> {
        Ok(Self {
            schema_hash: schema.hash.clone(),
            inserts: records::Inserts::new(conn, schema)?,
            taken_sql: format!(
                "SELECT EXISTS (SELECT 1 FROM import_processes WHERE kraken_account_number = ?1)
                     OR EXISTS (SELECT 1 FROM {} WHERE kraken_account_number = ?1)",
                records::table_name(&schema.tables[0].name)
            ),
        })
    }

    /// Draws an account number not in use and marks the account's process IMPORTED with it
    /// (and the creation time); `None` if the process is no longer STAGED.
    fn claim(&self, tx: &Connection, item: &CreateItem<'_>) -> rusqlite::Result<Option<(String, String)>> {
        // A number is random; on the rare collision with one already taken, draw again.
        let mut number = new_account_number();
        for _ in 0..8 {
            if !tx.prepare_cached(&self.taken_sql)?.query_row(params![number], |r| r.get::<_, bool>(0))? {
                break;
            }
            number = new_account_number();
        }
        let created_at = now();
        let staged = tx
            .prepare_cached(
                "UPDATE import_processes SET status = 'IMPORTED', kraken_account_number = ?3,
                     account_created_at = ?4, updated_at = ?4
                 WHERE import_supplier = ?1 AND external_account_number = ?2 AND status = 'STAGED'",
            )?
            .execute(params![item.import_supplier, item.external_account_number, number, created_at])?;
        Ok((staged == 1).then_some((number, created_at)))
    }

    /// Writes every account of a chunk at once, its records in multi-row INSERTs
    /// ([`Isolation::Chunk`]). Any account that fails aborts the chunk.
    fn together(&self, tx: &Connection, items: &[CreateItem<'_>]) -> Result<Vec<Written>, ChunkError> {
        let mut claimed = Vec::with_capacity(items.len());
        for item in items {
            claimed.push(match &item.invalid {
                Some(_) => None,
                None => self.claim(tx, item).map_err(|_| ChunkError::AccountFailed)?,
            });
        }
        // The accounts of one window share its tables (a chunk normally lies in one window).
        let mut start = 0;
        for group in items.chunk_by(|a, b| std::ptr::eq(a.tables, b.tables)) {
            let accounts: Vec<records::NewAccount<'_>> = group
                .iter()
                .zip(&claimed[start..])
                .filter_map(|(item, claim)| {
                    let (number, created_at) = claim.as_ref()?;
                    Some(records::NewAccount { row: item.account, kraken_account_number: number, created_at })
                })
                .collect();
            records::insert_accounts(tx, &self.inserts, group[0].tables, &accounts)
                .map_err(|_| ChunkError::AccountFailed)?;
            start += group.len();
        }
        let written: Vec<Written> = items
            .iter()
            .zip(claimed)
            .map(|(item, claim)| match (&item.invalid, claim) {
                (Some(body), _) => Written::Invalid(body.clone()),
                (None, Some((number, _))) => Written::Created { number },
                (None, None) => Written::NotStaged,
            })
            .collect();
        if items.iter().zip(&written).any(|(item, w)| matches!(w, Written::Created { .. }) && fails_on_purpose(item)) {
            return Err(ChunkError::AccountFailed);
        }
        Ok(written)
    }

    /// Writes one account inside a savepoint ([`Isolation::Account`]): a failure, or a dry
    /// run, undoes this account only.
    fn alone(&self, tx: &Connection, item: &CreateItem<'_>, dry_run: bool) -> rusqlite::Result<Written> {
        if let Some(body) = &item.invalid {
            return Ok(Written::Invalid(body.clone()));
        }
        tx.prepare_cached("SAVEPOINT account")?.execute([])?;
        let written = (|| {
            let Some((number, created_at)) = self.claim(tx, item)? else {
                return Ok(Written::NotStaged);
            };
            let account =
                records::NewAccount { row: item.account, kraken_account_number: &number, created_at: &created_at };
            records::insert_accounts(tx, &self.inserts, item.tables, &[account])?;
            if fails_on_purpose(item) {
                return Err(rusqlite::Error::InvalidQuery);
            }
            Ok(Written::Created { number })
        })()
        .unwrap_or_else(Written::Rejected);
        if dry_run || !matches!(written, Written::Created { .. }) {
            tx.prepare_cached("ROLLBACK TO account")?.execute([])?;
        }
        tx.prepare_cached("RELEASE account")?.execute([])?;
        Ok(written)
    }
}

/// Tests fail one chosen account after its records are written.
fn fails_on_purpose(item: &CreateItem<'_>) -> bool {
    crate::workdir::failpoint_for("create-account-fails", item.external_account_number)
}

impl Written {
    /// The create outcome.
    fn outcome(self, item: &CreateItem<'_>, attempt: u32, dry_run: bool) -> CreateResult {
        match self {
            Written::Invalid(body) => CreateResult {
                status: 400,
                error_code: Some(crate::outcome::FAILED_VALIDATION.to_owned()),
                body,
                kraken_account_number: None,
                attempt,
            },
            Written::NotStaged => {
                refused(guide::Code::NotStaged, guide::no_longer_staged(item.external_account_number), attempt)
            }
            Written::Rejected(e) => {
                refused(guide::Code::RecordRejected, guide::record_rejected(&e.to_string()), attempt)
            }
            Written::Created { .. } if dry_run => {
                refused(guide::Code::DryRunRolledBack, guide::dry_run_rolled_back(), attempt)
            }
            Written::Created { number } => CreateResult {
                status: guide::Status::Created.code(),
                error_code: None,
                body: guide::created(&number),
                kraken_account_number: Some(number),
                attempt,
            },
        }
    }
}

fn insert_audit(conn: &Connection, a: &AuditRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (run_id, operation, attempt, import_supplier, external_account_number, line,
             status_code, error_code, body, kraken_account_number, started_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        a.run_id,
        a.operation,
        a.attempt,
        a.import_supplier,
        a.external_account_number,
        a.line.map(|l| l as i64),
        a.status_code,
        a.error_code,
        a.body,
        a.kraken_account_number,
        a.started_at,
        a.finished_at
    ])?;
    Ok(())
}

impl SqliteStore {
    fn stage_in(
        tx: &Connection,
        last_version: &mut i64,
        run_id: &str,
        versions: &[NewVersion],
        audit: &[AuditRecord],
    ) -> rusqlite::Result<()> {
        let t = now();
        let mut supplier = tx.prepare_cached(
            "INSERT INTO import_suppliers (code, status, created_at, updated_at) VALUES (?1, 'ONGOING', ?2, ?2)
             ON CONFLICT (code) DO NOTHING",
        )?;
        // One upsert per process, pointing at the version inserted next (its id chosen here,
        // inside the write transaction). Updating a SKIPPED or IMPORTED process would be
        // refused by the state machine's triggers.
        let mut process = tx.prepare_cached(
            "INSERT INTO import_processes (import_supplier, external_account_number, status, current_version,
                 created_at, updated_at)
             VALUES (?1, ?2, 'STAGED', ?3, ?4, ?4)
             ON CONFLICT (import_supplier, external_account_number) DO UPDATE
             SET status = 'STAGED', current_version = excluded.current_version, updated_at = excluded.updated_at",
        )?;
        let mut version = tx.prepare_cached(
            "INSERT INTO staged_versions (id, import_supplier, external_account_number, run_id, location, account_row,
                 payload_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut seen = std::collections::HashSet::new();
        for v in versions {
            if seen.insert(v.import_supplier.as_str()) {
                supplier.execute(params![v.import_supplier, t])?;
            }
            *last_version += 1;
            process.execute(params![v.import_supplier, v.external_account_number, *last_version, t])?;
            version.execute(params![
                *last_version,
                v.import_supplier,
                v.external_account_number,
                run_id,
                v.location,
                v.account_row as i64,
                v.payload_hash,
                t
            ])?;
        }
        for a in audit {
            insert_audit(tx, a)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_migrated_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.version().unwrap(), MIGRATIONS.len());
        assert_eq!(store.set_supplier_status("TENTACLE_ENERGY", MigrationStatus::Paused).unwrap(), None);
        assert_eq!(
            store.set_supplier_status("TENTACLE_ENERGY", MigrationStatus::Ongoing).unwrap(),
            Some(MigrationStatus::Paused)
        );
        assert!(store.add_team("A").unwrap());
        assert!(!store.add_team("A").unwrap(), "adding a team twice is a no-op");
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.suppliers().unwrap()[0].status, MigrationStatus::Ongoing);
        assert_eq!(store.teams().unwrap().len(), 1);
    }

    #[test]
    fn a_store_from_a_newer_ferry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("ferry.db")).unwrap();
        conn.pragma_update(None, "user_version", (MIGRATIONS.len() + 1) as i64).unwrap();
        drop(conn);
        assert!(SqliteStore::open(dir.path()).is_err());
    }
}
