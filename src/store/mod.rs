//! The store: the one mutable thing in a work directory (`<workdir>/ferry.db`).
//!
//! It holds import suppliers and their migration status, operations teams, import processes
//! and their staged versions, runs, and the audit table (docs/operations.md). Everything else
//! ferry writes is immutable files. The [`Store`] trait is what the commands use, so that
//! another database (PostgreSQL) can serve it when a migration outgrows one machine;
//! [`sqlite::SqliteStore`] is the embedded default, created on first use.

pub mod pg;
pub mod records;
pub mod sqlite;
mod statement;

use std::collections::HashMap;
use std::fmt;

use crate::collections::FastMap;

/// An import supplier's migration status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MigrationStatus {
    Ongoing,
    Paused,
    Complete,
}

impl MigrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Ongoing => "ONGOING",
            MigrationStatus::Paused => "PAUSED",
            MigrationStatus::Complete => "COMPLETE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ONGOING" => Some(MigrationStatus::Ongoing),
            "PAUSED" => Some(MigrationStatus::Paused),
            "COMPLETE" => Some(MigrationStatus::Complete),
            _ => None,
        }
    }
}

impl fmt::Display for MigrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An import supplier as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Supplier {
    pub code: String,
    pub status: MigrationStatus,
    pub updated_at: String,
}

/// An operations team.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Team {
    pub name: String,
    pub created_at: String,
}

/// An API token of `ferry serve` (the key's hash stays in the store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    pub name: String,
    /// `viewer` (validate and read) or `importer` (also stage and create).
    pub role: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// What the store failed at, with where the store is (a file, or a PostgreSQL server with no
/// password). The database's error is in the message, not a `source`: a source would print the
/// same sentence a second time.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: {error}")]
pub struct StoreError {
    pub path: String,
    pub error: Failure,
}

impl miette::Diagnostic for StoreError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("ferry::store"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(match self.error {
            Failure::Postgres(_) => {
                "is the PostgreSQL server reachable, and do --store or FERRY_STORE name the right database, user \
                 and password (and sslrootcert for a private CA)?"
            }
            Failure::Sqlite(_) | Failure::Data(_) => {
                "is another ferry process using this work directory, or is the file not a ferry store?"
            }
        }))
    }
}

/// The database error under a [`StoreError`], by backend.
#[derive(Debug)]
pub enum Failure {
    Sqlite(rusqlite::Error),
    Postgres(tokio_postgres::Error),
    /// A value the store's own constraints forbid (a damaged or hand-edited store).
    Data(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sqlite(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Postgres(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // ` (SQLite: <code>)` when the error has a result code its message does not already give.
            Failure::Sqlite(e @ rusqlite::Error::SqliteFailure(code, Some(_))) => write!(f, "{e} (SQLite: {code})"),
            Failure::Sqlite(e) => e.fmt(f),
            // The server's own message and SQLSTATE; tokio-postgres's Display says only "db error".
            Failure::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "{} (PostgreSQL: {})", db.message(), db.code().code()),
                // "error performing TLS handshake" and the like: the cause says what failed.
                None => {
                    e.fmt(f)?;
                    let mut cause = std::error::Error::source(e);
                    while let Some(c) = cause {
                        write!(f, ": {c}")?;
                        cause = c.source();
                    }
                    Ok(())
                }
            },
            Failure::Data(message) => f.write_str(message),
        }
    }
}

/// Where an import process is in the state machine of docs/operations.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessStatus {
    Staged,
    Skipped,
    Imported,
}

impl ProcessStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessStatus::Staged => "STAGED",
            ProcessStatus::Skipped => "SKIPPED",
            ProcessStatus::Imported => "IMPORTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "STAGED" => Some(ProcessStatus::Staged),
            "SKIPPED" => Some(ProcessStatus::Skipped),
            "IMPORTED" => Some(ProcessStatus::Imported),
            _ => None,
        }
    }
}

/// One import process, identified by (import supplier, external account number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub import_supplier: String,
    pub external_account_number: String,
    pub status: ProcessStatus,
    /// The id of the current staged version.
    pub current_version: Option<i64>,
    pub skip_reason: Option<String>,
    pub kraken_account_number: Option<String>,
    pub account_created_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// A creation of the account has started and not finished: it is running, or it was
    /// interrupted and the next create records that and retries it.
    pub in_progress: bool,
}

/// What staging needs to know about a process before deciding an account's outcome. A stage
/// snapshot holds one per process, a million at a time, so it keeps its hashes as bytes rather
/// than hex text (80 bytes, nothing on the heap for most processes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessState {
    pub status: ProcessStatus,
    /// The payload hash of the current staged version.
    pub payload_hash: Option<StoredHash>,
    pub kraken_account_number: Option<Box<str>>,
    /// The [`LineHash`] of the line the current staged version was made from, when the ferry
    /// that staged it recorded one.
    pub line_hash: Option<LineHash>,
}

/// A payload hash as the store keeps it: 64 lowercase hex digits, held as their 32 bytes; any
/// other text (written by hand) as it is, equal only to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredHash {
    Sha256([u8; 32]),
    Text(Box<str>),
}

impl StoredHash {
    pub fn parse(text: &str) -> StoredHash {
        let mut bytes = [0u8; 32];
        match hex_bytes(text, &mut bytes) {
            true => StoredHash::Sha256(bytes),
            false => StoredHash::Text(text.into()),
        }
    }

    /// Whether this is the hash written as `text`.
    pub fn is(&self, text: &str) -> bool {
        match self {
            StoredHash::Sha256(bytes) => {
                let mut other = [0u8; 32];
                hex_bytes(text, &mut other) && other == *bytes
            }
            StoredHash::Text(t) => **t == *text,
        }
    }

    /// The hash as the store writes it.
    pub fn text(&self) -> String {
        match self {
            StoredHash::Sha256(bytes) => hex_text(bytes),
            StoredHash::Text(t) => t.to_string(),
        }
    }
}

/// `bytes` as lowercase hex digits, as the store keeps hashes (twice per account of a stage:
/// no formatting machinery).
pub fn hex_text(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    text
}

/// Fills `out` from `text` when it is exactly its bytes as lowercase hex digits.
fn hex_bytes(text: &str, out: &mut [u8]) -> bool {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.len() == 2 * out.len()
        && text.as_bytes().chunks_exact(2).zip(out.iter_mut()).all(|(pair, byte)| {
            let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else { return false };
            *byte = high << 4 | low;
            true
        })
}

/// The digest of a dump line as staging reads it, keyed by the ferry release and the schema
/// ([`crate::stage::Stager::line_hashes`]). A staged version records the one of its line, and
/// a re-stage that meets the same line again takes the version's payload hash instead of
/// computing it. Stored as 32 hex digits.
pub type LineHash = [u8; 16];

/// A [`LineHash`] as the store keeps it.
pub fn line_hash_text(hash: LineHash) -> String {
    hex_text(&hash)
}

/// A stored [`LineHash`]; anything else reads as none (the payload hash is then computed).
pub fn parse_line_hash(text: &str) -> Option<LineHash> {
    let mut hash = [0u8; 16];
    hex_bytes(text, &mut hash).then_some(hash)
}

/// The store as a stage run sees it when it starts (the work directory lock keeps it so).
#[derive(Debug, Default, Clone)]
pub struct StageSnapshot {
    pub suppliers: HashMap<String, MigrationStatus>,
    /// By import supplier, then external account number: a million processes do not each
    /// hold a copy of their supplier's code, and a lookup allocates nothing.
    processes: HashMap<String, FastMap<Box<str>, ProcessState>>,
}

impl StageSnapshot {
    /// The process of an account, if it has one.
    pub fn process(&self, supplier: &str, external: &str) -> Option<&ProcessState> {
        self.processes.get(supplier)?.get(external)
    }

    pub fn insert_process(&mut self, supplier: &str, external: &str, state: ProcessState) {
        let by_external = match self.processes.get_mut(supplier) {
            Some(m) => m,
            None => self.processes.entry(supplier.to_owned()).or_default(),
        };
        by_external.insert(external.into(), state);
    }
}

/// A run of a command that writes to the work directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Sorts by time: `20261127T021500Z-3f9a`.
    pub id: String,
    pub command: String,
    /// What the run was asked to do (command, input, schema, options), hashed: re-running the
    /// same command after a crash resumes the run with the same fingerprint.
    pub fingerprint: String,
    pub pid: u32,
    pub started_at: String,
    /// When the run's store changes committed (null: not yet, or nothing to commit).
    pub committed_at: Option<String>,
    pub finished_at: Option<String>,
    pub status: Option<String>,
    /// What the run was asked to do, as JSON (`{"supplier", "team"}` for create).
    pub args: Option<String>,
    /// The run this one re-runs the failures of (reprocess).
    pub parent: Option<String>,
}

/// How [`Store::begin_run`] found the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStart {
    pub run: Run,
    /// True when an interrupted run with the same fingerprint is being resumed.
    pub resumed: bool,
}

/// One row of the append-only audit table (docs/operations.md, "What a bulk run records").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub run_id: String,
    pub operation: String,
    pub attempt: u32,
    pub import_supplier: Option<String>,
    pub external_account_number: Option<String>,
    pub line: Option<u64>,
    pub status_code: u16,
    pub error_code: Option<String>,
    pub body: String,
    pub kraken_account_number: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    /// The HTTP request this row answers (`ferry serve`), or sent (`ferry push`, with no
    /// token name); none for the CLI's rows.
    pub request: Option<RequestTag>,
    /// What a `ferry push` attempt sent and how it went; none for every other row.
    pub push: Option<PushDetail>,
}

/// What one `ferry push` attempt sent and how it went, beside its audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushDetail {
    /// The staged version the request body was rebuilt from.
    pub staged_version: Option<i64>,
    /// The SHA-256 (hex) of the request body.
    pub payload_hash: String,
    /// From sending the request to reading the whole answer.
    pub latency_ms: u64,
    /// What the client made of the answer (`push::classify`), in snake case.
    pub class: String,
}

/// A create that `ferry push` is sending to a target API: committed before the request goes
/// out, removed with the transaction that records its answer. One found later belongs to a
/// push that was killed, and is looked up through the target's status endpoint before the
/// account is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushIntent {
    /// The target API's base URL.
    pub target: String,
    pub import_supplier: String,
    pub external_account_number: String,
    pub run_id: String,
    pub attempt: u32,
    pub request_id: String,
    pub staged_version: Option<i64>,
    pub payload_hash: String,
    pub line: Option<u64>,
    pub started_at: String,
}

/// An account a target API created, with the number it gave.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteAccount {
    pub target: String,
    pub import_supplier: String,
    pub external_account_number: String,
    pub kraken_account_number: String,
    pub run_id: String,
    pub recorded_at: String,
}

/// One answered push attempt to record: its audit row, the account number the target gave
/// (created, or already imported), and whether it settles the account's create intent.
#[derive(Debug, Clone)]
pub struct PushRecord {
    pub audit: AuditRecord,
    pub remote_number: Option<String>,
    pub settles_intent: bool,
}

/// Which request of `ferry serve` an audit row answers: its id (also in the response's
/// `x-request-id` header) and the name of the token it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTag {
    pub id: String,
    pub token: String,
}

/// A staged version to register and make current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    pub import_supplier: String,
    pub external_account_number: String,
    /// The directory of the staged files, relative to the work directory.
    pub location: String,
    /// The account's row in the root table of those files.
    pub account_row: u64,
    pub payload_hash: String,
    /// The hash of the account's typed rows as written to the staged files
    /// ([`crate::stage::payload_hashes`] over the typed tables): create compares what it reads.
    pub rows_hash: String,
    /// The [`LineHash`] of the line it was made from, as [`line_hash_text`].
    pub line_hash: Option<String>,
}

/// What a stage run adds to its transaction, a wave of chunks at a time.
#[derive(Debug, Default)]
pub struct StageRows {
    /// Each becomes its process's current version; a new process starts STAGED, a new
    /// supplier ONGOING.
    pub versions: Vec<NewVersion>,
    /// Each is recorded on its process's current version, when that version has its payload
    /// hash.
    pub seen: Vec<LineSeen>,
    /// Appended to the audit.
    pub audit: Vec<AuditRecord>,
}

/// An account staged again as identical, from a line whose [`LineHash`] its current version
/// does not have (the line differs in form only, or the version was staged by another release
/// or schema): the version takes it, so that the next re-stage of that line hashes nothing.
/// Only a version whose payload hash is `payload_hash` takes it: a line hash always stands for
/// its version's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSeen {
    pub import_supplier: String,
    pub external_account_number: String,
    pub payload_hash: String,
    /// As [`line_hash_text`].
    pub line_hash: String,
}

/// Which processes `ferry list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessFilter {
    All,
    /// Staged and not imported (skipped processes are not pending).
    Pending,
    Imported,
}

/// Why a skip or unskip was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipRefused {
    Unknown,
    /// The process is in a state the transition does not start from.
    From(ProcessStatus),
}

/// Where `ferry skip` (`skip`) or `ferry unskip` moves a process that is now `current` (none:
/// unknown), or why it is refused: STAGED → SKIPPED and SKIPPED → STAGED only.
pub(crate) fn skip_target(current: Option<ProcessStatus>, skip: bool) -> Result<ProcessStatus, SkipRefused> {
    let current = current.ok_or(SkipRefused::Unknown)?;
    let (from, to) = if skip {
        (ProcessStatus::Staged, ProcessStatus::Skipped)
    } else {
        (ProcessStatus::Skipped, ProcessStatus::Staged)
    };
    if current == from { Ok(to) } else { Err(SkipRefused::From(current)) }
}

/// The current staged version of a STAGED process: where its rows are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRef {
    pub external_account_number: String,
    pub location: String,
    pub account_row: u64,
    /// The hash of its typed rows when staged (none for versions staged before ferry kept it).
    pub rows_hash: Option<String>,
    /// The staged version's id.
    pub version: i64,
}

/// One account of a create chunk: its staged rows (a window in the flattened text form) and
/// whether they pass the rules now.
#[derive(Debug, Clone)]
pub struct CreateItem<'a> {
    pub import_supplier: &'a str,
    pub external_account_number: &'a str,
    pub line: u64,
    pub tables: &'a [arrow_array::RecordBatch],
    /// The account's root row in `tables`.
    pub account: usize,
    /// The validate 400 body when the staged data fails the rules now.
    pub invalid: Option<String>,
    /// The request that asked for it (`ferry serve`).
    pub request: Option<&'a RequestTag>,
}

/// What the store did with one account of a create chunk: facts, in no front end's words. The
/// engine turns them into the guide's outcome ([`OutcomeOf`]).
#[derive(Debug)]
pub enum AccountWritten {
    /// Its process is IMPORTED and its records are written (kept unless it is a dry run).
    Created { kraken_account_number: String },
    /// The staged data fails the rules now ([`CreateItem::invalid`]). Nothing was written.
    Invalid,
    /// The process is no longer STAGED. Nothing was written.
    NotStaged,
    /// Its records could not be written, and what was written of it is undone.
    Rejected { error: String },
    /// A request of `ferry serve` found every creation slot of a shared store taken (the limit
    /// in flight holds across every instance on the store). Nothing was written.
    Busy { limit: usize },
}

/// Turns what the store did with an account (and its attempt number, and whether the chunk is a
/// dry run) into the account's create outcome. The engine gives it; the backend calls it inside
/// the chunk's transaction, so that the audit row commits with the records.
pub type OutcomeOf<'f> = &'f (dyn Fn(&CreateItem<'_>, AccountWritten, u32, bool) -> CreateResult + Sync);

/// The audit row's status, code and body for a creation a kill interrupted (given by the engine).
#[derive(Debug, Clone)]
pub struct Interrupted {
    pub status_code: u16,
    pub error_code: String,
    pub body: String,
}

/// The create outcome of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateResult {
    pub status: u16,
    pub error_code: Option<String>,
    pub body: String,
    pub kraken_account_number: Option<String>,
    pub attempt: u32,
}

/// The state machine of docs/operations.md as queries for what it forbids: each returns the
/// offending processes (supplier, account) and the sentence that says what is wrong. Plain SQL
/// that both backends run as it is (`ferry check`).
pub(crate) const INVARIANTS: &[(&str, &str)] = &[
    (
        "an IMPORTED process without its Kraken account number or creation time",
        "SELECT import_supplier, external_account_number FROM import_processes
         WHERE status = 'IMPORTED' AND (kraken_account_number IS NULL OR account_created_at IS NULL)",
    ),
    (
        "a process that is not IMPORTED but has a Kraken account number",
        "SELECT import_supplier, external_account_number FROM import_processes
         WHERE status <> 'IMPORTED' AND kraken_account_number IS NOT NULL",
    ),
    (
        "a process whose current staged version is missing or another process's",
        "SELECT p.import_supplier, p.external_account_number FROM import_processes p
         LEFT JOIN staged_versions v ON v.id = p.current_version
         WHERE v.id IS NULL OR v.import_supplier <> p.import_supplier
            OR v.external_account_number <> p.external_account_number",
    ),
    (
        "an IMPORTED process with no create 201 in the audit for its Kraken account number",
        "SELECT p.import_supplier, p.external_account_number FROM import_processes p
         WHERE p.status = 'IMPORTED' AND NOT EXISTS (
             SELECT 1 FROM audit a
             WHERE a.import_supplier = p.import_supplier AND a.external_account_number = p.external_account_number
               AND a.operation = 'create' AND a.status_code = 201
               AND a.kraken_account_number = p.kraken_account_number)",
    ),
    (
        "a creation in flight for a run that has finished",
        "SELECT i.import_supplier, i.external_account_number FROM create_intents i
         JOIN runs r ON r.id = i.run_id WHERE r.finished_at IS NOT NULL",
    ),
];

/// At most this many processes are named per broken invariant.
const SHOWN: usize = 5;

/// The sentence of one broken invariant of a store (`at`: its file or server), naming the first
/// offending processes.
pub(crate) fn invariant_problem(at: &str, what: &str, offenders: &[String]) -> String {
    let shown: Vec<String> = offenders.iter().take(SHOWN).map(|r| crate::text::escape(r).into_owned()).collect();
    let more = if offenders.len() > SHOWN { format!(" and {} more", offenders.len() - SHOWN) } else { String::new() };
    format!("{at}: {what}: {}{more}", shown.join(", "))
}

/// The audit row of one account's create outcome (both backends write it inside the chunk's
/// transaction, unless it is a dry run).
pub(crate) fn create_audit(
    run_id: &str,
    item: &CreateItem<'_>,
    attempt: u32,
    started_at: &str,
    result: &CreateResult,
) -> AuditRecord {
    AuditRecord {
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
        started_at: started_at.to_owned(),
        finished_at: crate::clock::now(),
        request: item.request.cloned(),
        push: None,
    }
}

/// A new Kraken account number: `A-` and 8 random uppercase hex digits.
pub(crate) fn new_account_number() -> String {
    format!("A-{:08X}", rand::random::<u32>())
}

/// What a chunk written together did with each account, from what it claimed (the new number
/// and creation time of each account it created); `None` when an account is to fail on purpose
/// (tests), which fails the chunk.
pub(crate) fn written_together(
    items: &[CreateItem<'_>],
    claimed: Vec<Option<(String, String)>>,
) -> Option<Vec<AccountWritten>> {
    let written: Vec<AccountWritten> = items
        .iter()
        .zip(claimed)
        .map(|(item, claim)| match (&item.invalid, claim) {
            (Some(_), _) => AccountWritten::Invalid,
            (None, Some((number, _))) => AccountWritten::Created { kraken_account_number: number },
            (None, None) => AccountWritten::NotStaged,
        })
        .collect();
    let fails = items
        .iter()
        .zip(&written)
        .any(|(item, w)| matches!(w, AccountWritten::Created { .. }) && fails_on_purpose(item));
    (!fails).then_some(written)
}

/// Tests fail one chosen account after its records are written.
pub(crate) fn fails_on_purpose(item: &CreateItem<'_>) -> bool {
    crate::workdir::failpoint_for("create-account-fails", item.external_account_number)
}

/// Opens the work directory's store: its own ferry.db, or the PostgreSQL store it names. The
/// one place that picks the backend: every front end holds the store as the [`Store`] trait.
pub fn open(wd: &crate::workdir::Workdir) -> Result<Box<dyn Store>, crate::error::Error> {
    match &wd.store {
        Some(target) => Ok(Box::new(pg::PgStore::open(target)?)),
        None => Ok(Box::new(sqlite::SqliteStore::open(&wd.root, true)?)),
    }
}

/// Opens the store of a work directory even when it is damaged or older than its work
/// directory, for `ferry check` to say what is wrong.
pub fn open_unverified(wd: &crate::workdir::Workdir) -> Result<Box<dyn Store>, crate::error::Error> {
    match &wd.store {
        Some(target) => Ok(Box::new(pg::PgStore::open(target)?)),
        None => Ok(Box::new(sqlite::SqliteStore::open(&wd.root, false)?)),
    }
}

/// The operations of the store, for every backend. `Send`: a command hands the store to its
/// writer thread.
pub trait Store: Send {
    /// Every import supplier, by code.
    fn suppliers(&self) -> Result<Vec<Supplier>, StoreError>;
    /// Sets a supplier's migration status (the supplier is created if it is new); returns
    /// its previous status.
    fn set_supplier_status(
        &mut self,
        code: &str,
        status: MigrationStatus,
    ) -> Result<Option<MigrationStatus>, StoreError>;
    /// Every operations team, by name.
    fn teams(&self) -> Result<Vec<Team>, StoreError>;
    /// Adds a team; false when it already exists.
    fn add_team(&mut self, name: &str) -> Result<bool, StoreError>;
    /// Every API token, by name.
    fn tokens(&self) -> Result<Vec<Token>, StoreError>;
    /// Adds an API token with the SHA-256 (hex) of its key; false when the name is taken.
    fn add_token(&mut self, name: &str, role: &str, key_sha256: &str) -> Result<bool, StoreError>;
    /// Revokes a token; false when there is no such token, or it was revoked already.
    fn revoke_token(&mut self, name: &str) -> Result<bool, StoreError>;
    /// The live (not revoked) token whose key has this SHA-256.
    fn token_by_key(&self, key_sha256: &str) -> Result<Option<Token>, StoreError>;

    /// Starts a run, or resumes the unfinished run with the same fingerprint.
    fn begin_run(
        &mut self,
        command: &str,
        fingerprint: &str,
        args: &str,
        parent: Option<&str>,
    ) -> Result<RunStart, StoreError>;
    /// One run, by id.
    fn run(&self, id: &str) -> Result<Option<Run>, StoreError>;
    /// The processes whose latest create outcome in `run_id` failed (a 4xx, or an interrupted
    /// 500), optionally only with one of `codes`, with how many create attempts each has had
    /// in all.
    fn failed_in_run(&self, run_id: &str, codes: Option<&[String]>) -> Result<Vec<(String, String, u32)>, StoreError>;
    /// Runs that never finished (crashed or killed), oldest first.
    fn unfinished_runs(&self) -> Result<Vec<Run>, StoreError>;
    /// Marks a run finished with its status.
    fn finish_run(&mut self, run_id: &str, status: &str) -> Result<(), StoreError>;
    /// Suppliers and processes, for deciding stage outcomes.
    fn stage_snapshot(&self) -> Result<StageSnapshot, StoreError>;
    /// Opens the one write transaction of a stage run: nothing added to it is visible, or
    /// survives a crash, until [`Store::commit_stage`].
    fn begin_stage(&mut self, run_id: &str) -> Result<(), StoreError>;
    /// Adds a batch of a run's rows to the open stage transaction.
    fn add_to_stage(&mut self, run_id: &str, rows: &StageRows) -> Result<(), StoreError>;
    /// Records the published staged files (`location`: their directory) with their lengths and
    /// checksums, marks the run committed and commits the stage transaction: all of it or none.
    fn commit_stage(&mut self, run_id: &str, files: &[(String, crate::ingest::WrittenFile)]) -> Result<(), StoreError>;
    /// The staged files recorded for a location (none for locations staged before ferry
    /// recorded them).
    fn staged_files(&self, location: &str) -> Result<Vec<crate::ingest::WrittenFile>, StoreError>;
    /// Abandons the open stage transaction.
    fn rollback_stage(&mut self) -> Result<(), StoreError>;
    /// The audit rows of one run, in the order they were appended.
    fn run_audit(&self, run_id: &str) -> Result<Vec<AuditRecord>, StoreError>;
    /// At most `limit` audit rows of one run after the row with id `after`, in order, each with
    /// its id (a page of a run that may hold millions of rows).
    fn run_audit_page(
        &self,
        run_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, AuditRecord)>, StoreError>;
    /// One import process.
    fn process(&self, supplier: &str, external: &str) -> Result<Option<Process>, StoreError>;
    /// At most `limit` processes of a supplier, by external account number, after `after` (a
    /// page of a list that may be millions long).
    fn processes_after(
        &self,
        supplier: &str,
        filter: ProcessFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Process>, StoreError>;
    /// STAGED → SKIPPED with a reason (`skip`), or SKIPPED → STAGED (`!skip`).
    fn set_skipped(
        &mut self,
        supplier: &str,
        external: &str,
        skip: bool,
        reason: Option<&str>,
    ) -> Result<Result<(), SkipRefused>, StoreError>;
    /// How many staged versions a run registered.
    fn run_versions(&self, run_id: &str) -> Result<u64, StoreError>;
    /// What is wrong with the store itself, one sentence each (none when sound): the
    /// backend's own integrity check, its foreign keys, the state machine's invariants
    /// (docs/operations.md), and whether it is older than what ferry committed to it.
    fn problems(&self) -> Result<Vec<String>, StoreError>;
    /// A consistent copy of the whole store at `dest` (a new file), taken while other ferry
    /// processes may be writing to it.
    fn backup(&self, dest: &std::path::Path) -> Result<(), crate::error::Error>;
    /// Every location a staged version references (committed versions only).
    fn staged_locations(&self) -> Result<Vec<String>, StoreError>;
    /// Creates (or extends) the account record tables of `schema`.
    fn ensure_record_tables(&mut self, schema: &crate::schema::Schema) -> Result<(), StoreError>;
    /// The current staged version of every STAGED process of a supplier.
    fn pending_versions(&self, supplier: &str) -> Result<Vec<StagedRef>, StoreError>;
    /// The current staged version of one account when its process is STAGED.
    fn pending_version(&self, supplier: &str, external: &str) -> Result<Option<StagedRef>, StoreError>;
    /// [`Store::pending_version`] of each of `externals`, in their order (a server store answers
    /// them in one round trip instead of one each).
    fn pending_versions_of(&self, supplier: &str, externals: &[&str]) -> Result<Vec<Option<StagedRef>>, StoreError> {
        externals.iter().map(|e| self.pending_version(supplier, e)).collect()
    }
    /// Creates the accounts of one chunk in one transaction, each with its audit row. One
    /// failing account never undoes another: the chunk is then written again with a savepoint
    /// per account, and only the failing one is undone. A dry run does all of it and rolls it
    /// all back.
    fn create_chunk(
        &mut self,
        schema: &crate::schema::Schema,
        run_id: &str,
        items: &[CreateItem<'_>],
        dry_run: bool,
        outcome: OutcomeOf<'_>,
    ) -> Result<Vec<CreateResult>, StoreError>;
    /// Records the creations an interrupted chunk left in flight: one failed attempt
    /// (`interrupted`'s status, code and body) in the audit of the run that started it, per
    /// account; the accounts themselves are STAGED with no record and are created again.
    /// Returns them.
    fn record_interrupted_creations(&mut self, interrupted: &Interrupted) -> Result<Vec<AuditRecord>, StoreError>;
    /// Appends audit rows in one transaction.
    fn append_audit(&mut self, rows: &[AuditRecord]) -> Result<(), StoreError>;

    /// Caps the memory the store keeps for caching, in MiB: a command that writes little at a
    /// time (`ferry push`) needs far less than a bulk create.
    fn limit_cache(&mut self, mib: u32) -> Result<(), StoreError>;
    /// Commits the intents of creates `ferry push` is about to send, in one transaction
    /// (an account's earlier intent for the same target is replaced).
    fn add_push_intents(&mut self, intents: &[PushIntent]) -> Result<(), StoreError>;
    /// The create intents left for a target API (by a push that was killed, or one running).
    fn push_intents(&self, target: &str) -> Result<Vec<PushIntent>, StoreError>;
    /// Records answered push attempts of one target in one transaction: their audit rows, the
    /// account numbers the target gave, and the intents they settle.
    fn record_push(&mut self, target: &str, records: &[PushRecord]) -> Result<(), StoreError>;
    /// The accounts of a supplier that target APIs created (of one target, or of every one), by
    /// external account number; only those from `between.0` to `between.1` (inclusive) when given.
    fn remote_accounts(
        &self,
        target: Option<&str>,
        supplier: &str,
        between: Option<(&str, &str)>,
    ) -> Result<Vec<RemoteAccount>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_are_bytes_and_equal_only_their_own_text() {
        let hex = "d76179030af9ddf371943d675d0c1bbba2e1f9f54d5c17f16db5b9f7ca6d33b4";
        let hash = StoredHash::parse(hex);
        assert!(matches!(hash, StoredHash::Sha256(_)));
        assert_eq!(hash.text(), hex);
        assert!(hash.is(hex));
        assert!(!hash.is(&hex.to_uppercase()), "ferry writes lowercase hex; other text is another hash");
        assert!(!hash.is(&hex[..63]));
        assert!(!hash.is(&format!("{}5", &hex[..63])));
        for other in ["not-the-data", "", &hex.to_uppercase(), &format!("{hex}0")] {
            let h = StoredHash::parse(other);
            assert!(matches!(h, StoredHash::Text(_)), "{other:?}");
            assert!(h.is(other) && !h.is(hex) && h.text() == other, "{other:?}");
        }
        let line = [0xab; 16];
        assert_eq!(parse_line_hash(&line_hash_text(line)), Some(line));
        assert_eq!(parse_line_hash("ab"), None);
        // A million of them are held at once by a stage snapshot.
        assert!(std::mem::size_of::<ProcessState>() <= 80, "{}", std::mem::size_of::<ProcessState>());
    }
}
