//! The embedded store: SQLite (bundled) in WAL mode with foreign keys on.
//!
//! By job: `migrations` (the schema, versioned), `checkpointer` (the WAL copied back on its own
//! thread), `stage` (the stage transaction), `create` (the create writer: chunks of accounts,
//! their records, intents and audit rows), `push` (what `ferry push` records); runs, processes, suppliers and teams are the
//! [`Store`] methods here.
//!
//! The schema is created and upgraded by [`MIGRATIONS`], applied in order, each in its own
//! transaction, and counted in SQLite's `user_version`; opening a store written by a newer
//! ferry fails instead of guessing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::{new_run_id, now};

use super::{
    AccountWritten, AuditRecord, CreateItem, CreateResult, Interrupted, MigrationStatus, OutcomeOf, Process,
    ProcessFilter, ProcessState, ProcessStatus, PushIntent, PushRecord, RemoteAccount, Run, RunStart, SkipRefused,
    StageRows, StageSnapshot, StagedRef, Store, StoreError, StoredHash, Supplier, Team, Token, parse_line_hash,
    records,
};

mod check;
mod checkpointer;
mod create;
mod migrations;
mod push;
mod seal;
mod stage;

use checkpointer::Checkpointer;
use create::{AccountWrite, insert_audit};
pub use migrations::MIGRATIONS;

/// The page cache of the store's connection, in MiB.
const CACHE_MIB: i64 = 64;
/// The page cache during a stage run's transaction, in MiB. That transaction is one long write
/// (a million accounts write about a gigabyte of pages), so it spills to the WAL whatever the
/// cache; a smaller one costs no time and keeps 48 MiB out of the run's peak.
const STAGE_CACHE_MIB: i64 = 16;

/// Sets the connection's page cache, in MiB.
fn set_cache(conn: &Connection, mib: i64) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cache_size", -mib * 1024)
}

/// The embedded store of one work directory.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    workdir: PathBuf,
    /// Migrations ran: the store changed although no row did.
    migrated: bool,
    /// The last staged version id taken inside the open stage transaction.
    last_version: Option<i64>,
    /// Copies the WAL into the database on its own thread while create writes chunks.
    checkpointer: Option<Checkpointer>,
    /// The statements create writes accounts with, made once per schema rather than per chunk.
    account_write: Option<AccountWrite>,
    /// When the seal was last written.
    sealed_at: std::cell::Cell<Option<std::time::Instant>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Its prepared statements are finalized while the connection is still open.
        self.account_write = None;
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
        // A store this process wrote to is left with its WAL copied back into ferry.db (so that
        // a copy of ferry.db alone, made while no ferry runs, is complete) and sealed as it is.
        // Failing either only makes the next open check more.
        if self.migrated || self.conn.total_changes() > 0 {
            let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            let _ = seal::Seal::write(&self.workdir, &self.conn);
        }
    }
}

impl SqliteStore {
    /// Opens `<workdir>/ferry.db`, creating the directory and the store on first use and
    /// applying any pending migrations.
    ///
    /// An existing store is refused (exit 2) when it is damaged or older than what ferry
    /// committed to it (see `seal.rs`); `verify: false` opens it anyway, for `ferry check`.
    pub fn open(workdir: &Path, verify: bool) -> Result<Self, crate::error::Error> {
        fs_err::create_dir_all(workdir)?;
        let path = workdir.join("ferry.db");
        let existed = path.exists();
        if !existed
            && verify
            && let Some(sealed) = seal::Seal::read(workdir).filter(|s| s.audit_high > 0)
        {
            return Err(crate::error::Error::damaged(
                format!(
                    "{} is missing, but ferry committed {} audit rows to it: this work directory's runs and \
                     staged files belong to a store that is gone",
                    path.display(),
                    sealed.audit_high
                ),
                "put back ferry.db (a copy made by `ferry backup`), or use a new --workdir; a new store here would \
                 create every account again",
            ));
        }
        let damage = |e: rusqlite::Error| -> crate::error::Error {
            if seal::is_damage(&e) {
                seal::damaged(&path, &e.to_string())
            } else {
                StoreError { path: path.display().to_string(), error: e.into() }.into()
            }
        };
        let err = |source: rusqlite::Error| StoreError { path: path.display().to_string(), error: source.into() };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(damage)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(damage)?;
        if verify && existed && version > 0 {
            seal::verify(workdir, &conn)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        // A create chunk writes many pages in one transaction: keep them in memory rather than
        // spilling them to the WAL before the commit.
        set_cache(&conn, CACHE_MIB).map_err(err)?;
        // The store's own statements and create's per-table id queries (about 30 record
        // tables): more than rusqlite's default 16, which would re-parse them. (The record
        // INSERTs are prepared by the store itself: see `statement`.)
        conn.set_prepared_statement_cache_capacity(128);
        // Savepoints (one per created account, when a create chunk is written again after a
        // failing account) journal to temporary storage: memory.
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(err)?;
        let mut store = Self {
            conn,
            path,
            workdir: workdir.to_owned(),
            migrated: false,
            last_version: None,
            checkpointer: None,
            account_write: None,
            sealed_at: std::cell::Cell::new(None),
        };
        store.migrate()?;
        if verify {
            store.reseal();
        }
        Ok(store)
    }

    /// Records the store as it is now in the seal (best effort: a seal that could not be written
    /// only makes the next open check more).
    fn reseal(&self) {
        let _ = seal::Seal::write(&self.workdir, &self.conn);
        self.sealed_at.set(Some(std::time::Instant::now()));
    }

    /// Reseals when the seal is more than a second old: after a create chunk, whose commit is
    /// not synced either (a seal only has to be no newer than the store; each reseal costs an
    /// fsync, and `ferry serve` commits small chunks all the time).
    fn reseal_now_and_then(&self) {
        if self.sealed_at.get().is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1)) {
            self.reseal();
        }
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError { path: self.path.display().to_string(), error: source.into() }
    }
}

fn err_at(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source: rusqlite::Error| StoreError { path: path.display().to_string(), error: source.into() }
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

/// A status column read as its enum: a value the CHECK constraint forbids (a damaged or
/// hand-edited store) is an error, never a default.
fn status_column<T>(r: &rusqlite::Row<'_>, column: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = r.get(column)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("{:?} is not a status this store allows", crate::text::escape(&text)).into(),
        )
    })
}

fn staged_ref(r: &rusqlite::Row<'_>) -> rusqlite::Result<StagedRef> {
    Ok(StagedRef {
        external_account_number: r.get(0)?,
        location: r.get(1)?,
        account_row: r.get::<_, i64>(2)? as u64,
        rows_hash: r.get(3)?,
        version: r.get(4)?,
    })
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token { name: r.get(0)?, role: r.get(1)?, created_at: r.get(2)?, revoked_at: r.get(3)? })
}

fn process_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Process> {
    Ok(Process {
        import_supplier: r.get(0)?,
        external_account_number: r.get(1)?,
        status: status_column(r, 2, ProcessStatus::parse)?,
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
                Ok(Supplier {
                    code: r.get(0)?,
                    status: status_column(r, 1, MigrationStatus::parse)?,
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
        let err = |source: rusqlite::Error| StoreError { path: path.clone(), error: source.into() };
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
        self.reseal();
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
                "SELECT p.import_supplier, p.external_account_number, p.status, v.payload_hash, p.kraken_account_number,
                     v.line_hash
                 FROM import_processes p LEFT JOIN staged_versions v ON v.id = p.current_version",
            )
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        while let Some(r) = rows.next().map_err(&err)? {
            let text = |i: usize| r.get_ref(i).and_then(|v| v.as_str().map_err(Into::into)).map_err(&err);
            let optional = |i: usize| r.get_ref(i).and_then(|v| v.as_str_or_null().map_err(Into::into)).map_err(&err);
            snapshot.insert_process(
                text(0)?,
                text(1)?,
                ProcessState {
                    status: status_column(r, 2, ProcessStatus::parse).map_err(&err)?,
                    payload_hash: optional(3)?.map(StoredHash::parse),
                    kraken_account_number: optional(4)?.map(Into::into),
                    line_hash: optional(5)?.and_then(parse_line_hash),
                },
            );
        }
        Ok(snapshot)
    }

    fn begin_stage(&mut self, _run_id: &str) -> Result<(), StoreError> {
        let err = err_at(&self.path);
        set_cache(&self.conn, STAGE_CACHE_MIB).map_err(&err)?;
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(&err)?;
        let last = self.conn.query_row("SELECT coalesce(max(id), 0) FROM staged_versions", [], |r| r.get(0));
        self.last_version = Some(last.map_err(&err)?);
        Ok(())
    }

    fn add_to_stage(&mut self, run_id: &str, rows: &StageRows) -> Result<(), StoreError> {
        let last = self.last_version.as_mut().expect("begin_stage opened the transaction");
        Self::stage_in(&self.conn, last, run_id, rows).map_err(err_at(&self.path))
    }

    fn commit_stage(&mut self, run_id: &str, files: &[(String, crate::ingest::WrittenFile)]) -> Result<(), StoreError> {
        let err = err_at(&self.path);
        {
            let mut insert = self
                .conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO staged_files (location, name, bytes, crc32) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(&err)?;
            for (location, f) in files {
                insert.execute(params![location, f.name, f.bytes as i64, i64::from(f.crc32)]).map_err(&err)?;
            }
        }
        self.conn.execute("UPDATE runs SET committed_at = ?2 WHERE id = ?1", params![run_id, now()]).map_err(&err)?;
        self.conn.execute_batch("COMMIT").map_err(&err)?;
        set_cache(&self.conn, CACHE_MIB).map_err(&err)?;
        self.last_version = None;
        self.reseal();
        Ok(())
    }

    fn staged_files(&self, location: &str) -> Result<Vec<crate::ingest::WrittenFile>, StoreError> {
        let err = err_at(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, bytes, crc32 FROM staged_files WHERE location = ?1 ORDER BY name")
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![location], |r| {
                Ok(crate::ingest::WrittenFile {
                    name: r.get(0)?,
                    bytes: r.get::<_, i64>(1)? as u64,
                    crc32: r.get::<_, i64>(2)? as u32,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn rollback_stage(&mut self) -> Result<(), StoreError> {
        self.last_version = None;
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK").map_err(err_at(&self.path))?;
        }
        set_cache(&self.conn, CACHE_MIB).map_err(err_at(&self.path))
    }

    fn run_audit(&self, run_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self.run_audit_page(run_id, None, i64::MAX as usize)?;
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    }

    fn run_audit_page(
        &self,
        run_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, AuditRecord)>, StoreError> {
        let err = err_at(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT run_id, operation, attempt, import_supplier, external_account_number, line, status_code,
                     error_code, body, kraken_account_number, started_at, finished_at, request_id, token_name,
                     staged_version, payload_hash, latency_ms, class, id
                 FROM audit WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )
            .map_err(&err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![run_id, after.unwrap_or(i64::MIN), limit], |r| {
                let record = AuditRecord {
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
                    request: create::tag(r.get(12)?, r.get(13)?),
                    push: push::detail(r.get(14)?, r.get(15)?, r.get(16)?, r.get(17)?),
                };
                Ok((r.get(18)?, record))
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

    fn processes_after(
        &self,
        supplier: &str,
        filter: ProcessFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Process>, StoreError> {
        let err = err_at(&self.path);
        let condition = match filter {
            ProcessFilter::All => "",
            ProcessFilter::Pending => "AND status = 'STAGED'",
            ProcessFilter::Imported => "AND status = 'IMPORTED'",
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {PROCESS_COLUMNS} FROM import_processes
                 WHERE import_supplier = ?1 AND (?2 IS NULL OR external_account_number > ?2) {condition}
                 ORDER BY external_account_number LIMIT ?3"
            ))
            .map_err(&err)?;
        let rows = stmt.query_map(params![supplier, after, limit as i64], process_row).map_err(&err)?;
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
        let to = match super::skip_target(status.as_deref().and_then(ProcessStatus::parse), skip) {
            Ok(to) => to,
            Err(refused) => return Ok(Err(refused)),
        };
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

    fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], token_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn add_token(&mut self, name: &str, role: &str, key_sha256: &str) -> Result<bool, StoreError> {
        let added = self
            .conn
            .execute(
                "INSERT INTO api_tokens (name, role, key_sha256, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![name, role, key_sha256, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(added == 1)
    }

    fn revoke_token(&mut self, name: &str) -> Result<bool, StoreError> {
        let revoked = self
            .conn
            .execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(revoked == 1)
    }

    fn token_by_key(&self, key_sha256: &str) -> Result<Option<Token>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT name, role, created_at, revoked_at FROM api_tokens
                 WHERE key_sha256 = ?1 AND revoked_at IS NULL",
            )
            .and_then(|mut s| s.query_row(params![key_sha256], token_row).optional())
            .map_err(|e| self.err(e))
    }

    fn problems(&self) -> Result<Vec<String>, StoreError> {
        check::problems(&self.conn, &self.workdir).map_err(|e| self.err(e))
    }

    fn backup(&self, dest: &Path) -> Result<(), crate::error::Error> {
        check::backup(&self.conn, dest)
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
                "SELECT p.external_account_number, v.location, v.account_row, v.rows_hash, v.id
                 FROM import_processes p JOIN staged_versions v ON v.id = p.current_version
                 WHERE p.import_supplier = ?1 AND p.status = 'STAGED'
                 ORDER BY v.location, v.account_row",
            )
            .map_err(&err)?;
        let rows = stmt.query_map(params![supplier], staged_ref).map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn pending_version(&self, supplier: &str, external: &str) -> Result<Option<StagedRef>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT p.external_account_number, v.location, v.account_row, v.rows_hash, v.id
                 FROM import_processes p JOIN staged_versions v ON v.id = p.current_version
                 WHERE p.import_supplier = ?1 AND p.external_account_number = ?2 AND p.status = 'STAGED'",
            )
            .and_then(|mut s| s.query_row(params![supplier, external], staged_ref).optional())
            .map_err(|e| self.err(e))
    }

    fn create_chunk(
        &mut self,
        schema: &crate::schema::Schema,
        run_id: &str,
        items: &[CreateItem<'_>],
        dry_run: bool,
        outcome: OutcomeOf<'_>,
    ) -> Result<Vec<CreateResult>, StoreError> {
        let results = self.write_create_chunk(schema, run_id, items, dry_run, outcome)?;
        if !dry_run {
            self.reseal_now_and_then();
        }
        Ok(results)
    }

    fn record_interrupted_creations(&mut self, interrupted: &Interrupted) -> Result<Vec<AuditRecord>, StoreError> {
        self.record_interrupted(interrupted)
    }

    fn append_audit(&mut self, rows: &[AuditRecord]) -> Result<(), StoreError> {
        let err = err_at(&self.path);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        for row in rows {
            insert_audit(&tx, row).map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    fn limit_cache(&mut self, mib: u32) -> Result<(), StoreError> {
        set_cache(&self.conn, i64::from(mib)).map_err(|e| self.err(e))
    }

    fn add_push_intents(&mut self, intents: &[PushIntent]) -> Result<(), StoreError> {
        push::add_intents(&mut self.conn, intents).map_err(err_at(&self.path))
    }

    fn push_intents(&self, target: &str) -> Result<Vec<PushIntent>, StoreError> {
        push::intents(&self.conn, target).map_err(err_at(&self.path))
    }

    fn record_push(&mut self, target: &str, records: &[PushRecord]) -> Result<(), StoreError> {
        push::record(&mut self.conn, target, records).map_err(err_at(&self.path))
    }

    fn remote_accounts(
        &self,
        target: Option<&str>,
        supplier: &str,
        between: Option<(&str, &str)>,
    ) -> Result<Vec<RemoteAccount>, StoreError> {
        push::remote_accounts(&self.conn, target, supplier, between).map_err(err_at(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_migrated_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path(), true).unwrap();
        assert_eq!(store.version().unwrap(), MIGRATIONS.len());
        assert_eq!(store.set_supplier_status("TENTACLE_ENERGY", MigrationStatus::Paused).unwrap(), None);
        assert_eq!(
            store.set_supplier_status("TENTACLE_ENERGY", MigrationStatus::Ongoing).unwrap(),
            Some(MigrationStatus::Paused)
        );
        assert!(store.add_team("A").unwrap());
        assert!(!store.add_team("A").unwrap(), "adding a team twice is a no-op");
        drop(store);
        let store = SqliteStore::open(dir.path(), true).unwrap();
        assert_eq!(store.suppliers().unwrap()[0].status, MigrationStatus::Ongoing);
        assert_eq!(store.teams().unwrap().len(), 1);
    }

    #[test]
    fn a_store_from_a_newer_ferry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path(), true).unwrap());
        let conn = Connection::open(dir.path().join("ferry.db")).unwrap();
        conn.pragma_update(None, "user_version", (MIGRATIONS.len() + 1) as i64).unwrap();
        drop(conn);
        assert!(SqliteStore::open(dir.path(), true).is_err());
    }
}
