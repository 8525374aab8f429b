//! The readers' store connections. Status, lists and token lookups run on up to [`READERS`]
//! connections at once (each one server backend, or one SQLite connection in WAL mode), opened
//! when needed and kept; the writer thread has its own. With one connection, a slow list
//! held up every status request behind it.

use std::sync::{Condvar, Mutex, PoisonError};

use crate::error::Error;
use crate::store::Store;
use crate::workdir::Workdir;

/// The most reader connections of one server.
pub(super) const READERS: usize = 4;

pub(super) struct Readers {
    wd: Workdir,
    /// Idle connections, and how many are open in all (idle or lent).
    state: Mutex<(Vec<Box<dyn Store>>, usize)>,
    returned: Condvar,
}

/// A connection lent by [`Readers::lend`]; it goes back when dropped (after a panic too: a
/// reader holds no transaction open between calls).
pub(super) struct Lease<'a> {
    readers: &'a Readers,
    store: Option<Box<dyn Store>>,
}

impl Lease<'_> {
    pub(super) fn store(&self) -> &dyn Store {
        self.store.as_deref().expect("lent until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let mut state = self.readers.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0.push(store);
            self.readers.returned.notify_one();
        }
    }
}

impl Readers {
    /// The pool, with `first` (already open) idle in it.
    pub(super) fn new(wd: &Workdir, first: Box<dyn Store>) -> Self {
        Self { wd: wd.clone(), state: Mutex::new((vec![first], 1)), returned: Condvar::new() }
    }

    /// An idle connection, a new one while fewer than [`READERS`] are open, or the next one
    /// returned.
    pub(super) fn lend(&self) -> Result<Lease<'_>, Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(store) = state.0.pop() {
                return Ok(Lease { readers: self, store: Some(store) });
            }
            if state.1 < READERS {
                state.1 += 1;
                drop(state);
                return match crate::store::open(&self.wd) {
                    Ok(store) => Ok(Lease { readers: self, store: Some(store) }),
                    Err(e) => {
                        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 -= 1;
                        Err(e)
                    }
                };
            }
            state = self.returned.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// How many connections are open (idle or lent).
    #[cfg(test)]
    fn opened(&self) -> usize {
        self.state.lock().unwrap().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_reused_and_at_most_readers_are_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let wd = Workdir::new(tmp.path());
        let readers = Readers::new(&wd, crate::store::open(&wd).unwrap());
        {
            let one = readers.lend().unwrap();
            assert!(one.store().suppliers().unwrap().is_empty());
        }
        assert_eq!(readers.opened(), 1, "the returned connection is lent again");
        let lent: Vec<Lease<'_>> = (0..READERS).map(|_| readers.lend().unwrap()).collect();
        assert_eq!(readers.opened(), READERS);
        std::thread::scope(|threads| {
            let waiting = threads.spawn(|| readers.lend().map(|l| l.store().teams().unwrap().len()));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiting.is_finished(), "a fifth reader waits for one to come back");
            drop(lent);
            assert_eq!(waiting.join().unwrap().unwrap(), 0);
        });
        assert_eq!(readers.opened(), READERS);
    }
}
