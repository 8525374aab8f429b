//! The create writer: a chunk of accounts in one transaction (or one savepoint per account when
//! one of them fails), their records, create intents and audit rows.

use super::*;
use crate::store::{fails_on_purpose, new_account_number};

impl SqliteStore {
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
                         (import_supplier, external_account_number, run_id, attempt, line, started_at,
                          request_id, token_name)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    item.import_supplier,
                    item.external_account_number,
                    run_id,
                    attempt,
                    item.line as i64,
                    started_at,
                    item.request.map(|r| &r.id),
                    item.request.map(|r| &r.token),
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

    pub(super) fn write_create_chunk(
        &mut self,
        schema: &crate::schema::Schema,
        run_id: &str,
        items: &[CreateItem<'_>],
        dry_run: bool,
        outcome: OutcomeOf<'_>,
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
        let chunk = Chunk { run_id, items, attempts: &attempts, dry_run, outcome };
        let results = match self.write_chunk(schema, &chunk, Isolation::Chunk) {
            Err(ChunkError::AccountFailed) => self.write_chunk(schema, &chunk, Isolation::Account),
            written => written,
        };
        if let Some(checkpointer) = &mut self.checkpointer {
            checkpointer.chunk_written(&self.conn, items.len());
        }
        results.map_err(|e| match e {
            ChunkError::Store(source) => err(source),
            ChunkError::AccountFailed => unreachable!("an account-isolated chunk reports failed accounts as outcomes"),
        })
    }

    pub(super) fn record_interrupted(&mut self, interrupted: &Interrupted) -> Result<Vec<AuditRecord>, StoreError> {
        let err = err_at(&self.path);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        let finished_at = now();
        let rows: Vec<AuditRecord> = {
            let mut stmt = tx
                .prepare(
                    "SELECT run_id, attempt, import_supplier, external_account_number, line, started_at,
                            request_id, token_name
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
                    status_code: interrupted.status_code,
                    error_code: Some(interrupted.error_code.clone()),
                    body: interrupted.body.clone(),
                    kraken_account_number: None,
                    started_at: r.get(5)?,
                    finished_at: finished_at.clone(),
                    request: tag(r.get(6)?, r.get(7)?),
                    push: None,
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

/// One create chunk as the writer takes it.
struct Chunk<'c, 'i> {
    run_id: &'c str,
    items: &'c [CreateItem<'i>],
    /// The attempt number and start time of each account.
    attempts: &'c [(u32, String)],
    dry_run: bool,
    outcome: OutcomeOf<'c>,
}

impl SqliteStore {
    /// Writes one create chunk: every account's records and process, and its audit row, in
    /// one transaction, committed (or rolled back for a dry run, or on any error).
    fn write_chunk(
        &mut self,
        schema: &crate::schema::Schema,
        chunk: &Chunk<'_, '_>,
        isolation: Isolation,
    ) -> Result<Vec<CreateResult>, ChunkError> {
        let Chunk { run_id, items, attempts, dry_run, outcome } = *chunk;
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
            let result = outcome(item, written, attempt, dry_run);
            if !dry_run {
                insert_audit(&tx, &crate::store::create_audit(run_id, item, attempt, started_at, &result))?;
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
pub(super) struct AccountWrite {
    schema_hash: String,
    inserts: records::Inserts,
    /// Whether an account number is in use.
    taken_sql: String,
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
    fn together(&self, tx: &Connection, items: &[CreateItem<'_>]) -> Result<Vec<AccountWritten>, ChunkError> {
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
        crate::store::written_together(items, claimed).ok_or(ChunkError::AccountFailed)
    }

    /// Writes one account inside a savepoint ([`Isolation::Account`]): a failure, or a dry
    /// run, undoes this account only.
    fn alone(&self, tx: &Connection, item: &CreateItem<'_>, dry_run: bool) -> rusqlite::Result<AccountWritten> {
        if item.invalid.is_some() {
            return Ok(AccountWritten::Invalid);
        }
        tx.prepare_cached("SAVEPOINT account")?.execute([])?;
        let written = (|| {
            let Some((number, created_at)) = self.claim(tx, item)? else {
                return Ok(AccountWritten::NotStaged);
            };
            let account =
                records::NewAccount { row: item.account, kraken_account_number: &number, created_at: &created_at };
            records::insert_accounts(tx, &self.inserts, item.tables, &[account])?;
            if fails_on_purpose(item) {
                return Err(rusqlite::Error::InvalidQuery);
            }
            Ok(AccountWritten::Created { kraken_account_number: number })
        })()
        .unwrap_or_else(|e| AccountWritten::Rejected { error: e.to_string() });
        if dry_run || !matches!(written, AccountWritten::Created { .. }) {
            tx.prepare_cached("ROLLBACK TO account")?.execute([])?;
        }
        tx.prepare_cached("RELEASE account")?.execute([])?;
        Ok(written)
    }
}

pub(super) fn insert_audit(conn: &Connection, a: &AuditRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (run_id, operation, attempt, import_supplier, external_account_number, line,
             status_code, error_code, body, kraken_account_number, started_at, finished_at,
             request_id, token_name, staged_version, payload_hash, latency_ms, class)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
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
        a.finished_at,
        a.request.as_ref().map(|r| &r.id),
        a.request.as_ref().map(|r| &r.token).filter(|t| !t.is_empty()),
        a.push.as_ref().and_then(|p| p.staged_version),
        a.push.as_ref().map(|p| &p.payload_hash),
        a.push.as_ref().map(|p| p.latency_ms as i64),
        a.push.as_ref().map(|p| &p.class),
    ])?;
    Ok(())
}

/// A request tag from its two columns.
pub(super) fn tag(id: Option<String>, token: Option<String>) -> Option<crate::store::RequestTag> {
    Some(crate::store::RequestTag { id: id?, token: token.unwrap_or_default() })
}
