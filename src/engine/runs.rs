//! What every run that writes the store ends with: its audit rows exported to
//! `runs/<run-id>/outcomes.parquet`, and counted for the summary and the exit code.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, ExitStatus};
use crate::schema::Schema;
use crate::stage::export;
use crate::store::{AuditRecord, Run, Store};
use crate::workdir::{Workdir, sync_dir};

/// A run's `outcomes.parquet` written as its rows come, and counted on the way: no run holds
/// all its outcome rows in memory.
pub struct OutcomeWriter {
    file: export::OutcomesFile,
    dir: std::path::PathBuf,
    tally: Tally,
}

impl OutcomeWriter {
    pub fn create(schema: &Schema, wd: &Workdir, run_id: &str) -> Result<Self, Error> {
        let dir = wd.run_dir(run_id);
        fs_err::create_dir_all(&dir)?;
        let file = export::OutcomesFile::create(schema, &dir.join("outcomes.parquet"))?;
        Ok(Self { file, dir, tally: Tally::default() })
    }

    /// Rows in audit order.
    pub fn write(&mut self, rows: &[AuditRecord]) -> Result<(), Error> {
        rows.iter().for_each(|r| self.tally.add(r));
        Ok(self.file.write(rows)?)
    }

    /// Publishes the file; the counts of its rows (without staged versions).
    pub fn finish(self) -> Result<Counts, Error> {
        self.file.commit()?;
        sync_dir(&self.dir)?;
        Ok(self.tally.counts(0))
    }
}

/// Writes a run's outcome rows to `runs/<run-id>/outcomes.parquet` from the store a page at a
/// time, so that a run of millions of rows (with bodies of kilobytes each) is never in memory;
/// counts them on the way ([`Counts`], without staged versions).
pub fn export_paged(store: &dyn Store, schema: &Schema, wd: &Workdir, run_id: &str) -> Result<Counts, Error> {
    /// Rows read from the store at once.
    const PAGE: usize = 1024;
    let mut out = OutcomeWriter::create(schema, wd, run_id)?;
    let mut after = None;
    loop {
        let page = store.run_audit_page(run_id, after, PAGE)?;
        let (last, full) = (page.last().map(|(id, _)| *id), page.len() == PAGE);
        let rows: Vec<AuditRecord> = page.into_iter().map(|(_, r)| r).collect();
        out.write(&rows)?;
        match last {
            Some(id) if full => after = Some(id),
            _ => break,
        }
    }
    out.finish()
}

/// Exports the run's audit rows to `outcomes.parquet` and marks the run finished: clean or
/// rejected, or `interrupted` when given.
pub fn finish(
    store: &mut dyn Store,
    wd: &Workdir,
    schema: &Schema,
    run: &Run,
    interrupted: bool,
) -> Result<Counts, Error> {
    let counts = export_paged(store, schema, wd, &run.id)?;
    close(store, wd, run, counts, interrupted)
}

/// [`finish`] for a run that wrote its audit rows to `outcomes` as it committed them, in the
/// same order: the file is published rather than exported again.
pub fn finish_written(
    store: &mut dyn Store,
    wd: &Workdir,
    run: &Run,
    outcomes: OutcomeWriter,
) -> Result<Counts, Error> {
    let counts = outcomes.finish()?;
    close(store, wd, run, counts, false)
}

/// Marks the run finished with its outcomes' counts, and publishes its directory.
fn close(
    store: &mut dyn Store,
    wd: &Workdir,
    run: &Run,
    mut counts: Counts,
    interrupted: bool,
) -> Result<Counts, Error> {
    counts.versions = store.run_versions(&run.id)?;
    let status = match counts.exit() {
        _ if interrupted => "interrupted",
        ExitStatus::Rejected => "rejected",
        _ => "clean",
    };
    store.finish_run(&run.id, status)?;
    if let Some(shared) = &wd.files {
        shared.publish_run(&wd.root, &run.id)?;
    }
    Ok(counts)
}

/// Finishes what a crash left unfinished, before a run (`current`) writes the store:
/// - the creations in flight when a create was killed get their failed attempt in the
///   audit (`500 creation_interrupted`); their accounts are STAGED, with no record;
/// - a stage run killed after its commit gets its outcomes exported; one killed before it is
///   marked interrupted (its files are for `ferry gc`);
/// - a create or reprocess run gets its outcomes exported and is marked interrupted; what it
///   created stays created.
pub fn recover_interrupted(store: &mut dyn Store, wd: &Workdir, schema: &Schema, current: &str) -> Result<(), Error> {
    let interrupted = crate::store::Interrupted {
        status_code: crate::guide::Code::CreationInterrupted.status().code(),
        error_code: crate::guide::Code::CreationInterrupted.as_str().to_owned(),
        body: crate::guide::creation_interrupted(),
    };
    let creations = store.record_interrupted_creations(&interrupted)?;
    if !creations.is_empty() {
        eprintln!(
            "{} creations were interrupted before they committed; each is recorded in the audit as a \
             failed attempt (500 creation_interrupted), and its account is still STAGED",
            creations.len()
        );
    }
    for run in store.unfinished_runs()? {
        if run.id == current {
            continue;
        }
        match (run.command.as_str(), run.committed_at.is_some()) {
            ("stage", true) => {
                eprintln!("run {} was interrupted after committing; exporting its outcomes", run.id);
                finish(store, wd, schema, &run, false)?;
            }
            ("stage", false) => {
                eprintln!("run {} was interrupted before committing; nothing of it is staged", run.id);
                store.finish_run(&run.id, "interrupted")?;
            }
            (command, _) => {
                eprintln!(
                    "run {} of `ferry {command}` was interrupted; the accounts it created stay created, \
                     its outcomes are exported",
                    run.id
                );
                finish(store, wd, schema, &run, true)?;
            }
        }
    }
    Ok(())
}

/// ExitStatus counts of a run, by status and name, and the staged versions it registered.
pub struct Counts {
    by_outcome: BTreeMap<(u16, String), u64>,
    versions: u64,
    /// Create attempts that a later attempt of the same run superseded.
    retried: u64,
}

impl Counts {
    /// The counts by status and outcome name, for a run manifest.
    pub fn outcomes(&self) -> Vec<crate::pipeline::manifest::OutcomeCount> {
        self.by_outcome
            .iter()
            .map(|((status, outcome), count)| crate::pipeline::manifest::OutcomeCount {
                status: *status,
                outcome: outcome.clone(),
                count: *count,
            })
            .collect()
    }

    /// Exit 1 when any account got a 4xx.
    pub fn exit(&self) -> ExitStatus {
        if self.by_outcome.keys().any(|(s, _)| *s >= 400) { ExitStatus::Rejected } else { ExitStatus::Clean }
    }

    /// The summary lines: one per outcome.
    pub fn render(&self, run_id: &str, operation: &str) -> String {
        let mut out = format!("run {run_id}: {operation} outcomes\n");
        for ((status, name), n) in &self.by_outcome {
            out.push_str(&format!("  {status} {name:<48} {n:>9}\n"));
        }
        if self.retried > 0 {
            out.push_str(&format!(
                "{} earlier attempts in this run were retried (every attempt is in the audit)\n",
                self.retried
            ));
        }
        if operation == "stage" {
            out.push_str(&format!(
                "{} new staged versions; outcomes, findings and quarantined rows in runs/{run_id}/\n",
                self.versions
            ));
        } else {
            out.push_str(&format!("outcomes in runs/{run_id}/outcomes.parquet\n"));
        }
        out
    }
}

/// [`Counts`] built from audit rows given one at a time, in the order of the audit. Holds only
/// the latest create attempt of each account, so counting a stage run holds nothing per row.
#[derive(Default)]
struct Tally {
    by_outcome: BTreeMap<(u16, String), u64>,
    /// The outcome of the latest create attempt so far, by (supplier, external account number).
    creates: HashMap<(String, String), (u16, String)>,
    retried: u64,
}

impl Tally {
    fn add(&mut self, r: &AuditRecord) {
        let name = match (r.status_code, r.operation.as_str(), r.error_code.as_deref()) {
            (201, _, _) => "created",
            (200, "stage", _) => "staged again (replaced or identical)",
            (_, _, Some(code)) => code,
            _ => "other",
        };
        let outcome = (r.status_code, name.to_owned());
        if let (Some(supplier), Some(ext), "create") =
            (r.import_supplier.as_deref(), r.external_account_number.as_deref(), r.operation.as_str())
        {
            if self.creates.insert((supplier.to_owned(), ext.to_owned()), outcome).is_some() {
                self.retried += 1;
            }
            return;
        }
        *self.by_outcome.entry(outcome).or_default() += 1;
    }

    fn counts(mut self, versions: u64) -> Counts {
        for outcome in self.creates.into_values() {
            *self.by_outcome.entry(outcome).or_default() += 1;
        }
        Counts { by_outcome: self.by_outcome, versions, retried: self.retried }
    }
}
