//! [`PgStore`]: the [`Store`] trait on PostgreSQL. The statements are the embedded store's,
//! in PostgreSQL's dialect; where several machines change what one machine owned alone, the
//! difference is said where it is made:
//!
//! - a stage run holds the store's stage lock (a session advisory lock) from its snapshot to its
//!   commit or rollback, so that stage runs on any machine decide against what the others
//!   committed, one after another, and an account has one current version;
//! - each connection owns its creations in flight through a session advisory lock of its own
//!   ([`OWNER_CLASS`]): a starting worker records as interrupted only the intents whose owner is
//!   gone, never those of a worker that is still creating them;
//! - a create chunk takes one creation slot per account it creates ([`super::SLOT_CLASS`]), so
//!   that every instance on the store together has at most 40 creations in flight.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{Connection, Target};
use crate::clock::{new_run_id, now};
use crate::store::{
    AuditRecord, CreateItem, CreateResult, Failure, Interrupted, LineSeen, MigrationStatus, OutcomeOf, Process,
    ProcessFilter, ProcessState, ProcessStatus, PushDetail, PushIntent, PushRecord, RemoteAccount, RequestTag, Run,
    RunStart, SkipRefused, StageRows, StageSnapshot, StagedRef, Store, StoreError, StoredHash, Supplier, Team, Token,
    parse_line_hash,
};

/// The advisory-lock key space of the owners of creations in flight (one key per connection).
pub(super) const OWNER_CLASS: i32 = 7423;
/// The key space of the store-wide locks: the stage lock is key 0.
const STORE_LOCK_CLASS: i32 = 7422;
/// How long a create chunk waits for creation slots before it gives up.
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A PostgreSQL store.
pub struct PgStore {
    conn: Connection,
    /// This connection's owner key (its session holds the advisory lock `(OWNER_CLASS, owner)`).
    owner: i32,
    /// Prepared statements by text, for this connection.
    statements: RefCell<HashMap<String, tokio_postgres::Statement>>,
    /// The record tables' statements, for the schema of this hash.
    records: Option<super::records::RecordWrite>,
    /// The stage lock is held (from the stage snapshot to the commit or rollback).
    stage_locked: std::cell::Cell<bool>,
    /// Where this store is, for the second connection.
    target: Target,
    /// A second connection of this process, with an owner key of its own, that writes half of
    /// each large create chunk at the same time as this one ([`PARALLEL_FROM`]); made on first use.
    helper: Option<Box<PgStore>>,
}

/// Create chunks of at least this many accounts are written in two halves at once, on two
/// connections: one server backend runs one statement at a time, and a worker that waits for
/// it leaves the other cores idle. Each half takes its own creation slots, so a chunk of 40
/// still holds at most 40.
const PARALLEL_FROM: usize = 16;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PgStore {
    /// Connects, applies pending migrations and takes an owner key.
    pub fn open(target: &Target) -> Result<Self, crate::error::Error> {
        let conn = Connection::open(target)?;
        conn.migrate()?;
        let mut owner = None;
        for _ in 0..64 {
            let candidate = (rand::random::<u32>() >> 1).max(1) as i32;
            let row =
                conn.wait(conn.client().query_one("SELECT pg_try_advisory_lock($1, $2)", &[&OWNER_CLASS, &candidate]))?;
            if row.get::<_, bool>(0) {
                owner = Some(candidate);
                break;
            }
        }
        let owner = owner.ok_or_else(|| conn.err(Failure::Data("no free owner key after 64 draws".into())))?;
        Ok(Self {
            conn,
            owner,
            statements: RefCell::default(),
            records: None,
            stage_locked: Default::default(),
            target: target.clone(),
            helper: None,
        })
    }

    fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, StoreError> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.conn.wait(self.conn.client().prepare(sql))?;
        self.statements.borrow_mut().insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub(super) fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        self.conn.wait(self.conn.client().query(&s, params))
    }

    fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        let s = self.statement(sql)?;
        self.conn.wait(self.conn.client().query_opt(&s, params))
    }

    pub(super) fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        self.conn.wait(self.conn.client().execute(&s, params))
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.conn.wait(self.conn.client().batch_execute(sql))
    }

    /// The one row `sql` answers, if any, read with `read`.
    fn row<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        read: fn(&Row) -> Result<T, String>,
    ) -> Result<Option<T>, StoreError> {
        let row = self.query_opt(sql, params)?;
        row.map(|r| read(&r).map_err(|e| self.conn.err(Failure::Data(e)))).transpose()
    }

    /// Reads rows with `read`, turning a conversion failure into a store error.
    fn rows<T>(&self, rows: Vec<Row>, read: fn(&Row) -> Result<T, String>) -> Result<Vec<T>, StoreError> {
        rows.iter().map(|r| read(r).map_err(|e| self.conn.err(Failure::Data(e)))).collect()
    }

    /// Appends audit rows in one statement (column arrays), in order.
    fn insert_audits(&self, rows: &[AuditRecord]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&AuditRecord) -> Option<&str>| rows.iter().map(f).collect::<Vec<Option<&str>>>();
        let run_id = col(|a| Some(a.run_id.as_str()));
        let operation = col(|a| Some(a.operation.as_str()));
        let attempt: Vec<i32> = rows.iter().map(|a| a.attempt as i32).collect();
        let supplier = col(|a| a.import_supplier.as_deref());
        let external = col(|a| a.external_account_number.as_deref());
        let line: Vec<Option<i64>> = rows.iter().map(|a| a.line.map(|l| l as i64)).collect();
        let status: Vec<i32> = rows.iter().map(|a| i32::from(a.status_code)).collect();
        let error_code = col(|a| a.error_code.as_deref());
        let body = col(|a| Some(a.body.as_str()));
        let number = col(|a| a.kraken_account_number.as_deref());
        let started_at = col(|a| Some(a.started_at.as_str()));
        let finished_at = col(|a| Some(a.finished_at.as_str()));
        let request_id = col(|a| a.request.as_ref().map(|r| r.id.as_str()));
        let token = col(|a| a.request.as_ref().map(|r| r.token.as_str()).filter(|t| !t.is_empty()));
        let staged_version: Vec<Option<i64>> =
            rows.iter().map(|a| a.push.as_ref().and_then(|p| p.staged_version)).collect();
        let payload_hash = col(|a| a.push.as_ref().map(|p| p.payload_hash.as_str()));
        let latency: Vec<Option<i64>> = rows.iter().map(|a| a.push.as_ref().map(|p| p.latency_ms as i64)).collect();
        let class = col(|a| a.push.as_ref().map(|p| p.class.as_str()));
        self.execute(
            "INSERT INTO audit (run_id, operation, attempt, import_supplier, external_account_number, line,
                 status_code, error_code, body, kraken_account_number, started_at, finished_at,
                 request_id, token_name, staged_version, payload_hash, latency_ms, class)
             SELECT r, o, a, s, e, l, c, ec, b, n, sa, fa, ri, t, sv, ph, lm, cl
             FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::bigint[],
                         $7::integer[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                         $13::text[], $14::text[], $15::bigint[], $16::text[], $17::bigint[], $18::text[])
                 WITH ORDINALITY AS u(r, o, a, s, e, l, c, ec, b, n, sa, fa, ri, t, sv, ph, lm, cl, k)
             ORDER BY k",
            &[
                &run_id,
                &operation,
                &attempt,
                &supplier,
                &external,
                &line,
                &status,
                &error_code,
                &body,
                &number,
                &started_at,
                &finished_at,
                &request_id,
                &token,
                &staged_version,
                &payload_hash,
                &latency,
                &class,
            ],
        )?;
        Ok(())
    }

    /// Runs `body` in a transaction on this store's connection.
    fn transaction<T>(&self, body: impl FnOnce(&Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.conn.transaction(|_| body(self))
    }

    fn release_stage_lock(&mut self) -> Result<(), StoreError> {
        if self.stage_locked.replace(false) {
            self.execute("SELECT pg_advisory_unlock($1, 0)", &[&STORE_LOCK_CLASS])?;
        }
        Ok(())
    }
}

fn text(r: &Row, i: usize) -> Result<String, String> {
    r.try_get(i).map_err(|e| e.to_string())
}

fn opt_text(r: &Row, i: usize) -> Result<Option<String>, String> {
    r.try_get(i).map_err(|e| e.to_string())
}

/// A status column read as its enum: a value the CHECK constraint forbids is an error.
fn status<T>(r: &Row, i: usize, parse: fn(&str) -> Option<T>) -> Result<T, String> {
    let t = text(r, i)?;
    parse(&t).ok_or_else(|| format!("{:?} is not a status this store allows", crate::text::escape(&t)))
}

fn int(r: &Row, i: usize) -> Result<i64, String> {
    r.try_get(i).map_err(|e| e.to_string())
}

fn opt_int(r: &Row, i: usize) -> Result<Option<i64>, String> {
    r.try_get(i).map_err(|e| e.to_string())
}

fn int4(r: &Row, i: usize) -> Result<i32, String> {
    r.try_get(i).map_err(|e| e.to_string())
}

const RUN_COLUMNS: &str = "id, command, fingerprint, pid, started_at, committed_at, finished_at, status, args, parent";

fn run_row(r: &Row) -> Result<Run, String> {
    Ok(Run {
        id: text(r, 0)?,
        command: text(r, 1)?,
        fingerprint: opt_text(r, 2)?.unwrap_or_default(),
        pid: int(r, 3)? as u32,
        started_at: text(r, 4)?,
        committed_at: opt_text(r, 5)?,
        finished_at: opt_text(r, 6)?,
        status: opt_text(r, 7)?,
        args: opt_text(r, 8)?,
        parent: opt_text(r, 9)?,
    })
}

const PROCESS_COLUMNS: &str = "import_supplier, external_account_number, status, current_version, skip_reason,
    kraken_account_number, account_created_at, created_at, updated_at,
    EXISTS (SELECT 1 FROM create_intents i WHERE i.import_supplier = import_processes.import_supplier
            AND i.external_account_number = import_processes.external_account_number)";

fn process_row(r: &Row) -> Result<Process, String> {
    Ok(Process {
        import_supplier: text(r, 0)?,
        external_account_number: text(r, 1)?,
        status: status(r, 2, ProcessStatus::parse)?,
        current_version: opt_int(r, 3)?,
        skip_reason: opt_text(r, 4)?,
        kraken_account_number: opt_text(r, 5)?,
        account_created_at: opt_text(r, 6)?,
        created_at: text(r, 7)?,
        updated_at: text(r, 8)?,
        in_progress: r.try_get(9).map_err(|e| e.to_string())?,
    })
}

fn token_row(r: &Row) -> Result<Token, String> {
    Ok(Token { name: text(r, 0)?, role: text(r, 1)?, created_at: text(r, 2)?, revoked_at: opt_text(r, 3)? })
}

fn staged_ref(r: &Row) -> Result<StagedRef, String> {
    Ok(StagedRef {
        external_account_number: text(r, 0)?,
        location: text(r, 1)?,
        account_row: int(r, 2)? as u64,
        rows_hash: opt_text(r, 3)?,
        version: int(r, 4)?,
    })
}

fn tag(id: Option<String>, token: Option<String>) -> Option<RequestTag> {
    Some(RequestTag { id: id?, token: token.unwrap_or_default() })
}

const AUDIT_COLUMNS: &str = "run_id, operation, attempt, import_supplier, external_account_number, line, status_code,
    error_code, body, kraken_account_number, started_at, finished_at, request_id, token_name,
    staged_version, payload_hash, latency_ms, class, id";

fn audit_row(r: &Row) -> Result<(i64, AuditRecord), String> {
    let push = opt_text(r, 15)?.map(|payload_hash| PushDetail {
        staged_version: opt_int(r, 14).ok().flatten(),
        payload_hash,
        latency_ms: opt_int(r, 16).ok().flatten().unwrap_or_default().max(0) as u64,
        class: opt_text(r, 17).ok().flatten().unwrap_or_default(),
    });
    let record = AuditRecord {
        run_id: text(r, 0)?,
        operation: text(r, 1)?,
        attempt: int4(r, 2)? as u32,
        import_supplier: opt_text(r, 3)?,
        external_account_number: opt_text(r, 4)?,
        line: opt_int(r, 5)?.map(|l| l as u64),
        status_code: int4(r, 6)? as u16,
        error_code: opt_text(r, 7)?,
        body: text(r, 8)?,
        kraken_account_number: opt_text(r, 9)?,
        started_at: text(r, 10)?,
        finished_at: text(r, 11)?,
        request: tag(opt_text(r, 12)?, opt_text(r, 13)?),
        push,
    };
    Ok((int(r, 18)?, record))
}

fn push_intent_row(r: &Row) -> Result<PushIntent, String> {
    Ok(PushIntent {
        target: text(r, 0)?,
        import_supplier: text(r, 1)?,
        external_account_number: text(r, 2)?,
        run_id: text(r, 3)?,
        attempt: int4(r, 4)? as u32,
        request_id: text(r, 5)?,
        staged_version: opt_int(r, 6)?,
        payload_hash: text(r, 7)?,
        line: opt_int(r, 8)?.map(|l| l as u64),
        started_at: text(r, 9)?,
    })
}

fn remote_row(r: &Row) -> Result<RemoteAccount, String> {
    Ok(RemoteAccount {
        target: text(r, 0)?,
        import_supplier: text(r, 1)?,
        external_account_number: text(r, 2)?,
        kraken_account_number: text(r, 3)?,
        run_id: text(r, 4)?,
        recorded_at: text(r, 5)?,
    })
}

/// The live owners of creations in flight on this database: those whose session holds its lock.
const LIVE_OWNERS: &str = "SELECT l.objid::bigint FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.classid = 7423 AND l.objsubid = 2 AND l.granted
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// A part of a create chunk: the accounts of `todo` still to answer.
struct Part<'c, 'i> {
    run_id: &'c str,
    items: &'c [CreateItem<'i>],
    attempts: &'c [(u32, String)],
    todo: &'c [usize],
    dry_run: bool,
    outcome: OutcomeOf<'c>,
}

impl Store for PgStore {
    fn suppliers(&self) -> Result<Vec<Supplier>, StoreError> {
        let rows = self.query("SELECT code, status, updated_at FROM import_suppliers ORDER BY code", &[])?;
        self.rows(rows, |r| {
            Ok(Supplier { code: text(r, 0)?, status: status(r, 1, MigrationStatus::parse)?, updated_at: text(r, 2)? })
        })
    }

    fn set_supplier_status(
        &mut self,
        code: &str,
        status: MigrationStatus,
    ) -> Result<Option<MigrationStatus>, StoreError> {
        self.transaction(|s| {
            let before = s.query_opt("SELECT status FROM import_suppliers WHERE code = $1 FOR UPDATE", &[&code])?;
            let t = now();
            s.execute(
                "INSERT INTO import_suppliers (code, status, created_at, updated_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (code) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
                &[&code, &status.as_str(), &t],
            )?;
            Ok(before.and_then(|r| r.get::<_, Option<String>>(0)).as_deref().and_then(MigrationStatus::parse))
        })
    }

    fn teams(&self) -> Result<Vec<Team>, StoreError> {
        let rows = self.query("SELECT name, created_at FROM operations_teams ORDER BY name", &[])?;
        self.rows(rows, |r| Ok(Team { name: text(r, 0)?, created_at: text(r, 1)? }))
    }

    fn add_team(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self.execute(
            "INSERT INTO operations_teams (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &now()],
        )?;
        Ok(n == 1)
    }

    fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        let rows = self.query("SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY name", &[])?;
        self.rows(rows, token_row)
    }

    fn add_token(&mut self, name: &str, role: &str, key_sha256: &str) -> Result<bool, StoreError> {
        let n = self.execute(
            "INSERT INTO api_tokens (name, role, key_sha256, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &role, &key_sha256, &now()],
        )?;
        Ok(n == 1)
    }

    fn revoke_token(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            &[&name, &now()],
        )?;
        Ok(n == 1)
    }

    fn token_by_key(&self, key_sha256: &str) -> Result<Option<Token>, StoreError> {
        self.row(
            "SELECT name, role, created_at, revoked_at FROM api_tokens WHERE key_sha256 = $1 AND revoked_at IS NULL",
            &[&key_sha256],
            token_row,
        )
    }

    fn begin_run(
        &mut self,
        command: &str,
        fingerprint: &str,
        args: &str,
        parent: Option<&str>,
    ) -> Result<RunStart, StoreError> {
        let pid = i64::from(std::process::id());
        let found = self.row(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE fingerprint = $1 AND command = $2 AND finished_at IS NULL
                     AND (owner IS NULL OR owner NOT IN ({LIVE_OWNERS}))
                 ORDER BY id DESC LIMIT 1"
            ),
            &[&fingerprint, &command],
            run_row,
        )?;
        if let Some(mut run) = found {
            self.execute("UPDATE runs SET pid = $2, owner = $3 WHERE id = $1", &[&run.id, &pid, &self.owner])?;
            run.pid = pid as u32;
            return Ok(RunStart { run, resumed: true });
        }
        let run = Run {
            id: new_run_id(),
            command: command.to_owned(),
            fingerprint: fingerprint.to_owned(),
            pid: pid as u32,
            started_at: now(),
            committed_at: None,
            finished_at: None,
            status: None,
            args: Some(args.to_owned()),
            parent: parent.map(str::to_owned),
        };
        self.execute(
            "INSERT INTO runs (id, command, fingerprint, pid, started_at, args, parent, owner)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&run.id, &run.command, &run.fingerprint, &pid, &run.started_at, &run.args, &run.parent, &self.owner],
        )?;
        Ok(RunStart { run, resumed: false })
    }

    fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        self.row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"), &[&id], run_row)
    }

    fn failed_in_run(&self, run_id: &str, codes: Option<&[String]>) -> Result<Vec<(String, String, u32)>, StoreError> {
        let rows = self.query(
            "SELECT a.import_supplier, a.external_account_number, a.status_code, a.error_code,
                 (SELECT count(*) FROM audit c WHERE c.operation = 'create'
                      AND c.import_supplier = a.import_supplier
                      AND c.external_account_number = a.external_account_number)
             FROM audit a
             WHERE a.run_id = $1 AND a.operation = 'create' AND a.external_account_number IS NOT NULL
               AND a.id = (SELECT max(b.id) FROM audit b WHERE b.run_id = a.run_id AND b.operation = 'create'
                               AND b.import_supplier = a.import_supplier
                               AND b.external_account_number = a.external_account_number)
             ORDER BY a.id",
            &[&run_id],
        )?;
        let rows = self.rows(rows, |r| Ok((text(r, 0)?, text(r, 1)?, int4(r, 2)?, opt_text(r, 3)?, int(r, 4)?)))?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, status, code, _)| {
                *status >= 400 && codes.is_none_or(|c| code.as_ref().is_some_and(|code| c.contains(code)))
            })
            .map(|(supplier, ext, _, _, attempts)| (supplier, ext, attempts as u32))
            .collect())
    }

    fn unfinished_runs(&self) -> Result<Vec<Run>, StoreError> {
        // Only runs whose owner is gone: another machine's run in progress is not interrupted.
        let rows = self.query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NULL
                     AND (owner IS NULL OR owner NOT IN ({LIVE_OWNERS})) ORDER BY id"
            ),
            &[],
        )?;
        self.rows(rows, run_row)
    }

    fn finish_run(&mut self, run_id: &str, status: &str) -> Result<(), StoreError> {
        self.execute("UPDATE runs SET finished_at = $2, status = $3 WHERE id = $1", &[&run_id, &now(), &status])?;
        Ok(())
    }

    fn stage_snapshot(&self) -> Result<StageSnapshot, StoreError> {
        if !self.stage_locked.get() {
            // Held until the stage commits or rolls back: a stage run on another machine waits.
            self.execute("SELECT pg_advisory_lock($1, 0)", &[&STORE_LOCK_CLASS])?;
            self.stage_locked.set(true);
        }
        let mut snapshot = StageSnapshot::default();
        for s in self.suppliers()? {
            snapshot.suppliers.insert(s.code, s.status);
        }
        let rows = self.query(
            "SELECT p.import_supplier, p.external_account_number, p.status, v.payload_hash, p.kraken_account_number,
                 v.line_hash
             FROM import_processes p LEFT JOIN staged_versions v ON v.id = p.current_version",
            &[],
        )?;
        for r in &rows {
            let read = || -> Result<_, String> {
                Ok((
                    text(r, 0)?,
                    text(r, 1)?,
                    ProcessState {
                        status: status(r, 2, ProcessStatus::parse)?,
                        payload_hash: opt_text(r, 3)?.as_deref().map(StoredHash::parse),
                        kraken_account_number: opt_text(r, 4)?.map(Into::into),
                        line_hash: opt_text(r, 5)?.as_deref().and_then(parse_line_hash),
                    },
                ))
            };
            let (supplier, external, state) = read().map_err(|e| self.conn.err(Failure::Data(e)))?;
            snapshot.insert_process(&supplier, &external, state);
        }
        Ok(snapshot)
    }

    fn begin_stage(&mut self, _run_id: &str) -> Result<(), StoreError> {
        if !self.stage_locked.get() {
            self.execute("SELECT pg_advisory_lock($1, 0)", &[&STORE_LOCK_CLASS])?;
            self.stage_locked.set(true);
        }
        self.batch("BEGIN")
    }

    fn add_to_stage(
        &mut self,
        run_id: &str,
        StageRows { versions, seen, audit }: &StageRows,
    ) -> Result<(), StoreError> {
        let t = now();
        let mut suppliers: Vec<&str> = versions.iter().map(|v| v.import_supplier.as_str()).collect();
        suppliers.sort_unstable();
        suppliers.dedup();
        self.execute(
            "INSERT INTO import_suppliers (code, status, created_at, updated_at)
             SELECT code, 'ONGOING', $2, $2 FROM unnest($1::text[]) AS code
             ON CONFLICT (code) DO NOTHING",
            &[&suppliers, &t],
        )?;
        let n = versions.len() as i64;
        let ids: Vec<i64> = self
            .query(
                "SELECT nextval(pg_get_serial_sequence('staged_versions', 'id')) FROM generate_series(1, $1::bigint)",
                &[&n],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let supplier: Vec<&str> = versions.iter().map(|v| v.import_supplier.as_str()).collect();
        let external: Vec<&str> = versions.iter().map(|v| v.external_account_number.as_str()).collect();
        // An account twice in one batch: the upsert takes the last of its versions.
        self.execute(
            "INSERT INTO import_processes (import_supplier, external_account_number, status, current_version,
                 created_at, updated_at)
             SELECT DISTINCT ON (s, e) s, e, 'STAGED', v, $4, $4
             FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS u(s, e, v, k)
             ORDER BY s, e, k DESC
             ON CONFLICT (import_supplier, external_account_number) DO UPDATE
             SET status = 'STAGED', current_version = excluded.current_version, updated_at = excluded.updated_at",
            &[&supplier, &external, &ids, &t],
        )?;
        let location: Vec<&str> = versions.iter().map(|v| v.location.as_str()).collect();
        let row: Vec<i64> = versions.iter().map(|v| v.account_row as i64).collect();
        let payload: Vec<&str> = versions.iter().map(|v| v.payload_hash.as_str()).collect();
        let rows_hash: Vec<&str> = versions.iter().map(|v| v.rows_hash.as_str()).collect();
        let line_hash: Vec<Option<&str>> = versions.iter().map(|v| v.line_hash.as_deref()).collect();
        self.execute(
            "INSERT INTO staged_versions (id, import_supplier, external_account_number, run_id, location, account_row,
                 payload_hash, created_at, rows_hash, line_hash)
             SELECT id, s, e, $4, l, r, p, $8, h, d
             FROM unnest($1::bigint[], $2::text[], $3::text[], $5::text[], $6::bigint[], $7::text[], $9::text[],
                     $10::text[])
                 AS u(id, s, e, l, r, p, h, d)",
            &[&ids, &supplier, &external, &run_id, &location, &row, &payload, &t, &rows_hash, &line_hash],
        )?;
        if !seen.is_empty() {
            let col = |f: fn(&LineSeen) -> &str| seen.iter().map(f).collect::<Vec<&str>>();
            self.execute(
                "UPDATE staged_versions v SET line_hash = u.h
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(s, e, p, h), import_processes c
                 WHERE c.import_supplier = u.s AND c.external_account_number = u.e AND v.id = c.current_version
                   AND v.payload_hash = u.p",
                &[
                    &col(|s| &s.import_supplier),
                    &col(|s| &s.external_account_number),
                    &col(|s| &s.payload_hash),
                    &col(|s| &s.line_hash),
                ],
            )?;
        }
        self.insert_audits(audit)
    }

    fn commit_stage(&mut self, run_id: &str, files: &[(String, crate::ingest::WrittenFile)]) -> Result<(), StoreError> {
        for (location, f) in files {
            self.execute(
                "INSERT INTO staged_files (location, name, bytes, crc32) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (location, name) DO UPDATE SET bytes = excluded.bytes, crc32 = excluded.crc32",
                &[location, &f.name, &(f.bytes as i64), &i64::from(f.crc32)],
            )?;
        }
        self.execute("UPDATE runs SET committed_at = $2 WHERE id = $1", &[&run_id, &now()])?;
        self.batch("COMMIT")?;
        self.release_stage_lock()
    }

    fn staged_files(&self, location: &str) -> Result<Vec<crate::ingest::WrittenFile>, StoreError> {
        let rows =
            self.query("SELECT name, bytes, crc32 FROM staged_files WHERE location = $1 ORDER BY name", &[&location])?;
        self.rows(rows, |r| {
            Ok(crate::ingest::WrittenFile { name: text(r, 0)?, bytes: int(r, 1)? as u64, crc32: int(r, 2)? as u32 })
        })
    }

    fn rollback_stage(&mut self) -> Result<(), StoreError> {
        // Outside a transaction PostgreSQL only warns.
        self.batch("ROLLBACK")?;
        self.release_stage_lock()
    }

    fn run_audit(&self, run_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self.run_audit_page(run_id, None, i64::MAX as usize)?.into_iter().map(|(_, r)| r).collect())
    }

    fn run_audit_page(
        &self,
        run_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, AuditRecord)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(
            &format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
            &[&run_id, &after.unwrap_or(i64::MIN), &limit],
        )?;
        self.rows(rows, audit_row)
    }

    fn process(&self, supplier: &str, external: &str) -> Result<Option<Process>, StoreError> {
        self.row(
            &format!(
                "SELECT {PROCESS_COLUMNS} FROM import_processes
                 WHERE import_supplier = $1 AND external_account_number = $2"
            ),
            &[&supplier, &external],
            process_row,
        )
    }

    fn processes_after(
        &self,
        supplier: &str,
        filter: ProcessFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Process>, StoreError> {
        let condition = match filter {
            ProcessFilter::All => "",
            ProcessFilter::Pending => "AND status = 'STAGED'",
            ProcessFilter::Imported => "AND status = 'IMPORTED'",
        };
        let rows = self.query(
            &format!(
                "SELECT {PROCESS_COLUMNS} FROM import_processes
                 WHERE import_supplier = $1 AND ($2::text IS NULL OR external_account_number > $2) {condition}
                 ORDER BY external_account_number LIMIT $3"
            ),
            &[&supplier, &after, &(limit as i64)],
        )?;
        self.rows(rows, process_row)
    }

    fn set_skipped(
        &mut self,
        supplier: &str,
        external: &str,
        skip: bool,
        reason: Option<&str>,
    ) -> Result<Result<(), SkipRefused>, StoreError> {
        self.transaction(|s| {
            let found = s.query_opt(
                "SELECT status FROM import_processes WHERE import_supplier = $1 AND external_account_number = $2
                 FOR UPDATE",
                &[&supplier, &external],
            )?;
            let current = found.and_then(|r| r.get::<_, Option<String>>(0)).as_deref().and_then(ProcessStatus::parse);
            let to = match crate::store::skip_target(current, skip) {
                Ok(to) => to,
                Err(refused) => return Ok(Err(refused)),
            };
            s.execute(
                "UPDATE import_processes SET status = $3, skip_reason = $4, updated_at = $5
                 WHERE import_supplier = $1 AND external_account_number = $2",
                &[&supplier, &external, &to.as_str(), &if skip { reason } else { None }, &now()],
            )?;
            Ok(Ok(()))
        })
    }

    fn run_versions(&self, run_id: &str) -> Result<u64, StoreError> {
        let row = self.query_opt("SELECT count(*) FROM staged_versions WHERE run_id = $1", &[&run_id])?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }

    fn problems(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let at = self.conn.target.to_string();
        for (what, sql) in crate::store::INVARIANTS {
            let rows = self.conn.wait(self.conn.client().query(*sql, &[]))?;
            let found = self.rows(rows, |r| Ok(format!("{} {}", text(r, 0)?, text(r, 1)?)))?;
            if !found.is_empty() {
                out.push(crate::store::invariant_problem(&at, what, &found));
            }
        }
        if let Some(records) = &self.records {
            out.extend(records.orphans(&self.conn)?.into_iter().map(|p| format!("{at}: {p}")));
        }
        Ok(out)
    }

    fn backup(&self, dest: &Path) -> Result<(), crate::error::Error> {
        super::backup::dump(&self.conn.target, dest)
    }

    fn staged_locations(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.query("SELECT DISTINCT location FROM staged_versions ORDER BY location", &[])?;
        self.rows(rows, |r| text(r, 0))
    }

    fn ensure_record_tables(&mut self, schema: &crate::schema::Schema) -> Result<(), StoreError> {
        if !super::records::ddl(schema, &super::records::existing_columns(&self.conn)?).is_empty() {
            self.transaction(|s| {
                // Two machines starting create at once: one creates the tables, the other finds
                // them (the catalog is read again under the lock).
                s.execute("SELECT pg_advisory_xact_lock($1, 1)", &[&STORE_LOCK_CLASS])?;
                s.batch(&super::records::ddl(schema, &super::records::existing_columns(&s.conn)?))
            })?;
        }
        self.records = None;
        self.records = Some(super::records::RecordWrite::new(&self.conn, schema)?);
        Ok(())
    }

    fn pending_versions(&self, supplier: &str) -> Result<Vec<StagedRef>, StoreError> {
        let rows = self.query(
            "SELECT p.external_account_number, v.location, v.account_row, v.rows_hash, v.id
             FROM import_processes p JOIN staged_versions v ON v.id = p.current_version
             WHERE p.import_supplier = $1 AND p.status = 'STAGED'
             ORDER BY v.location, v.account_row",
            &[&supplier],
        )?;
        self.rows(rows, staged_ref)
    }

    fn pending_version(&self, supplier: &str, external: &str) -> Result<Option<StagedRef>, StoreError> {
        self.row(
            "SELECT p.external_account_number, v.location, v.account_row, v.rows_hash, v.id
             FROM import_processes p JOIN staged_versions v ON v.id = p.current_version
             WHERE p.import_supplier = $1 AND p.external_account_number = $2 AND p.status = 'STAGED'",
            &[&supplier, &external],
            staged_ref,
        )
    }

    fn pending_versions_of(&self, supplier: &str, externals: &[&str]) -> Result<Vec<Option<StagedRef>>, StoreError> {
        let rows = self.query(
            "SELECT p.external_account_number, v.location, v.account_row, v.rows_hash, v.id, u.k
             FROM unnest($2::text[]) WITH ORDINALITY AS u(e, k)
             JOIN import_processes p ON p.import_supplier = $1 AND p.external_account_number = u.e
                 AND p.status = 'STAGED'
             JOIN staged_versions v ON v.id = p.current_version",
            &[&supplier, &externals],
        )?;
        let mut out: Vec<Option<StagedRef>> = (0..externals.len()).map(|_| None).collect();
        for (k, found) in self.rows(rows, |r| Ok((int(r, 5)?, staged_ref(r)?)))? {
            out[(k - 1) as usize] = Some(found);
        }
        Ok(out)
    }

    fn create_chunk(
        &mut self,
        schema: &crate::schema::Schema,
        run_id: &str,
        items: &[CreateItem<'_>],
        dry_run: bool,
        outcome: OutcomeOf<'_>,
    ) -> Result<Vec<CreateResult>, StoreError> {
        if items.len() < PARALLEL_FROM {
            return self.create_serially(schema, run_id, items, dry_run, outcome);
        }
        let mut helper = match self.helper.take() {
            Some(helper) => helper,
            None => Box::new(PgStore::open(&self.target).map_err(|e| self.conn.err(Failure::Data(e.to_string())))?),
        };
        let (first, second) = items.split_at(items.len() / 2);
        let (mine, its) = std::thread::scope(|threads| {
            let theirs = threads.spawn(|| helper.create_serially(schema, run_id, second, dry_run, outcome));
            let mine = self.create_serially(schema, run_id, first, dry_run, outcome);
            (mine, theirs.join().expect("the second connection's half does not panic"))
        });
        self.helper = Some(helper);
        let mut results = mine?;
        results.extend(its?);
        Ok(results)
    }

    fn record_interrupted_creations(&mut self, interrupted: &Interrupted) -> Result<Vec<AuditRecord>, StoreError> {
        self.record_interrupted(interrupted)
    }

    fn append_audit(&mut self, rows: &[AuditRecord]) -> Result<(), StoreError> {
        self.transaction(|s| s.insert_audits(rows))
    }

    fn limit_cache(&mut self, _mib: u32) -> Result<(), StoreError> {
        // The server keeps the cache; this process keeps only prepared statements.
        Ok(())
    }

    fn add_push_intents(&mut self, intents: &[PushIntent]) -> Result<(), StoreError> {
        self.transaction(|s| {
            for i in intents {
                s.execute(
                    "INSERT INTO push_intents (target, import_supplier, external_account_number, run_id, attempt,
                         request_id, staged_version, payload_hash, line, started_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (target, import_supplier, external_account_number) DO UPDATE SET
                         run_id = excluded.run_id, attempt = excluded.attempt, request_id = excluded.request_id,
                         staged_version = excluded.staged_version, payload_hash = excluded.payload_hash,
                         line = excluded.line, started_at = excluded.started_at",
                    &[
                        &i.target,
                        &i.import_supplier,
                        &i.external_account_number,
                        &i.run_id,
                        &(i.attempt as i32),
                        &i.request_id,
                        &i.staged_version,
                        &i.payload_hash,
                        &i.line.map(|l| l as i64),
                        &i.started_at,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn push_intents(&self, target: &str) -> Result<Vec<PushIntent>, StoreError> {
        let rows = self.query(
            "SELECT target, import_supplier, external_account_number, run_id, attempt, request_id, staged_version,
                 payload_hash, line, started_at
             FROM push_intents WHERE target = $1 ORDER BY import_supplier, external_account_number",
            &[&target],
        )?;
        self.rows(rows, push_intent_row)
    }

    fn record_push(&mut self, target: &str, records: &[PushRecord]) -> Result<(), StoreError> {
        self.transaction(|s| {
            let audit: Vec<AuditRecord> = records.iter().map(|r| r.audit.clone()).collect();
            s.insert_audits(&audit)?;
            for r in records {
                let (supplier, external) = (&r.audit.import_supplier, &r.audit.external_account_number);
                if let Some(number) = &r.remote_number {
                    s.execute(
                        "INSERT INTO remote_accounts (target, import_supplier, external_account_number,
                             kraken_account_number, run_id, recorded_at)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (target, import_supplier, external_account_number) DO UPDATE SET
                             kraken_account_number = excluded.kraken_account_number, run_id = excluded.run_id,
                             recorded_at = excluded.recorded_at",
                        &[&target, supplier, external, number, &r.audit.run_id, &r.audit.finished_at],
                    )?;
                }
                if r.settles_intent {
                    s.execute(
                        "DELETE FROM push_intents
                         WHERE target = $1 AND import_supplier = $2 AND external_account_number = $3",
                        &[&target, supplier, external],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn remote_accounts(
        &self,
        target: Option<&str>,
        supplier: &str,
        between: Option<(&str, &str)>,
    ) -> Result<Vec<RemoteAccount>, StoreError> {
        let (first, last) = between.unzip();
        let rows = self.query(
            "SELECT target, import_supplier, external_account_number, kraken_account_number, run_id, recorded_at
             FROM remote_accounts WHERE import_supplier = $1 AND ($2::text IS NULL OR target = $2)
                 AND ($3::text IS NULL OR external_account_number BETWEEN $3 AND $4)
             ORDER BY external_account_number, target",
            &[&supplier, &target, &first, &last],
        )?;
        self.rows(rows, remote_row)
    }
}

impl PgStore {
    /// The attempt number and start time of each account of a chunk; unless it is a dry run,
    /// committed as intents owned by this connection first. Two statements for the chunk.
    fn begin_chunk(
        &self,
        run_id: &str,
        items: &[CreateItem<'_>],
        dry_run: bool,
    ) -> Result<Vec<(u32, String)>, StoreError> {
        let supplier: Vec<&str> = items.iter().map(|i| i.import_supplier).collect();
        let external: Vec<&str> = items.iter().map(|i| i.external_account_number).collect();
        self.transaction(|s| {
            let counts = s.query(
                "SELECT (SELECT count(*) FROM audit a WHERE a.import_supplier = u.s
                             AND a.external_account_number = u.e AND a.operation = 'create') + 1
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(s, e, k) ORDER BY k",
                &[&supplier, &external],
            )?;
            let started_at = now();
            let attempts: Vec<(u32, String)> =
                counts.iter().map(|r| (r.get::<_, i64>(0) as u32, started_at.clone())).collect();
            if !dry_run {
                let attempt: Vec<i32> = attempts.iter().map(|(a, _)| *a as i32).collect();
                let line: Vec<i64> = items.iter().map(|i| i.line as i64).collect();
                let request_id: Vec<Option<&str>> = items.iter().map(|i| i.request.map(|r| r.id.as_str())).collect();
                let token: Vec<Option<&str>> = items.iter().map(|i| i.request.map(|r| r.token.as_str())).collect();
                // An account another live worker has in flight keeps that worker's intent; this
                // chunk then waits for its row and finds it no longer STAGED (or claims it, if
                // that creation failed).
                s.execute(
                    "INSERT INTO create_intents (import_supplier, external_account_number, run_id, attempt, line,
                         started_at, request_id, token_name, owner)
                     SELECT u.s, u.e, $3, u.a, u.l, $6, u.r, u.t, $9
                     FROM unnest($1::text[], $2::text[], $4::integer[], $5::bigint[], $7::text[], $8::text[])
                         AS u(s, e, a, l, r, t)
                     ON CONFLICT (import_supplier, external_account_number) DO NOTHING",
                    &[&supplier, &external, &run_id, &attempt, &line, &started_at, &request_id, &token, &s.owner],
                )?;
            }
            Ok(attempts)
        })
    }

    /// Takes up to `wanted` creation slots for the rest of the open transaction; how many.
    fn take_slots(&self, wanted: usize) -> Result<usize, StoreError> {
        if wanted == 0 {
            return Ok(0);
        }
        let limit = crate::settings::CREATE_LIMIT as i32;
        let row = self.query_opt("SELECT ferry_take_create_slots($1, $2)", &[&limit, &(wanted as i32)])?;
        Ok(row.map_or(0, |r| r.get::<_, i32>(0)) as usize)
    }

    /// Waits (up to [`SLOT_WAIT`]) for a creation slot while other instances hold them all.
    fn wait_slot(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        while self.take_slots(1)? == 0 {
            if started.elapsed() > SLOT_WAIT {
                return Err(self.conn.err(Failure::Data(format!(
                    "all {} creation slots of the store stayed taken for {} s (other instances are creating)",
                    crate::settings::CREATE_LIMIT,
                    SLOT_WAIT.as_secs()
                ))));
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Ok(())
    }

    /// Creates `items` on this connection: their intents, then parts of as many accounts as
    /// there are free slots, each part one transaction.
    fn create_serially(
        &mut self,
        schema: &crate::schema::Schema,
        run_id: &str,
        items: &[CreateItem<'_>],
        dry_run: bool,
        outcome: OutcomeOf<'_>,
    ) -> Result<Vec<CreateResult>, StoreError> {
        use super::create::ChunkError;
        if self.records.as_ref().is_none_or(|r| r.schema_hash != schema.hash) {
            self.ensure_record_tables(schema)?;
        }
        let attempts = self.begin_chunk(run_id, items, dry_run)?;
        // In parts: each transaction creates the accounts it got creation slots for, so that
        // workers on other machines share the 40 instead of taking turns with whole chunks.
        let mut results: Vec<Option<CreateResult>> = (0..items.len()).map(|_| None).collect();
        let mut todo: Vec<usize> = (0..items.len()).collect();
        while !todo.is_empty() {
            let part = Part { run_id, items, attempts: &attempts, todo: &todo, dry_run, outcome };
            let answered = match self.write_part(&part, false) {
                Err(ChunkError::AccountFailed) => self.write_part(&part, true),
                answered => answered,
            }
            .map_err(|e| match e {
                ChunkError::Store(e) => e,
                ChunkError::AccountFailed => {
                    unreachable!("an account-isolated part reports failed accounts as outcomes")
                }
            })?;
            for (i, result) in answered {
                results[i] = Some(result);
            }
            todo.retain(|&i| results[i].is_none());
        }
        Ok(results.into_iter().map(|r| r.expect("every account of the chunk is answered")).collect())
    }

    /// Writes one part of a chunk in one transaction: the accounts of `part.todo` it gets
    /// creation slots for (every account together, or each in a savepoint when `alone`). A
    /// request of `ferry serve` that gets no slot is answered at once (Busy: 429); an account
    /// of a batch run waits for the next part (and the first waits for a slot). Returns the
    /// answered accounts by index.
    fn write_part(
        &self,
        part: &Part<'_, '_>,
        alone: bool,
    ) -> Result<Vec<(usize, CreateResult)>, super::create::ChunkError> {
        use super::create::ChunkError;
        let Part { run_id, items, attempts, todo, dry_run, outcome } = *part;
        self.batch("BEGIN")?;
        let answered = (|| -> Result<Vec<(usize, CreateResult)>, ChunkError> {
            // A slot for each account to write, as many as are free; a batch run waits for one.
            let valid: Vec<usize> = todo.iter().copied().filter(|&i| items[i].invalid.is_none()).collect();
            let mut got = self.take_slots(valid.len())?;
            if got == 0 && valid.first().is_some_and(|&i| items[i].request.is_none()) {
                self.wait_slot()?;
                got = 1 + self.take_slots(valid.len() - 1)?;
            }
            let mut admitted: Vec<usize> = todo.iter().copied().filter(|&i| items[i].invalid.is_some()).collect();
            admitted.extend(&valid[..got]);
            admitted.sort_unstable();
            // Requests of `ferry serve` past the free slots are answered now; a batch run's wait
            // for the next part.
            let busy: Vec<usize> = valid[got..].iter().copied().filter(|&i| items[i].request.is_some()).collect();
            let records = self.records.as_ref().expect("create_chunk made the record statements");
            let chosen: Vec<CreateItem<'_>> = admitted.iter().map(|&i| items[i].clone()).collect();
            let written = if alone {
                chosen
                    .iter()
                    .map(|item| super::create::alone(self, records, item, dry_run))
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                super::create::together(self, records, &chosen)?
            };
            let limit = crate::settings::CREATE_LIMIT;
            let mut answers: Vec<(usize, crate::store::AccountWritten)> = admitted.into_iter().zip(written).collect();
            answers.extend(busy.into_iter().map(|i| (i, crate::store::AccountWritten::Busy { limit })));
            answers.sort_by_key(|(i, _)| *i);
            let mut results = Vec::with_capacity(answers.len());
            let mut audit = Vec::with_capacity(answers.len());
            for (i, written) in answers {
                let (item, (attempt, started_at)) = (&items[i], &attempts[i]);
                let result = outcome(item, written, *attempt, dry_run);
                if !dry_run {
                    audit.push(crate::store::create_audit(run_id, item, *attempt, started_at, &result));
                }
                results.push((i, result));
            }
            self.insert_audits(&audit)?;
            if !dry_run {
                let supplier: Vec<&str> = results.iter().map(|(i, _)| items[*i].import_supplier).collect();
                let external: Vec<&str> = results.iter().map(|(i, _)| items[*i].external_account_number).collect();
                self.execute(
                    "DELETE FROM create_intents i USING unnest($2::text[], $3::text[]) AS a(s, e)
                     WHERE i.owner = $1 AND i.import_supplier = a.s AND i.external_account_number = a.e",
                    &[&self.owner, &supplier, &external],
                )?;
            }
            crate::workdir::failpoint("create-chunk");
            Ok(results)
        })();
        match answered {
            Ok(results) if !dry_run => {
                self.batch("COMMIT")?;
                Ok(results)
            }
            other => {
                self.batch("ROLLBACK")?;
                other
            }
        }
    }

    /// Records the creations whose owner is gone as interrupted, and removes their intents. An
    /// intent of a live owner (another worker creating it now) is left alone.
    fn record_interrupted(&mut self, interrupted: &Interrupted) -> Result<Vec<AuditRecord>, StoreError> {
        self.transaction(|s| {
            let finished_at = now();
            let rows = s.query(
                &format!(
                    "DELETE FROM create_intents WHERE owner NOT IN ({LIVE_OWNERS})
                     RETURNING run_id, attempt, import_supplier, external_account_number, line, started_at,
                         request_id, token_name"
                ),
                &[],
            )?;
            let mut records = s.rows(rows, |r| {
                Ok(AuditRecord {
                    run_id: text(r, 0)?,
                    operation: "create".to_owned(),
                    attempt: int4(r, 1)? as u32,
                    import_supplier: opt_text(r, 2)?,
                    external_account_number: opt_text(r, 3)?,
                    line: opt_int(r, 4)?.map(|l| l as u64),
                    status_code: 0,
                    error_code: None,
                    body: String::new(),
                    kraken_account_number: None,
                    started_at: text(r, 5)?,
                    finished_at: String::new(),
                    request: tag(opt_text(r, 6)?, opt_text(r, 7)?),
                    push: None,
                })
            })?;
            records.sort_by(|a, b| {
                (&a.run_id, &a.started_at, &a.external_account_number).cmp(&(
                    &b.run_id,
                    &b.started_at,
                    &b.external_account_number,
                ))
            });
            for r in &mut records {
                r.status_code = interrupted.status_code;
                r.error_code = Some(interrupted.error_code.clone());
                r.body = interrupted.body.clone();
                r.finished_at = finished_at.clone();
            }
            s.insert_audits(&records)?;
            Ok(records)
        })
    }

    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }
}
