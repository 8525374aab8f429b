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
use crate::stage::read::to_text;
use crate::store::{AccountWritten, AuditRecord, CreateItem, CreateResult, ProcessStatus, StagedRef, Store};
use crate::workdir::Workdir;

use super::runs::{Counts, export, recover_interrupted};

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
    let mut created_rows: Vec<AuditRecord> = Vec::new();
    let mut max_in_flight = 0;
    if team_known {
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
                    })
                    .collect();
                for chunk in items.chunks(job.concurrency) {
                    max_in_flight = max_in_flight.max(chunk.len());
                    let results = store.create_chunk(schema, &run_id, chunk, job.dry_run, &outcome_of)?;
                    bar.inc(chunk.len() as u64);
                    if job.dry_run {
                        created_rows.extend(chunk.iter().zip(results).map(|(item, r)| AuditRecord {
                            run_id: run_id.clone(),
                            operation: "create".to_owned(),
                            attempt: r.attempt,
                            import_supplier: Some(supplier.to_owned()),
                            external_account_number: Some(item.external_account_number.to_owned()),
                            line: Some(item.line),
                            status_code: r.status,
                            error_code: r.error_code,
                            body: r.body,
                            kraken_account_number: r.kraken_account_number,
                            started_at: now(),
                            finished_at: now(),
                        }));
                    }
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
    let rows = if job.dry_run {
        early.extend(created_rows);
        early
    } else {
        store.append_audit(&early)?;
        store.run_audit(&run_id)?
    };
    export(schema, wd, &run_id, &rows)?;
    let counts = Counts::of(&rows, 0);
    if !job.dry_run {
        store.finish_run(&run_id, if counts.exit() == ExitStatus::Rejected { "rejected" } else { "clean" })?;
    }
    let mode = if job.dry_run { " (dry run: nothing was kept)" } else { "" };
    eprintln!(
        "{}at most {max_in_flight} accounts in flight (limit {}){mode}",
        counts.render(&run_id, COMMAND),
        job.concurrency
    );
    if !team_known {
        eprintln!("team {:?} does not exist: add it with `ferry team add`", job.team);
    }
    Ok(Created { run_id, counts, rows })
}

/// The guide's create outcome of what the store did with an account.
fn outcome_of(item: &CreateItem<'_>, written: AccountWritten, attempt: u32, dry_run: bool) -> CreateResult {
    let (code, body) = match written {
        AccountWritten::Invalid => (guide::Code::AccountFailedValidation, item.invalid.clone().unwrap_or_default()),
        AccountWritten::NotStaged => (guide::Code::NotStaged, guide::no_longer_staged(item.external_account_number)),
        AccountWritten::Rejected { error } => (guide::Code::RecordRejected, guide::record_rejected(&error)),
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
    /// Every outcome of the run, in order (for a dry run, the only record of them).
    pub rows: Vec<AuditRecord>,
}

/// The STAGED processes to create, and the outcomes of the accounts that cannot be.
fn select(
    store: &dyn Store,
    supplier: &str,
    accounts: Option<&[String]>,
) -> Result<(Vec<StagedRef>, Vec<AuditRecord>), Error> {
    let pending = store.pending_versions(supplier)?;
    let Some(accounts) = accounts else { return Ok((pending, Vec::new())) };
    let mut by_account: HashMap<String, StagedRef> =
        pending.into_iter().map(|p| (p.external_account_number.clone(), p)).collect();
    let mut selected = Vec::new();
    let mut early = Vec::new();
    for ext in accounts {
        let ext = ext.as_str();
        if let Some(found) = by_account.remove(ext) {
            selected.push(found);
            continue;
        }
        let (code, body) = match store.process(supplier, ext)? {
            Some(p) if p.status == ProcessStatus::Imported => {
                (guide::Code::AlreadyImported, guide::already_imported(ext, p.kraken_account_number.as_deref()))
            }
            Some(p) if p.status == ProcessStatus::Skipped => (guide::Code::Skipped, guide::skipped(ext)),
            // Listed twice: the first mention is being created.
            Some(_) => continue,
            None => (guide::Code::NotStaged, guide::not_staged(ext, supplier)),
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
            let end = window.first_account + window.tables[0].num_rows() as u64;
            super::staged::check_rows(&dir, &window, accounts)?;
            let here: Vec<(usize, &String)> = accounts
                .range(window.first_account..end)
                .map(|(row, (ext, _))| ((row - window.first_account) as usize, ext))
                .collect();
            if here.is_empty() {
                continue;
            }
            let text = to_text(schema, &window.tables);
            let mut by_line: HashMap<u64, Vec<Finding>> = HashMap::new();
            for f in validate_tables(schema, ctx, &text, &[]) {
                by_line.entry(f.line).or_default().push(f);
            }
            let lines = text[0].column_by_name(crate::ingest::LINE).expect("key column");
            let lines = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::UInt64Type>(lines);
            let accounts = here
                .into_iter()
                .map(|(row, ext)| {
                    let line = lines.value(row);
                    PreparedAccount {
                        external_account_number: ext.clone(),
                        row,
                        line,
                        invalid: by_line.get(&line).and_then(|f| invalid_body(f)),
                    }
                })
                .collect();
            if to_writer.send(Prepared { text, accounts }).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
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
