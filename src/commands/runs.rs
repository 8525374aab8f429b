//! What every run that writes the store ends with: its audit rows exported to
//! `runs/<run-id>/outcomes.parquet`, and counted for the summary and the exit code.

use std::collections::BTreeMap;

use crate::error::{Error, Outcome};
use crate::schema::Schema;
use crate::stage::export;
use crate::store::AuditRecord;
use crate::workdir::{Workdir, sync_dir};

/// Writes a run's outcome rows to `runs/<run-id>/outcomes.parquet`.
pub fn export(schema: &Schema, wd: &Workdir, run_id: &str, rows: &[AuditRecord]) -> Result<(), Error> {
    let run_dir = wd.run_dir(run_id);
    fs_err::create_dir_all(&run_dir)?;
    export::write_outcomes(schema, &run_dir.join("outcomes.parquet"), rows)?;
    sync_dir(&run_dir)?;
    Ok(())
}

/// Outcome counts of a run, by status and name, and the staged versions it registered.
pub struct Counts {
    by_outcome: BTreeMap<(u16, String), u64>,
    versions: u64,
}

impl Counts {
    pub fn of(rows: &[AuditRecord], versions: u64) -> Self {
        let mut by_outcome = BTreeMap::new();
        for r in rows {
            let name = match (r.status_code, r.operation.as_str(), r.error_code.as_deref()) {
                (201, _, _) => "created",
                (200, "stage", _) => "staged again (replaced or identical)",
                (_, _, Some(code)) => code,
                _ => "other",
            };
            *by_outcome.entry((r.status_code, name.to_owned())).or_default() += 1;
        }
        Self { by_outcome, versions }
    }

    /// Exit 1 when any account got a 4xx.
    pub fn exit(&self) -> Outcome {
        if self.by_outcome.keys().any(|(s, _)| *s >= 400) { Outcome::Rejected } else { Outcome::Clean }
    }

    /// The summary lines: one per outcome.
    pub fn render(&self, run_id: &str, operation: &str) -> String {
        let mut out = format!("run {run_id}: {operation} outcomes\n");
        for ((status, name), n) in &self.by_outcome {
            out.push_str(&format!("  {status} {name:<48} {n:>9}\n"));
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
