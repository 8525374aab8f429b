//! `ferry create`: replay the current staged data of import processes into account records.
//!
//! Staged directories are streamed in windows of accounts; each window is turned back into
//! the flattened text form and checked by the rules again (in parallel, by table); the
//! selected accounts are then created in chunks of at most `--concurrency`, each chunk one
//! store transaction (written again with a savepoint per account if one account fails, so
//! that only that one is undone). A kill loses at most the chunk in flight,
//! whose accounts stay STAGED and are created by the next run.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::clock::{new_run_id, now};
use crate::error::{Error, ExitStatus};
use crate::findings::Finding;
use crate::guide;
use crate::outcome::failed_validation_body;
use crate::rules::{RuleContext, validate_tables};
use crate::schema::Severity;
use crate::settings::Settings;
use crate::stage::read::{Window, to_text};
use crate::store::{
    AccountWritten, AuditRecord, CreateItem, CreateResult, ProcessStatus, RequestTag, StagedRef, Store,
};
use crate::workdir::Workdir;

use super::runs::{Counts, recover_interrupted};

/// The run's command in the store.
pub const COMMAND: &str = "create";
/// Accounts read back and re-validated together.
const WINDOW: u64 = 256;

/// Takes the work directory's lock for a create or reprocess run. When another create run
/// holds it, its creations fill the limit of accounts in flight: this caller gets the
/// guide's 429 body on stdout (and exit 2), to retry once that run has finished.
pub fn lock_for_creating(wd: &Workdir, command: &str) -> Result<crate::workdir::WorkdirLock, Error> {
    wd.try_lock(command)?.map_err(|holder| {
        if let Some(h) = holder.as_ref().filter(|h| matches!(h.command.as_str(), "create" | "reprocess")) {
            println!("{}", guide::concurrency_limit(&h.sentence("is creating accounts")));
            eprintln!("{}", guide::Code::ConcurrencyLimitExceeded.status().line());
        }
        wd.busy(holder.as_ref())
    })
}

/// What one create run does.
pub struct Job<'a> {
    /// `create` or `reprocess`: the run's command in the store.
    pub command: &'static str,
    pub supplier: &'a str,
    pub team: &'a str,
    /// The external account numbers to create; every pending one when `None`.
    pub accounts: Option<Vec<String>>,
    pub dry_run: bool,
    pub concurrency: usize,
    /// The run a reprocess run re-runs the failures of.
    pub parent: Option<&'a str>,
}

/// Creates the job's accounts as one run; returns its outcome counts.
pub fn create(
    settings: &Settings,
    wd: &Workdir,
    store: &mut dyn Store,
    lock: &mut crate::workdir::WorkdirLock,
    job: &Job<'_>,
) -> Result<Created, Error> {
    let (schema, ctx) = (&settings.schema, &settings.rules);
    store.ensure_record_tables(schema)?;
    let supplier = job.supplier;
    let (run_id, resumed) = if job.dry_run {
        (new_run_id(), false)
    } else {
        let fingerprint = format!(
            "{:x}",
            Sha256::digest(format!(
                "{}\n{supplier}\n{}\n{:?}\n{:?}\n{}",
                job.command, job.team, job.accounts, job.parent, schema.hash
            ))
        );
        // The timezone is recorded so that `ferry reprocess` re-validates in the same one.
        let run_args =
            serde_json::json!({ "supplier": supplier, "team": job.team, "timezone": settings.timezone().name() })
                .to_string();
        let start = store.begin_run(job.command, &fingerprint, &run_args, job.parent)?;
        if start.resumed {
            eprintln!("resuming run {}: accounts it created stay created; the rest are created now", start.run.id);
        }
        (start.run.id, start.resumed)
    };
    lock.describe(Some(&run_id))?;
    if !job.dry_run {
        recover_interrupted(store, wd, schema, &run_id)?;
    }
    let (selected, mut early) = select(store, supplier, job.accounts.as_deref())?;
    if resumed {
        // What the interrupted attempt of this run created is not "already imported".
        let created: std::collections::HashSet<String> = store
            .run_audit(&run_id)?
            .into_iter()
            .filter(|r| r.status_code == 201)
            .filter_map(|r| r.external_account_number)
            .collect();
        early.retain(|r| r.external_account_number.as_ref().is_none_or(|ext| !created.contains(ext)));
    }
    for row in &mut early {
        row.run_id.clone_from(&run_id);
    }
    let team_known = store.teams()?.iter().any(|t| t.name == job.team);
    // A dry run keeps nothing in the store: its outcomes go straight to the run's file.
    let mut dry_out = if job.dry_run { Some(super::runs::OutcomeWriter::create(schema, wd, &run_id)?) } else { None };
    let mut max_in_flight = 0;
    if team_known {
        if let Some(out) = dry_out.as_mut() {
            out.write(&std::mem::take(&mut early))?;
        }
        let bar = super::account_progress(selected.len() as u64);
        let by_location = group_by_location(selected);
        // Damage to a staged file stops the run before anything is created from it.
        for location in by_location.keys() {
            super::staged::check_files(store, wd, location)?;
        }
        // Windows are read back and re-validated on one thread while the accounts of the
        // previous window are written on this one (the store has one connection).
        let (to_writer, prepared) = std::sync::mpsc::sync_channel::<Prepared>(2);
        std::thread::scope(|threads| -> Result<(), Error> {
            let reader = threads.spawn(move || prepare_windows(schema, ctx, wd, &by_location, &to_writer));
            for window in prepared {
                let rows =
                    write_window(store, schema, &run_id, supplier, &window, job, &Requests::new(), &mut max_in_flight)?;
                bar.inc(window.accounts.len() as u64);
                if let Some(out) = dry_out.as_mut() {
                    out.write(&rows)?;
                }
            }
            reader.join().expect("the window reader does not panic")
        })?;
        bar.finish_and_clear();
    } else {
        let body = guide::team_unknown(job.team);
        for s in selected {
            early.push(audit(&run_id, &s.external_account_number, supplier, guide::Code::TeamUnknown, &body));
        }
    }
    let counts = match dry_out {
        Some(mut out) => {
            out.write(&early)?;
            out.finish()?
        }
        None => {
            store.append_audit(&early)?;
            close_run(store, wd, schema, &run_id)?
        }
    };
    let mode = if job.dry_run { " (dry run: nothing was kept)" } else { "" };
    eprintln!(
        "{}at most {max_in_flight} accounts in flight (limit {}){mode}",
        counts.render(&run_id, COMMAND),
        job.concurrency
    );
    if !team_known {
        eprintln!("team {:?} does not exist: add it with `ferry team add`", job.team);
    }
    Ok(Created { run_id, counts })
}

/// Exports a create run's outcomes and marks it finished, clean or rejected.
fn close_run(
    store: &mut dyn Store,
    wd: &Workdir,
    schema: &crate::schema::Schema,
    run_id: &str,
) -> Result<Counts, Error> {
    let counts = super::runs::export_paged(store, schema, wd, run_id)?;
    store.finish_run(run_id, if counts.exit() == ExitStatus::Rejected { "rejected" } else { "clean" })?;
    Ok(counts)
}

/// The create batches of a long-lived writer (`ferry serve`): one run per supplier and team
/// for the writer's life instead of one per batch, and staged locations kept open between
/// batches (`staged::OpenLocations`), so that a batch costs its accounts' writes and
/// not a run's start, export and fsyncs. Each batch goes through the same selection, re-check
/// and chunked writes as [`create`]. A kill leaves the runs open: the next writer's
/// [`recover_interrupted`] records the creations in flight and exports and closes them.
pub struct Session {
    /// Makes the runs' fingerprints this session's own: a run is never resumed by another.
    id: String,
    /// (supplier, team) → run.
    runs: Vec<((String, String), String)>,
    staged: super::staged::OpenLocations<std::sync::Arc<Checked>>,
}

impl Default for Session {
    fn default() -> Self {
        Self { id: new_run_id(), runs: Vec::new(), staged: super::staged::OpenLocations::default() }
    }
}

impl Session {
    /// Creates `job.accounts` (none twice) of one supplier for one team, each audit row tagged
    /// with the request that asked for it; returns one outcome row per account (a dry run keeps
    /// nothing and records nothing).
    pub fn create(
        &mut self,
        settings: &Settings,
        wd: &Workdir,
        store: &mut dyn Store,
        job: &Job<'_>,
        requests: &Requests,
    ) -> Result<Vec<AuditRecord>, Error> {
        let (schema, ctx) = (&settings.schema, &settings.rules);
        let (supplier, team) = (job.supplier, job.team);
        let run_id = if job.dry_run { new_run_id() } else { self.run(settings, store, supplier, team)? };
        let (selected, mut early) = select(store, supplier, job.accounts.as_deref())?;
        let mut rows = Vec::new();
        if store.teams()?.iter().any(|t| t.name == team) {
            for (location, accounts) in group_by_location(selected) {
                let (dir, windows) =
                    self.staged.windows(store, wd, schema, &location, &accounts, WINDOW, |window| {
                        let every = vec![true; window.tables[0].num_rows()];
                        Ok(std::sync::Arc::new(check_window(schema, ctx, window, &every)))
                    })?;
                for checked in windows {
                    let prepared = Prepared { text: checked.text.clone(), accounts: checked.pick(&dir, &accounts)? };
                    rows.extend(write_window(store, schema, &run_id, supplier, &prepared, job, requests, &mut 0)?);
                }
            }
        } else {
            let body = guide::team_unknown(team);
            for s in selected {
                early.push(audit(&run_id, &s.external_account_number, supplier, guide::Code::TeamUnknown, &body));
            }
        }
        for row in &mut early {
            row.run_id.clone_from(&run_id);
            row.request = row.external_account_number.as_ref().and_then(|e| requests.get(e)).cloned();
        }
        if !job.dry_run {
            store.append_audit(&early)?;
        }
        rows.extend(early);
        Ok(rows)
    }

    /// This session's run for a supplier and team, begun on first use.
    fn run(&mut self, settings: &Settings, store: &mut dyn Store, supplier: &str, team: &str) -> Result<String, Error> {
        if let Some((_, id)) = self.runs.iter().find(|((s, t), _)| s == supplier && t == team) {
            return Ok(id.clone());
        }
        let fingerprint = format!("{:x}", Sha256::digest(format!("serve\n{}\n{supplier}\n{team}", self.id)));
        let run_args = serde_json::json!({
            "supplier": supplier, "team": team, "timezone": settings.timezone().name(), "session": self.id,
        })
        .to_string();
        let id = store.begin_run(COMMAND, &fingerprint, &run_args, None)?.run.id;
        self.runs.push(((supplier.to_owned(), team.to_owned()), id.clone()));
        Ok(id)
    }

    /// Exports and closes every run of the session.
    pub fn finish(self, store: &mut dyn Store, wd: &Workdir, schema: &crate::schema::Schema) -> Result<(), Error> {
        for (_, run_id) in self.runs {
            close_run(store, wd, schema, &run_id)?;
        }
        Ok(())
    }
}

/// The requests (`ferry serve`) that asked for accounts, by external account number.
pub type Requests = HashMap<String, RequestTag>;

/// Creates the accounts of one prepared window in chunks of at most `job.concurrency`; returns
/// each one's outcome as an audit row (for a dry run, the only record of it).
#[allow(clippy::too_many_arguments)]
fn write_window(
    store: &mut dyn Store,
    schema: &crate::schema::Schema,
    run_id: &str,
    supplier: &str,
    window: &Prepared,
    job: &Job<'_>,
    requests: &Requests,
    max_in_flight: &mut usize,
) -> Result<Vec<AuditRecord>, Error> {
    let items: Vec<CreateItem<'_>> = window
        .accounts
        .iter()
        .map(|a| CreateItem {
            import_supplier: supplier,
            external_account_number: &a.external_account_number,
            line: a.line,
            tables: &window.text,
            account: a.row,
            invalid: a.invalid.clone(),
            request: requests.get(&a.external_account_number),
        })
        .collect();
    let mut rows = Vec::with_capacity(items.len());
    for chunk in items.chunks(job.concurrency) {
        *max_in_flight = (*max_in_flight).max(chunk.len());
        let results = store.create_chunk(schema, run_id, chunk, job.dry_run, &outcome_of)?;
        let finished_at = now();
        rows.extend(chunk.iter().zip(results).map(|(item, r)| AuditRecord {
            run_id: run_id.to_owned(),
            operation: "create".to_owned(),
            attempt: r.attempt,
            import_supplier: Some(supplier.to_owned()),
            external_account_number: Some(item.external_account_number.to_owned()),
            line: Some(item.line),
            status_code: r.status,
            error_code: r.error_code,
            body: r.body,
            kraken_account_number: r.kraken_account_number,
            started_at: finished_at.clone(),
            finished_at: finished_at.clone(),
            request: item.request.cloned(),
            push: None,
        }));
    }
    Ok(rows)
}

/// The guide's create outcome of what the store did with an account.
fn outcome_of(item: &CreateItem<'_>, written: AccountWritten, attempt: u32, dry_run: bool) -> CreateResult {
    let (code, body) = match written {
        AccountWritten::Invalid => (guide::Code::AccountFailedValidation, item.invalid.clone().unwrap_or_default()),
        AccountWritten::NotStaged => (guide::Code::NotStaged, guide::no_longer_staged(item.external_account_number)),
        AccountWritten::Rejected { error } => (guide::Code::RecordRejected, guide::record_rejected(&error)),
        AccountWritten::Busy { limit } => (
            guide::Code::ConcurrencyLimitExceeded,
            guide::concurrency_limit(&format!("{limit} account creations are in flight on this store's instances.")),
        ),
        AccountWritten::Created { .. } if dry_run => (guide::Code::DryRunRolledBack, guide::dry_run_rolled_back()),
        AccountWritten::Created { kraken_account_number } => {
            return CreateResult {
                status: guide::Status::Created.code(),
                error_code: None,
                body: guide::created(&kraken_account_number),
                kraken_account_number: Some(kraken_account_number),
                attempt,
            };
        }
    };
    CreateResult {
        status: code.status().code(),
        error_code: Some(code.as_str().to_owned()),
        body,
        kraken_account_number: None,
        attempt,
    }
}

/// What a create run came to.
pub struct Created {
    pub run_id: String,
    pub counts: Counts,
}

/// The STAGED processes to create, and the outcomes of the accounts that cannot be.
fn select(
    store: &dyn Store,
    supplier: &str,
    accounts: Option<&[String]>,
) -> Result<(Vec<StagedRef>, Vec<AuditRecord>), Error> {
    let Some(accounts) = accounts else { return Ok((store.pending_versions(supplier)?, Vec::new())) };
    let mut listed = std::collections::HashSet::new();
    // Listed twice: the first mention is being created.
    let unique: Vec<&str> = accounts.iter().map(String::as_str).filter(|ext| listed.insert(*ext)).collect();
    let mut selected = Vec::new();
    let mut early = Vec::new();
    for (ext, pending) in unique.iter().copied().zip(store.pending_versions_of(supplier, &unique)?) {
        if let Some(found) = pending {
            selected.push(found);
            continue;
        }
        let (code, body) = match store.process(supplier, ext)? {
            Some(p) if p.status == ProcessStatus::Imported => {
                (guide::Code::AlreadyImported, guide::already_imported(ext, p.kraken_account_number.as_deref()))
            }
            Some(p) if p.status == ProcessStatus::Skipped => (guide::Code::Skipped, guide::skipped(ext)),
            // STAGED without a committed version is not staged either.
            Some(_) | None => (guide::Code::NotStaged, guide::not_staged(ext, supplier)),
        };
        early.push(audit("", ext, supplier, code, &body));
    }
    Ok((selected, early))
}

fn audit(run_id: &str, ext: &str, supplier: &str, code: guide::Code, body: &str) -> AuditRecord {
    let status = code.status().code();
    let code = code.as_str();
    let t = now();
    AuditRecord {
        run_id: run_id.to_owned(),
        operation: "create".to_owned(),
        attempt: 1,
        import_supplier: Some(supplier.to_owned()),
        external_account_number: Some(ext.to_owned()),
        line: None,
        status_code: status,
        error_code: Some(code.to_owned()),
        body: body.to_owned(),
        kraken_account_number: None,
        started_at: t.clone(),
        finished_at: t,
        request: None,
        push: None,
    }
}

/// One window read back and re-validated, with the selected accounts in it.
struct Prepared {
    text: Vec<arrow_array::RecordBatch>,
    accounts: Vec<PreparedAccount>,
}

struct PreparedAccount {
    external_account_number: String,
    /// The account's root row in the window.
    row: usize,
    line: u64,
    /// The validate 400 body when the rules find an error now.
    invalid: Option<String>,
}

/// Reads every staged directory of the selection in windows, re-validates each window and
/// sends the selected accounts on; stops early when the writer stops listening.
fn prepare_windows(
    schema: &crate::schema::Schema,
    ctx: &RuleContext,
    wd: &Workdir,
    by_location: &BTreeMap<String, super::staged::Selected>,
    to_writer: &std::sync::mpsc::SyncSender<Prepared>,
) -> Result<(), Error> {
    for (location, accounts) in by_location {
        let dir = wd.staged_path(location)?;
        let mut reader = super::staged::Reader::open(schema, &dir)?;
        while let Some(window) = reader.next_window(WINDOW)? {
            let Some(prepared) = prepare(schema, ctx, &dir, &window, accounts)? else { continue };
            if to_writer.send(prepared).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One staged window's selected accounts, checked against their rows hashes and re-validated;
/// `None` when the window holds none of them.
fn prepare(
    schema: &crate::schema::Schema,
    ctx: &RuleContext,
    dir: &std::path::Path,
    window: &Window,
    accounts: &super::staged::Selected,
) -> Result<Option<Prepared>, Error> {
    let first = window.first_account;
    let keep: Vec<bool> =
        (first..first + window.tables[0].num_rows() as u64).map(|r| accounts.contains_key(&r)).collect();
    if !keep.contains(&true) {
        return Ok(None);
    }
    let checked = check_window(schema, ctx, window, &keep);
    let accounts = checked.pick(dir, accounts)?;
    Ok(Some(Prepared { text: checked.text, accounts }))
}

/// Accounts of a staged window back in the flattened text form and checked by the rules
/// again: what creating any of them needs.
struct Checked {
    text: Vec<arrow_array::RecordBatch>,
    /// One per account of `text`, in order.
    accounts: Vec<CheckedAccount>,
}

struct CheckedAccount {
    staged_row: u64,
    line: u64,
    /// The hash of its typed rows as read back.
    hash: Option<String>,
    /// The validate 400 body when the rules find an error now.
    invalid: Option<String>,
}

/// Turns the accounts of `window` with `keep[row]` back into text and runs the rules over them.
fn check_window(schema: &crate::schema::Schema, ctx: &RuleContext, window: &Window, keep: &[bool]) -> Checked {
    let hashes = crate::stage::rows_hashes(&window.tables, keep);
    let tables = crate::stage::typed::select_accounts(&window.tables, &schema.parent_indices(), keep);
    let text = to_text(schema, &tables);
    let mut by_line: HashMap<u64, Vec<Finding>> = HashMap::new();
    for f in validate_tables(schema, ctx, &text, &[]) {
        by_line.entry(f.line).or_default().push(f);
    }
    let lines = text[0].column_by_name(crate::ingest::LINE).expect("key column");
    let lines = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::UInt64Type>(lines);
    let kept = keep.iter().enumerate().filter(|(_, k)| **k).map(|(row, _)| row);
    let accounts = kept
        .enumerate()
        .map(|(text_row, row)| {
            let line = lines.value(text_row);
            CheckedAccount {
                staged_row: window.first_account + row as u64,
                line,
                hash: hashes[row].clone(),
                invalid: by_line.get(&line).and_then(|f| invalid_body(f)),
            }
        })
        .collect();
    Checked { text, accounts }
}

impl Checked {
    /// The `selected` accounts among these, each compared with the rows hash recorded when it
    /// was staged.
    fn pick(&self, dir: &std::path::Path, selected: &super::staged::Selected) -> Result<Vec<PreparedAccount>, Error> {
        let mut out = Vec::new();
        for (row, account) in self.accounts.iter().enumerate() {
            let Some((external, recorded)) = selected.get(&account.staged_row) else { continue };
            super::staged::check_hash(dir, account.staged_row, external, recorded.as_deref(), account.hash.as_deref())?;
            out.push(PreparedAccount {
                external_account_number: external.clone(),
                row,
                line: account.line,
                invalid: account.invalid.clone(),
            });
        }
        Ok(out)
    }
}

/// The selected accounts per staged directory, by their row there.
pub(super) fn group_by_location(selected: Vec<StagedRef>) -> BTreeMap<String, super::staged::Selected> {
    let mut out: BTreeMap<String, super::staged::Selected> = BTreeMap::new();
    for s in selected {
        out.entry(s.location).or_default().insert(s.account_row, (s.external_account_number, s.rows_hash));
    }
    out
}

/// The validate 400 body of an account with these findings, when one of them is an error.
fn invalid_body(findings: &[Finding]) -> Option<String> {
    findings.iter().any(|f| f.severity == Severity::Error).then(|| failed_validation_body(findings))
}
