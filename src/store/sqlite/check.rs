//! `ferry check` and `ferry backup` on the embedded store: everything that can be wrong with
//! it, and a consistent copy of it.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::seal;
use crate::error::Error;
use crate::store::{INVARIANTS, StoreError};

pub(super) fn problems(conn: &Connection, workdir: &Path) -> rusqlite::Result<Vec<String>> {
    let db = workdir.join("ferry.db");
    let mut out: Vec<String> =
        seal::integrity_problems(conn, 100)?.into_iter().map(|p| format!("{}: {p}", db.display())).collect();
    if !out.is_empty() {
        // The rest reads tables that the integrity check found damaged.
        return Ok(out);
    }
    let mut fk = conn.prepare("PRAGMA foreign_key_check")?;
    let broken = fk.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1).ok(), r.get::<_, String>(2)?)))?;
    for row in broken {
        let (table, rowid, parent) = row?;
        out.push(format!(
            "{}: row {} of {table} refers to a missing row of {parent}",
            db.display(),
            rowid.map_or("?".to_owned(), |r| r.to_string())
        ));
    }
    for (what, sql) in INVARIANTS {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt
            .query_map([], |r| Ok(format!("{} {}", r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if !rows.is_empty() {
            out.push(crate::store::invariant_problem(&db.display().to_string(), what, &rows));
        }
    }
    if let Err(crate::error::Error::Damaged { message, .. }) = seal::verify(workdir, conn) {
        out.push(message);
    }
    Ok(out)
}

/// Copies the store to `dest` through SQLite's online backup, in one step (so the copy is one
/// consistent snapshot, whatever other processes commit meanwhile), to a temporary name that is
/// synced, checked and renamed.
pub(super) fn backup(conn: &Connection, dest: &Path) -> Result<(), Error> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "ferry.db".to_owned());
    let tmp = dest.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let at = |source: rusqlite::Error| StoreError { path: tmp.display().to_string(), error: source.into() };
    {
        let mut copy = Connection::open(&tmp).map_err(at)?;
        {
            let backup = rusqlite::backup::Backup::new(conn, &mut copy).map_err(at)?;
            // Every page in one step: one read transaction, one consistent state.
            loop {
                match backup.step(-1).map_err(at)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        // A copy with no WAL beside it: one file is the whole store.
        copy.pragma_update(None, "journal_mode", "DELETE").map_err(at)?;
        let problems = seal::integrity_problems(&copy, 5).map_err(at)?;
        if !problems.is_empty() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::damaged(
                format!("the copy of the store does not pass the integrity check: {}", problems.join("; ")),
                "the store itself is damaged: run `ferry check`",
            ));
        }
    }
    fs_err::File::open(&tmp)?.sync_all()?;
    fs_err::rename(&tmp, dest)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::workdir::sync_dir(parent)?;
    }
    Ok(())
}
