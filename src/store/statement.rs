//! A prepared statement that binds text in place.
//!
//! rusqlite binds every string as `SQLITE_TRANSIENT`: SQLite copies it into memory it
//! allocates (under its allocator's mutex) and frees it when the parameter is bound again. Create
//! binds tens of millions of strings, and those copies were a ninth of its writer thread's
//! time. [`Statement`] binds them as `SQLITE_STATIC` instead: SQLite reads the caller's
//! bytes while the statement runs, and [`Statement::execute`] clears every binding before it
//! returns, so no pointer outlives the borrow it came from.

use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};

use rusqlite::{Connection, ffi};

/// One bound value, borrowing text instead of copying it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value<'a> {
    Null,
    Integer(i64),
    Text(&'a str),
}

/// A statement prepared on one connection, run with [`Statement::execute`]. It must be dropped
/// before its connection closes (the store clears its statements when it is dropped).
pub(super) struct Statement {
    db: *mut ffi::sqlite3,
    stmt: NonNull<ffi::sqlite3_stmt>,
    parameters: usize,
}

// SAFETY: the statement is used only through `execute`, which takes its connection, so it runs
// on whichever thread owns the connection (which is `Send`), never on two threads at once.
unsafe impl Send for Statement {}

impl Statement {
    /// Prepares `sql` (one statement) on `conn`, to be kept and run many times.
    pub(super) fn prepare(conn: &Connection, sql: &str) -> rusqlite::Result<Self> {
        let too_long = || failure(ffi::SQLITE_TOOBIG, format!("a statement of {} bytes", sql.len()));
        let len = c_int::try_from(sql.len()).map_err(|_| too_long())?;
        // SAFETY: the handle stays owned by `conn`; it is used for this call and for `execute`,
        // which checks that it is given the same connection.
        let db = unsafe { conn.handle() };
        let mut stmt = ptr::null_mut();
        // SAFETY: `sql` is valid for `len` bytes; SQLite writes the new statement to `stmt`.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(last_error(db, rc));
        }
        let stmt = NonNull::new(stmt).ok_or_else(|| failure(ffi::SQLITE_MISUSE, "an empty statement".to_owned()))?;
        // SAFETY: `stmt` is a live statement.
        let parameters = unsafe { ffi::sqlite3_bind_parameter_count(stmt.as_ptr()) } as usize;
        Ok(Self { db, stmt, parameters })
    }

    /// Binds `values` to the parameters in order and runs the statement to its end (it must
    /// return no rows). Text is read in place during the run; every binding is cleared after.
    pub(super) fn execute(&self, conn: &Connection, values: &[Value<'_>]) -> rusqlite::Result<()> {
        // SAFETY: only compared, never used.
        assert_eq!(unsafe { conn.handle() }, self.db, "a statement runs on the connection it was prepared on");
        if values.len() != self.parameters {
            return Err(rusqlite::Error::InvalidParameterCount(values.len(), self.parameters));
        }
        let stmt = self.stmt.as_ptr();
        let result = self.bind_and_step(values);
        // SAFETY: `stmt` is live. Reset ends the run; clearing the bindings drops every pointer
        // into `values` before the borrow ends. Their return codes repeat the step's error.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        result
    }

    fn bind_and_step(&self, values: &[Value<'_>]) -> rusqlite::Result<()> {
        let stmt = self.stmt.as_ptr();
        for (i, value) in values.iter().enumerate() {
            let index = (i + 1) as c_int;
            // SAFETY: `stmt` is live and `index` is within its parameters (counted above). Text
            // is bound SQLITE_STATIC: `execute` clears the binding before `values` is released.
            let rc = unsafe {
                match *value {
                    Value::Null => ffi::sqlite3_bind_null(stmt, index),
                    Value::Integer(v) => ffi::sqlite3_bind_int64(stmt, index, v),
                    Value::Text(t) => {
                        let len = c_int::try_from(t.len())
                            .map_err(|_| failure(ffi::SQLITE_TOOBIG, format!("a text of {} bytes", t.len())))?;
                        ffi::sqlite3_bind_text(stmt, index, t.as_ptr().cast(), len, ffi::SQLITE_STATIC())
                    }
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(last_error(self.db, rc));
            }
        }
        // SAFETY: `stmt` is live with every parameter bound.
        match unsafe { ffi::sqlite3_step(stmt) } {
            ffi::SQLITE_DONE => Ok(()),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            rc => Err(last_error(self.db, rc)),
        }
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement is live and is not used again.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

/// The error `rc`, with the connection's message.
fn last_error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is open; the message is copied before any other call on it.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }.to_string_lossy().into_owned();
    failure(rc, message)
}

fn failure(rc: c_int, message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a TEXT, b INTEGER, c TEXT NOT NULL)").unwrap();
        conn
    }

    #[test]
    fn text_bound_in_place_is_stored_and_the_statement_runs_again() {
        let conn = conn();
        let insert = Statement::prepare(&conn, "INSERT INTO t VALUES (?, ?, ?), (?, ?, ?)").unwrap();
        for round in 0..3 {
            // Each round's text lives only for the round: SQLite must have copied it into the row.
            let text: Vec<String> = (0..4).map(|i| format!("r{round}v{i}")).collect();
            let values = [
                Value::Text(&text[0]),
                Value::Integer(round),
                Value::Text(&text[1]),
                Value::Null,
                Value::Integer(-1),
                Value::Text(""),
            ];
            insert.execute(&conn, &values).unwrap();
        }
        let rows: Vec<(Option<String>, i64, String)> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[4], (Some("r2v0".to_owned()), 2, "r2v1".to_owned()));
        assert_eq!(rows[5], (None, -1, String::new()));
    }

    #[test]
    fn errors_carry_sqlite_code_and_message_and_leave_the_statement_usable() {
        let conn = conn();
        let insert = Statement::prepare(&conn, "INSERT INTO t VALUES (?, ?, ?)").unwrap();
        let err = insert.execute(&conn, &[Value::Text("a"), Value::Integer(1), Value::Null]).unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation), "{err}");
        assert!(err.to_string().contains("NOT NULL constraint failed: t.c"), "{err}");
        let err = insert.execute(&conn, &[Value::Null]).unwrap_err();
        assert!(matches!(err, rusqlite::Error::InvalidParameterCount(1, 3)), "{err}");
        insert.execute(&conn, &[Value::Text("a"), Value::Integer(1), Value::Text("c")]).unwrap();
        assert!(Statement::prepare(&conn, "INSERT INTO nowhere VALUES (1)").is_err());
        let count: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 1);
    }
}
