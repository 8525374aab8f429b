//! The seal: what ferry last knew of its store, kept beside it in `ferry.seal`, so that a store
//! changed behind ferry's back is checked before it is trusted, and a store older than its work
//! directory is refused.
//!
//! SQLite keeps no checksums of its pages, and `PRAGMA integrity_check` reads the whole file
//! (11 s for a store of 1,000,000 accounts, 790 MB, warm; 5 s for `quick_check`, which misses a
//! changed value in an indexed column). So the check runs only when it can find something: the
//! seal records the database file's length and modification time as ferry left them (after each
//! commit of a run and when the store is closed, with the WAL checkpointed into the file), and
//! opening a store whose file differs (a crash, a copy, a restore, bytes flipped on disk by
//! something that changed its modification time) runs the full integrity check first. A damaged
//! store is an exit-2 error naming `ferry.db`: no command reads or writes through it.
//!
//! The seal also records the highest audit row id ferry committed (the audit is append-only,
//! so its ids only grow). A store with fewer rows lost commits: `ferry.db` copied without
//! `ferry.db-wal` while ferry ran, or an older backup put back. Using it would create again
//! accounts that were created after it was copied, with new Kraken account numbers; it is
//! refused, with what to do.
//!
//! The seal is written to a temporary file and renamed, without fsync: after a power loss it
//! can only be older than the store, which makes ferry check more, never trust more.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rusqlite::Connection;

use crate::error::Error;

/// The file beside `ferry.db`.
pub(super) const SEAL: &str = "ferry.seal";

/// What ferry last knew of its store.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Seal {
    /// The database file's length and modification time (ns since the epoch) as ferry left it.
    pub db_bytes: u64,
    pub db_modified_ns: u128,
    /// The highest audit row id committed.
    pub audit_high: i64,
}

impl Seal {
    pub(super) fn read(workdir: &Path) -> Option<Seal> {
        let text = std::fs::read_to_string(workdir.join(SEAL)).ok()?;
        serde_json::from_str(text.trim()).ok()
    }

    /// Records the store as it is now; `audit_high` never goes down.
    pub(super) fn write(workdir: &Path, conn: &Connection) -> std::io::Result<()> {
        let (db_bytes, db_modified_ns) = file_state(&workdir.join("ferry.db"))?;
        let high = audit_high(conn).map_err(std::io::Error::other)?;
        let previous = Seal::read(workdir).map_or(0, |s| s.audit_high);
        let seal = Seal { db_bytes, db_modified_ns, audit_high: high.max(previous) };
        let tmp = workdir.join(format!(".{SEAL}.tmp"));
        std::fs::write(&tmp, serde_json::to_string(&seal).map_err(std::io::Error::other)? + "\n")?;
        std::fs::rename(&tmp, workdir.join(SEAL))
    }

    /// True when the database file is as this seal recorded it and no WAL is pending.
    fn matches(&self, db: &Path) -> bool {
        let wal_empty = std::fs::metadata(wal_path(db)).map_or(true, |m| m.len() == 0);
        file_state(db).is_ok_and(|(bytes, modified)| bytes == self.db_bytes && modified == self.db_modified_ns)
            && wal_empty
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn file_state(path: &Path) -> std::io::Result<(u64, u128)> {
    let meta = std::fs::metadata(path)?;
    let modified = meta.modified()?.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Ok((meta.len(), modified))
}

fn audit_high(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM audit", [], |r| r.get(0))
}

/// The problems `PRAGMA integrity_check` reports (none for a sound store), at most `limit`.
pub(super) fn integrity_problems(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA integrity_check({limit})"))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

/// Refuses a store that is damaged, or older than what ferry committed to it; checks integrity
/// only when the file is not as the seal left it.
pub(super) fn verify(workdir: &Path, conn: &Connection) -> Result<(), Error> {
    let db = workdir.join("ferry.db");
    let seal = Seal::read(workdir);
    if !seal.as_ref().is_some_and(|s| s.matches(&db)) {
        let problems = integrity_problems(conn, 5).map_err(|e| damaged(&db, &e.to_string()))?;
        if !problems.is_empty() {
            return Err(damaged(&db, &problems.join("; ")));
        }
    }
    let high = audit_high(conn).map_err(|e| damaged(&db, &e.to_string()))?;
    if let Some(seal) = seal
        && high < seal.audit_high
    {
        return Err(Error::damaged(
            format!(
                "{} is older than its work directory: ferry committed audit rows up to {} to it, and it holds \
                 rows up to {high}. It was copied without ferry.db-wal, or an older copy was put back",
                db.display(),
                seal.audit_high
            ),
            &format!(
                "nothing was done. Put back the complete store (ferry.db with its ferry.db-wal), or a copy made by \
                 `ferry backup`. To go on with this one anyway, knowing that accounts created after it was copied \
                 would be created again, delete {}",
                workdir.join(SEAL).display()
            ),
        ));
    }
    Ok(())
}

/// The error of a damaged store.
pub(super) fn damaged(db: &Path, what: &str) -> Error {
    Error::damaged(
        format!("{} is damaged: {what}", db.display()),
        "nothing was read or written through it. Put back a copy made by `ferry backup` (stop ferry, replace \
         ferry.db, remove ferry.db-wal and ferry.db-shm); `ferry check` lists what is wrong",
    )
}

/// True for the errors SQLite gives for a file that is not a sound database.
pub(super) fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_matches_only_the_file_it_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("ferry.db")).unwrap();
        conn.execute_batch("CREATE TABLE audit (id INTEGER PRIMARY KEY); INSERT INTO audit VALUES (7);").unwrap();
        Seal::write(dir.path(), &conn).unwrap();
        let seal = Seal::read(dir.path()).unwrap();
        assert_eq!(seal.audit_high, 7);
        assert!(seal.matches(&dir.path().join("ferry.db")));
        conn.execute_batch("INSERT INTO audit VALUES (8);").unwrap();
        assert!(!seal.matches(&dir.path().join("ferry.db")), "a change behind the seal");
        conn.execute_batch("DELETE FROM audit WHERE id = 8;").unwrap();
        Seal::write(dir.path(), &conn).unwrap();
        assert_eq!(Seal::read(dir.path()).unwrap().audit_high, 7, "the high-water mark never goes down");
    }
}
