//! Staging: each account of a dump validated by exactly the validate code path, then given
//! the stage outcome of docs/operations.md against the store as it was when the run started,
//! and the rows of the accounts to store cut out, typed, per import supplier.
//!
//! [`Stager::stage_chunk`] is pure given the snapshot, so it runs inside the parallel flatten
//! step; the command's sink writes its results in input order and commits the store last.

pub mod export;
pub mod read;
pub mod typed;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::findings::{Finding, NON_FIELD_ERRORS, quote};
use crate::guide;
use crate::ingest::{ACCOUNT, Chunk, ChunkOutput, LINE, attr_path};
use crate::outcome::{FAILED_VALIDATION, failed_validation_body, for_each_line};
use crate::rules::RuleContext;
use crate::schema::{Schema, Severity, TableId};
use crate::store::{LineHash, MigrationStatus, ProcessStatus, StageSnapshot, hex_text};
use typed::{TypedTables, select_accounts};

/// The code of a value an accepted account has that its typed staged column cannot hold
/// (possible only when the rule rejecting it is not an error in the schema in use).
pub const NOT_STAGEABLE: &str = "not_stageable";

/// How staging decided one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// 201: first time staged.
    Created,
    /// 200: staged before, replaced by different data (a new version).
    Replaced,
    /// 200: staged before with exactly this data; no new version.
    Identical,
    /// 400: the validate body.
    Invalid,
    /// 400: imported already, with its account number.
    AlreadyImported(String),
    /// 400: an operator marked the process to be skipped.
    Skipped,
    /// 400: the supplier's migration is paused or complete.
    NotOngoing(MigrationStatus),
}

impl Decision {
    pub fn status(&self) -> u16 {
        match self {
            Decision::Created => 201,
            Decision::Replaced | Decision::Identical => 200,
            _ => 400,
        }
    }

    /// Whether the account's rows are written as a new staged version.
    pub fn writes(&self) -> bool {
        matches!(self, Decision::Created | Decision::Replaced)
    }
}

/// The stage outcome of one line of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineOutcome {
    pub line: u64,
    pub import_supplier: Option<String>,
    pub external_account_number: Option<String>,
    pub decision: Decision,
    pub error_code: Option<String>,
    pub body: String,
    /// sha256 of the account as the schema normalises it (accepted accounts only).
    pub payload_hash: Option<String>,
}

/// The rows of one supplier's accounts to stage from one chunk.
#[derive(Debug)]
pub struct SupplierRows {
    pub supplier: String,
    /// One typed batch per table; `_account` counts this supplier's accounts in the chunk.
    pub tables: Vec<RecordBatch>,
    /// For each root row of `tables`, the index of its line in [`ChunkStage::outcomes`].
    pub outcomes: Vec<usize>,
    /// For each root row of `tables`, its [`rows_hashes`] (computed here, in parallel, rather
    /// than where the rows are written in input order).
    pub rows_hashes: Vec<String>,
    /// For each root row of `tables`, the [`LineHash`] of its line.
    pub line_hashes: Vec<Option<LineHash>>,
}

/// What staging made of one chunk.
#[derive(Debug)]
pub struct ChunkStage {
    pub outcomes: Vec<LineOutcome>,
    pub staged: Vec<SupplierRows>,
    /// Rows (flattened, as text) of the accounts that failed validation.
    pub quarantine: Vec<RecordBatch>,
    /// When the chunk was staged (the audit's `started_at`).
    pub started_at: String,
    /// The [`LineHash`] of each account of the chunk, in root row order, as
    /// [`Stager::line_hashes`] gave them (staging the chunk again needs them).
    pub line_hashes: Vec<Option<LineHash>>,
    /// The identical accounts whose current versions do not have their line's hash yet: the
    /// index of each one's outcome, and the hash (see [`crate::store::LineSeen`]).
    pub seen: Vec<(usize, LineHash)>,
}

/// An account's import supplier and external account number, when it has them.
type AccountKey<'a> = (Option<&'a str>, Option<&'a str>);

/// The lines of a chunk, decided.
struct Decided {
    outcomes: Vec<LineOutcome>,
    /// The accounts to write, as (root row, outcome index).
    writes: Vec<(usize, usize)>,
    /// Which accounts failed validation, by root row.
    quarantined: Vec<bool>,
    /// The identical accounts whose versions take their line's hash, as (outcome index, hash).
    seen: Vec<(usize, LineHash)>,
}

/// Stages chunks against one snapshot of the store.
pub struct Stager<'a> {
    schema: &'a Schema,
    ctx: &'a RuleContext,
    typed: TypedTables,
    parents: Vec<Option<usize>>,
    snapshot: StageSnapshot,
    /// When set, only the accounts it admits are decided; every other line is left out
    /// entirely.
    only: Option<AccountFilter>,
    /// The seed of every [`LineHash`]: from the ferry release and the schema.
    line_seed: u64,
}

/// The accounts of a dump a run is limited to; the others get no outcome, no finding, no rows.
#[derive(Debug, Clone)]
pub enum AccountFilter {
    /// These external account numbers, by import supplier (looked up without allocating).
    Keys(std::collections::HashMap<String, std::collections::HashSet<String>>),
    /// The accounts whose external account number hashes to shard `index` of `count`
    /// (1-based); a line without one goes by its line number, so that the shards of a dump
    /// cover every line exactly once.
    Shard { index: u32, count: u32 },
}

impl AccountFilter {
    /// The filter admitting exactly these (import supplier, external account number).
    pub fn keys(keys: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut by_supplier: std::collections::HashMap<String, std::collections::HashSet<String>> =
            std::collections::HashMap::new();
        for (supplier, external) in keys {
            by_supplier.entry(supplier).or_default().insert(external);
        }
        AccountFilter::Keys(by_supplier)
    }

    pub fn admits(&self, supplier: Option<&str>, external: Option<&str>, line: u64) -> bool {
        match self {
            AccountFilter::Keys(keys) => match (supplier, external) {
                (Some(s), Some(e)) => keys.get(s).is_some_and(|numbers| numbers.contains(e)),
                _ => false,
            },
            AccountFilter::Shard { index, count } => {
                let key = match external {
                    Some(e) => shard_of(e.as_bytes(), *count),
                    None => shard_of(format!("line {line}").as_bytes(), *count),
                };
                key == *index
            }
        }
    }

    /// What the filter is, for a run's fingerprint.
    pub fn describe(&self) -> String {
        match self {
            AccountFilter::Keys(keys) => {
                let mut pairs: Vec<(&String, &String)> =
                    keys.iter().flat_map(|(s, numbers)| numbers.iter().map(move |e| (s, e))).collect();
                pairs.sort();
                format!("{pairs:?}")
            }
            AccountFilter::Shard { index, count } => format!("shard {index}/{count}"),
        }
    }
}

/// The shard (1 to `count`) of a key: the first 8 bytes of its sha256, modulo `count`.
/// Stable across machines and releases, so that N machines agree on the split.
pub fn shard_of(key: &[u8], count: u32) -> u32 {
    let digest = Sha256::digest(key);
    let head = u64::from_be_bytes(digest[..8].try_into().expect("a sha256 has 32 bytes"));
    (head % u64::from(count)) as u32 + 1
}

impl<'a> Stager<'a> {
    pub fn new(schema: &'a Schema, ctx: &'a RuleContext, snapshot: StageSnapshot, only: Option<AccountFilter>) -> Self {
        // The same line flattens to the same rows only under the same schema and the same
        // flattener: a new release or another schema hashes every account again, once.
        let key = Sha256::digest(format!("ferry {} line\n{}\n", env!("CARGO_PKG_VERSION"), schema.hash));
        let line_seed = u64::from_be_bytes(key[..8].try_into().expect("a sha256 has 32 bytes"));
        Self {
            schema,
            ctx,
            typed: TypedTables::new(schema),
            parents: schema.parent_indices(),
            snapshot,
            only,
            line_seed,
        }
    }

    /// The [`LineHash`] of each account of a chunk, in root row order: xxh3-128 of the line's
    /// bytes as the flattener read them, seeded by the ferry release and the schema's hash.
    /// Equal line hashes mean equal rows, so equal payload hashes.
    ///
    /// xxh3 is not a cryptographic hash, and need not be: two lines that collide must be
    /// written by whoever writes the dump, who can stage any data they like without one. By
    /// chance, two lines of one account collide with odds of 2^-128. Sha256 over the raw lines
    /// cost as much as the payload hash it saves (issue 15).
    pub fn line_hashes(&self, chunk: &Chunk, out: &ChunkOutput) -> Vec<Option<LineHash>> {
        let Chunk::Lines { first_line, bytes } = chunk else {
            return Vec::new();
        };
        let root = out.tables[0].column_by_name(LINE).expect("key column").as_primitive::<UInt64Type>();
        // Root rows are in line order, at most one per line.
        let mut lines = crate::ingest::flatten::lines(*first_line, bytes);
        root.values()
            .iter()
            .map(|&wanted| {
                let (_, line) = lines.find(|(n, _)| *n == wanted)?;
                Some(twox_hash::XxHash3_128::oneshot_with_seed(self.line_seed, line).to_be_bytes())
            })
            .collect()
    }

    pub fn typed(&self) -> &TypedTables {
        &self.typed
    }

    /// Decides every line of a validated chunk (its findings include the rules'), adding a
    /// [`NOT_STAGEABLE`] finding for each value of an accepted account that its typed column
    /// cannot hold. `line_hashes` are the chunk's [`Stager::line_hashes`], or none: an account
    /// whose line hash is its staged version's takes that version's payload hash rather than
    /// computing it. Calling it again on the same chunk (after more findings were added) gives
    /// the result for the new findings.
    pub fn stage_chunk(&self, out: &mut ChunkOutput, line_hashes: Vec<Option<LineHash>>) -> ChunkStage {
        let started_at = crate::clock::now();
        out.findings.retain(|f| f.code != NOT_STAGEABLE);
        loop {
            // Values that do not fit their typed column reject their account; deciding again
            // without those accounts cannot find more.
            let Decided { outcomes, writes, quarantined, seen } = self.decide_lines(out, &line_hashes);
            let (staged, unfit) = self.typed_rows(out, &outcomes, &writes, &line_hashes);
            if unfit.is_empty() {
                let quarantine = if quarantined.contains(&true) {
                    select_accounts(&out.tables, &self.parents, &quarantined)
                } else {
                    Vec::new()
                };
                return ChunkStage { outcomes, staged, quarantine, started_at, line_hashes, seen };
            }
            out.findings.extend(unfit);
            out.findings.sort_by_key(|f| f.line);
        }
    }

    /// The outcome of every line, and what follows from them.
    fn decide_lines<'o>(&self, out: &'o ChunkOutput, line_hashes: &[Option<LineHash>]) -> Decided {
        let root = &out.tables[0];
        let text = |name: &str| root.column_by_name(name).map(|c| c.as_string::<i32>());
        let (suppliers, externals) = (text("import_supplier"), text("external_account_number"));
        let at =
            |c: Option<&'o arrow_array::StringArray>, row: usize| c.filter(|c| c.is_valid(row)).map(|c| c.value(row));
        // Each account's (import supplier, external account number), read once.
        let keys: Vec<AccountKey<'o>> =
            (0..root.num_rows()).map(|row| (at(suppliers, row), at(externals, row))).collect();
        let lines = root.column_by_name(LINE).expect("key column").as_primitive::<UInt64Type>();
        let mut ok = vec![true; root.num_rows()];
        let mut f = 0;
        for (row, line) in lines.values().iter().enumerate() {
            while out.findings.get(f).is_some_and(|x| x.line < *line) {
                f += 1;
            }
            while out.findings.get(f).is_some_and(|x| x.line == *line) {
                ok[row] &= out.findings[f].severity != Severity::Error;
                f += 1;
            }
        }
        let hashes = self.payload_hashes(&out.tables, ok.clone(), line_hashes, &keys);
        let mut outcomes = Vec::with_capacity(root.num_rows());
        let mut quarantined = vec![false; root.num_rows()];
        let mut writes: Vec<(usize, usize)> = Vec::new();
        let mut seen: Vec<(usize, LineHash)> = Vec::new();
        for_each_line(out, |line, account, findings| {
            let (supplier, external) = account.map_or((None, None), |row| keys[row]);
            if let Some(only) = &self.only
                && !only.admits(supplier, external, line)
            {
                return;
            }
            let hash = account.filter(|row| ok[*row]).and_then(|row| hashes[row].clone());
            let decision = match (&hash, supplier, external) {
                (Some(hash), Some(s), Some(e)) => self.decide(s, e, hash),
                _ => {
                    if let Some(row) = account {
                        quarantined[row] = true;
                    }
                    Decision::Invalid
                }
            };
            if decision.writes() {
                writes.push((account.expect("accepted lines are accounts"), outcomes.len()));
            }
            // An identical account from a line its version does not record: the version takes it.
            if decision == Decision::Identical
                && let (Some(row), Some(s), Some(e)) = (account, supplier, external)
                && let Some(line_hash) = line_hashes.get(row).copied().flatten()
                && self.snapshot.process(s, e).is_some_and(|p| p.line_hash != Some(line_hash))
            {
                seen.push((outcomes.len(), line_hash));
            }
            let (error_code, body) = self.body(&decision, supplier, external, findings);
            outcomes.push(LineOutcome {
                line,
                import_supplier: supplier.map(str::to_owned),
                external_account_number: external.map(str::to_owned),
                payload_hash: hash.filter(|_| decision.status() < 400),
                decision,
                error_code,
                body,
            });
        });
        Decided { outcomes, writes, quarantined, seen }
    }

    /// The payload hash of each account with `wanted[row]`. An account whose line hash is the
    /// one its current staged version was made from has that version's payload hash: the same
    /// line under the same schema and release gives the same rows. A re-stage of an unchanged
    /// dump then hashes no account (the hash was a fifth of such a run; issue 15).
    fn payload_hashes(
        &self,
        tables: &[RecordBatch],
        mut wanted: Vec<bool>,
        line_hashes: &[Option<LineHash>],
        keys: &[AccountKey<'_>],
    ) -> Vec<Option<String>> {
        let mut known: Vec<(usize, String)> = Vec::new();
        for (row, line_hash) in line_hashes.iter().enumerate() {
            let ((Some(s), Some(e)), Some(_), true) = (keys[row], line_hash, wanted[row]) else { continue };
            let process = self.snapshot.process(s, e).filter(|p| p.line_hash == *line_hash);
            if let Some(hash) = process.and_then(|p| p.payload_hash.as_ref()) {
                wanted[row] = false;
                known.push((row, hash.text()));
            }
        }
        let mut hashes = payload_hashes(tables, &wanted);
        for (row, hash) in known {
            hashes[row] = Some(hash);
        }
        hashes
    }

    /// The typed rows of the accounts to write, per supplier, or the findings of the values
    /// among them that their typed columns cannot hold.
    fn typed_rows(
        &self,
        out: &ChunkOutput,
        outcomes: &[LineOutcome],
        writes: &[(usize, usize)],
        line_hashes: &[Option<LineHash>],
    ) -> (Vec<SupplierRows>, Vec<Finding>) {
        let mut suppliers: Vec<&str> = Vec::new();
        for (_, o) in writes {
            let s = outcomes[*o].import_supplier.as_deref().expect("staged accounts have a supplier");
            if !suppliers.contains(&s) {
                suppliers.push(s);
            }
        }
        let mut staged = Vec::with_capacity(suppliers.len());
        let mut unfit = Vec::new();
        for supplier in suppliers {
            let mut keep = vec![false; out.tables[0].num_rows()];
            let mut rows = Vec::new();
            let mut hashes_of_lines = Vec::new();
            for (row, o) in writes {
                if outcomes[*o].import_supplier.as_deref() == Some(supplier) {
                    keep[*row] = true;
                    rows.push(*o);
                    hashes_of_lines.push(line_hashes.get(*row).copied().flatten());
                }
            }
            // `writes` is in row order, so the selection's root rows follow `rows`.
            let selected = select_accounts(&out.tables, &self.parents, &keep);
            let (tables, failures) = self.typed.convert(&selected, self.ctx.tz);
            for u in failures {
                let account = selected[u.table]
                    .column_by_name(ACCOUNT)
                    .expect("key column")
                    .as_primitive::<UInt32Type>()
                    .value(u.row) as usize;
                let o = &outcomes[rows[account]];
                let path = attr_path(self.schema, &selected, TableId(u.table), u.row);
                unfit.push(Finding {
                    line: o.line,
                    import_supplier: o.import_supplier.clone(),
                    external_account_number: o.external_account_number.clone(),
                    attr: if path.is_empty() { u.column } else { format!("{path}.{}", u.column) },
                    code: NOT_STAGEABLE.to_owned(),
                    severity: Severity::Error,
                    detail: format!("{} {}: it cannot be staged", quote(&u.value), u.why),
                    value: Some(u.value),
                });
            }
            let rows_hashes = if unfit.is_empty() {
                rows_hashes(&tables, &vec![true; rows.len()]).into_iter().map(Option::unwrap_or_default).collect()
            } else {
                Vec::new() // decided again without the unfit accounts
            };
            staged.push(SupplierRows {
                supplier: supplier.to_owned(),
                tables,
                outcomes: rows,
                rows_hashes,
                line_hashes: hashes_of_lines,
            });
        }
        (staged, unfit)
    }

    /// The stage outcome of an accepted account, in the guide's order: imported or skipped,
    /// then the supplier's migration status, then new, replaced or identical.
    fn decide(&self, supplier: &str, external: &str, hash: &str) -> Decision {
        let process = self.snapshot.process(supplier, external);
        match process.map(|p| p.status) {
            Some(ProcessStatus::Imported) => {
                let number = process.and_then(|p| p.kraken_account_number.as_deref()).unwrap_or_default().to_owned();
                return Decision::AlreadyImported(number);
            }
            Some(ProcessStatus::Skipped) => return Decision::Skipped,
            _ => {}
        }
        if let Some(status @ (MigrationStatus::Paused | MigrationStatus::Complete)) =
            self.snapshot.suppliers.get(supplier)
        {
            return Decision::NotOngoing(*status);
        }
        match process {
            None => Decision::Created,
            Some(p) if p.payload_hash.as_ref().is_some_and(|h| h.is(hash)) => Decision::Identical,
            Some(_) => Decision::Replaced,
        }
    }

    /// The error code and JSON body of a decision.
    fn body(
        &self,
        decision: &Decision,
        supplier: Option<&str>,
        external: Option<&str>,
        findings: &[Finding],
    ) -> (Option<String>, String) {
        let external_text = external.unwrap_or_default();
        let (code, body) = match decision {
            Decision::Created | Decision::Replaced | Decision::Identical => {
                return (None, json!({ "import_supplier": supplier, "external_account_number": external }).to_string());
            }
            Decision::Invalid => return (Some(FAILED_VALIDATION.to_owned()), invalid_body(findings)),
            Decision::AlreadyImported(number) => {
                (guide::Code::AlreadyImported, guide::already_imported(external_text, Some(number)))
            }
            Decision::Skipped => (guide::Code::Skipped, guide::skipped(external_text)),
            Decision::NotOngoing(status) => (
                guide::Code::SupplierNotOngoing,
                guide::supplier_not_ongoing(supplier.unwrap_or_default(), &status.as_str().to_lowercase()),
            ),
        };
        (Some(code.as_str().to_owned()), body)
    }
}

/// The payload hash of every account with `wanted[account]` (None for the others), in root
/// row order: sha256 over the account's rows of every table, column by column, each value
/// with its presence and length. Two accounts hash alike exactly when the schema reads the
/// same data from them, whatever their key order, whitespace or unknown fields.
pub fn payload_hashes(tables: &[RecordBatch], wanted: &[bool]) -> Vec<Option<String>> {
    hashes(tables, wanted, Nulls::Slot)
}

/// The hash of every wanted account's typed rows, as staged and as read back from the staged
/// files: a staged version records it, and create compares what it reads. As
/// [`payload_hashes`], except that a null contributes only its absence (a Parquet reader and an
/// array builder leave different bytes in a null's slot).
pub fn rows_hashes(tables: &[RecordBatch], wanted: &[bool]) -> Vec<Option<String>> {
    hashes(tables, wanted, Nulls::Absent)
}

/// How a null in a fixed-width column is hashed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nulls {
    /// Its slot's bytes too, as payload hashes always have been (they must not change).
    Slot,
    /// Only its absence.
    Absent,
}

fn hashes(tables: &[RecordBatch], wanted: &[bool], nulls: Nulls) -> Vec<Option<String>> {
    // Each account's bytes are gathered in its own buffer, table by table and column by column,
    // then hashed in one call: a chunk's accounts hold about as many bytes as the chunk's input,
    // and one long update costs far less than a short one per column (issue 15).
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); wanted.len()];
    let mut ranges: Vec<(usize, usize, usize)> = Vec::new();
    for batch in tables {
        let accounts = batch.column_by_name(ACCOUNT).expect("key column").as_primitive::<UInt32Type>().values();
        // Rows of one account are contiguous and in order in every table.
        ranges.clear();
        let mut start = 0;
        for row in 1..=accounts.len() {
            if row == accounts.len() || accounts[row] != accounts[start] {
                let account = accounts[start] as usize;
                if wanted[account] {
                    ranges.push((account, start, row));
                }
                start = row;
            }
        }
        for &(account, from, to) in &ranges {
            bufs[account].extend_from_slice(&((to - from) as u32).to_le_bytes());
        }
        for column in batch.columns().iter().skip(crate::ingest::KEY_COLUMNS) {
            column_bytes(column, &ranges, &mut bufs, nulls);
        }
    }
    bufs.iter().zip(wanted).map(|(buf, w)| w.then(|| hex_text(&Sha256::digest(buf)))).collect()
}

/// Each value of a fixed-width column with its presence. A null's slot bytes go in with
/// [`Nulls::Slot`], and nothing with [`Nulls::Absent`] (a Parquet reader and an array builder
/// fill the slot differently).
fn fixed<T: arrow_array::ArrowPrimitiveType>(
    column: &arrow_array::ArrayRef,
    ranges: &[(usize, usize, usize)],
    bufs: &mut [Vec<u8>],
    nulls: Nulls,
) {
    use arrow_buffer::ToByteSlice;
    let c = column.as_primitive::<T>();
    for &(account, from, to) in ranges {
        let buf = &mut bufs[account];
        for row in from..to {
            let valid = c.is_valid(row);
            buf.push(u8::from(valid));
            if valid || nulls == Nulls::Slot {
                buf.extend_from_slice(c.value(row).to_byte_slice());
            }
        }
    }
}

/// Appends the hashed bytes of each range `(account, from, to)` of rows of a column to its
/// account's buffer. The column's type is looked at once, not once per account.
fn column_bytes(column: &arrow_array::ArrayRef, ranges: &[(usize, usize, usize)], bufs: &mut [Vec<u8>], nulls: Nulls) {
    use arrow_array::types::Int64Type;
    use arrow_schema::DataType;
    match column.data_type() {
        DataType::Utf8 => {
            let c = column.as_string::<i32>();
            let offsets = c.value_offsets();
            let nulls = c.nulls().filter(|n| n.null_count() > 0);
            for &(account, from, to) in ranges {
                let buf = &mut bufs[account];
                // The rows' text is contiguous: one reservation for all of it and its framing.
                buf.reserve((offsets[to] - offsets[from]) as usize + 5 * (to - from));
                for row in from..to {
                    if nulls.is_none_or(|n| n.is_valid(row)) {
                        let v = c.value(row).as_bytes();
                        buf.push(1);
                        buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                        buf.extend_from_slice(v);
                    } else {
                        buf.push(0);
                    }
                }
            }
        }
        DataType::Boolean => {
            let c = column.as_boolean();
            for &(account, from, to) in ranges {
                let valid = |row: usize| c.is_valid(row);
                bufs[account].extend((from..to).map(|row| if valid(row) { 1 + u8::from(c.value(row)) } else { 0 }));
            }
        }
        DataType::Int64 => fixed::<Int64Type>(column, ranges, bufs, nulls),
        DataType::UInt32 => fixed::<UInt32Type>(column, ranges, bufs, nulls),
        // The typed columns of staged files (the rows hash of a staged version).
        DataType::Decimal128(..) => fixed::<arrow_array::types::Decimal128Type>(column, ranges, bufs, Nulls::Absent),
        DataType::Date32 => fixed::<arrow_array::types::Date32Type>(column, ranges, bufs, Nulls::Absent),
        DataType::Timestamp(..) => {
            fixed::<arrow_array::types::TimestampMicrosecondType>(column, ranges, bufs, Nulls::Absent)
        }
        other => unreachable!("flattened and typed columns are never {other}"),
    }
}

/// The validate 400 body; a line that is not an account carries its line-level errors.
fn invalid_body(findings: &[Finding]) -> String {
    if findings.iter().any(|f| f.severity == Severity::Error) {
        return failed_validation_body(findings);
    }
    // An account without its keys and no error cannot happen (the keys are required), but the
    // body must still say why nothing was staged.
    let reason = Finding {
        line: findings.first().map_or(0, |f| f.line),
        import_supplier: None,
        external_account_number: None,
        attr: NON_FIELD_ERRORS.to_owned(),
        code: NOT_STAGEABLE.to_owned(),
        severity: Severity::Error,
        detail: "the account has no import_supplier or external_account_number".to_owned(),
        value: None,
    };
    let mut all = findings.to_vec();
    all.push(reason);
    failed_validation_body(&all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ProcessState;

    fn decisions(schema: &Schema, ctx: &RuleContext, snapshot: StageSnapshot) -> String {
        let s = Stager::new(schema, ctx, snapshot, None);
        let names = [("NEW", "h"), ("SAME", "h"), ("CHANGED", "h2"), ("IMPORTED", "h"), ("SKIPPED", "h")]
            .map(|(ext, hash)| format!("{ext}:{:?}", s.decide("S", ext, hash)));
        names.join(" ")
    }

    fn process(status: ProcessStatus, hash: &str) -> ProcessState {
        ProcessState {
            status,
            payload_hash: Some(crate::store::StoredHash::parse(hash)),
            kraken_account_number: (status == ProcessStatus::Imported).then(|| "A-0000002A".into()),
            line_hash: None,
        }
    }

    /// Each account's line hash is of its own line, as the flattener read it: blank and broken
    /// lines have no account and are passed over, and line 1 loses its byte order mark.
    #[test]
    fn line_hashes_follow_the_accounts_lines() {
        let schema = Schema::builtin();
        let ctx = RuleContext::new(None, crate::settings::DEFAULT_TIMEZONE);
        let stager = Stager::new(&schema, &ctx, StageSnapshot::default(), None);
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.ndjson")).unwrap();
        let (a, b) = (text.lines().next().unwrap(), text.lines().nth(1).unwrap());
        let bytes = format!("\u{feff}{a}\n\n{{not json\n{b}\n").into_bytes();
        let chunk = crate::ingest::Chunk::Lines { first_line: 1, bytes };
        let out = crate::ingest::flatten_chunk(&schema, &crate::ingest::arrow_schemas(&schema), &chunk);
        let hash = |line: &str| {
            Some(twox_hash::XxHash3_128::oneshot_with_seed(stager.line_seed, line.as_bytes()).to_be_bytes())
        };
        assert_eq!(stager.line_hashes(&chunk, &out), vec![hash(a), hash(b)]);
        assert_ne!(hash(a), hash(b));
        // Another schema, another seed: the same line hashes differently.
        let text = format!("{}\n# another schema\n", crate::schema::BUILTIN_SCHEMA);
        let other = Schema::from_str("other.toml", &text).unwrap();
        assert_ne!(Stager::new(&other, &ctx, StageSnapshot::default(), None).line_seed, stager.line_seed);
    }

    /// Payload and rows hashes are stored with every staged version and compared on every
    /// re-stage and create: how they are computed may change, their values must not.
    #[test]
    fn hashes_of_the_sample_are_pinned() {
        let schema = Schema::builtin();
        let arrow = crate::ingest::arrow_schemas(&schema);
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.ndjson")).unwrap();
        let lines: String = text.lines().take(40).map(|l| format!("{l}\n")).collect();
        let out = crate::ingest::flatten_chunk(
            &schema,
            &arrow,
            &crate::ingest::Chunk::Lines { first_line: 1, bytes: lines.into_bytes() },
        );
        let accounts = out.tables[0].num_rows();
        let wanted: Vec<bool> = (0..accounts).map(|a| a % 3 != 1).collect();
        let digest = |hashes: Vec<Option<String>>| {
            let all: Vec<String> = hashes.into_iter().map(|h| h.unwrap_or_else(|| "-".to_owned())).collect();
            format!("{:x}", Sha256::digest(all.join(",").as_bytes()))
        };
        let typed = TypedTables::new(&schema);
        let (tables, _) = typed.convert(&out.tables, crate::settings::DEFAULT_TIMEZONE);
        assert_eq!(
            (accounts, digest(payload_hashes(&out.tables, &wanted)), digest(rows_hashes(&tables, &wanted))),
            (
                40,
                "d76179030af9ddf371943d675d0c1bbba2e1f9f54d5c17f16db5b9f7ca6d33b4".to_owned(),
                "e4247504eb438c033d5af8eae892d436bc0fbaac80448bfe15cf54820d5aaf37".to_owned()
            )
        );
    }

    /// The guide's order: imported or skipped first, then the supplier's migration status, then
    /// new, replaced or identical by the payload hash.
    #[test]
    fn stage_decisions_follow_the_guides_order() {
        let schema = Schema::builtin();
        let ctx = RuleContext::new(chrono::NaiveDate::from_ymd_opt(2026, 11, 27), crate::settings::DEFAULT_TIMEZONE);
        let mut snapshot = StageSnapshot::default();
        for (ext, status, hash) in [
            ("SAME", ProcessStatus::Staged, "h"),
            ("CHANGED", ProcessStatus::Staged, "h"),
            ("IMPORTED", ProcessStatus::Imported, "h"),
            ("SKIPPED", ProcessStatus::Skipped, "h"),
        ] {
            snapshot.insert_process("S", ext, process(status, hash));
        }
        assert_eq!(
            decisions(&schema, &ctx, snapshot.clone()),
            "NEW:Created SAME:Identical CHANGED:Replaced IMPORTED:AlreadyImported(\"A-0000002A\") SKIPPED:Skipped"
        );
        snapshot.suppliers.insert("S".to_owned(), MigrationStatus::Paused);
        assert_eq!(
            decisions(&schema, &ctx, snapshot),
            "NEW:NotOngoing(Paused) SAME:NotOngoing(Paused) CHANGED:NotOngoing(Paused) \
             IMPORTED:AlreadyImported(\"A-0000002A\") SKIPPED:Skipped"
        );
        assert_eq!(Decision::Created.status(), 201);
        assert_eq!(Decision::Identical.status(), 200);
        assert_eq!(Decision::Skipped.status(), 400);
    }
}
