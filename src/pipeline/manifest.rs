//! The run manifest: written last by `ferry run`, so a run without one did not finish.
//!
//! It is the index of a pipeline run: what went in (files with size and sha256, pipeline and
//! schema hashes, ferry's version, options), what each stage did (its store run, files,
//! outcome counts and time), the funnel, the thresholds and the exit status. Reports and
//! trends read manifests, never the store.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::workdir::Workdir;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub pipeline: Named,
    pub schema: Named,
    pub ferry_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub options: Options,
    pub inputs: Vec<Input>,
    pub steps: Vec<Step>,
    pub funnel: Funnel,
    pub thresholds: Vec<ThresholdCheck>,
    /// 0, 1 or 2, as the process exits.
    pub exit: u8,
    /// `clean`, `rejected` (accounts rejected) or `threshold crossed`.
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Options {
    pub stages: Vec<String>,
    pub today: String,
    pub timezone: String,
    pub dry_run: bool,
    pub shard: Option<String>,
    pub only_failed_from: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Input {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// One stage over one input (validate, stage) or one supplier (create).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub stage: super::Stage,
    pub input: Option<String>,
    pub supplier: Option<String>,
    /// The store run (stage, create); none for validate.
    pub run_id: Option<String>,
    /// Where its findings.parquet and outcomes.parquet are, relative to the work directory.
    pub dir: String,
    pub seconds: f64,
    pub outcomes: Vec<OutcomeCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCount {
    pub status: u16,
    pub outcome: String,
    pub count: u64,
}

/// Accounts through the stages. `read` counts lines (a line that is not an account is read
/// and rejected); `created` counts accounts created by this run (with a dry run: that would
/// have been).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funnel {
    pub read: u64,
    pub valid: u64,
    pub staged: u64,
    pub created: u64,
    /// Read but not staged, and not because it was imported before: invalid, skipped, or
    /// its supplier's migration not ongoing.
    pub rejected: u64,
    /// Read, and imported by an earlier run (a 400 at stage that is not a data problem).
    pub already_imported: u64,
    /// Staged but not created by this run (failed create outcomes).
    pub create_failed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdCheck {
    /// `max_rejected_share` or `max_count.<code>`.
    pub name: String,
    pub limit: f64,
    pub actual: f64,
    pub crossed: bool,
}

impl Manifest {
    pub fn path(wd: &Workdir, run_id: &str) -> PathBuf {
        wd.run_dir(run_id).join("manifest.json")
    }

    /// Writes the manifest durably under a temporary name, then renames it into place.
    pub fn write(&self, wd: &Workdir) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).expect("a manifest serialises");
        crate::workdir::write_synced(&Self::path(wd, &self.run_id), &text)
    }

    pub fn read(path: &Path) -> Result<Manifest, Error> {
        let text = fs_err::read_to_string(path)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::usage(format!("{} is not a ferry run manifest: {e}", path.display()), None))
    }

    /// Every finished pipeline run of the work directory (those with a manifest), oldest first.
    pub fn all(wd: &Workdir) -> Result<Vec<Manifest>, Error> {
        if let Some(shared) = &wd.files {
            shared.fetch_tree(&wd.root, "runs", |p| p.ends_with("/manifest.json"))?;
        }
        let runs = wd.root.join("runs");
        let mut out = Vec::new();
        if !runs.is_dir() {
            return Ok(out);
        }
        let mut dirs: Vec<PathBuf> = fs_err::read_dir(&runs)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for dir in dirs {
            let path = dir.join("manifest.json");
            if path.is_file() {
                out.push(Self::read(&path)?);
            }
        }
        // In the order the runs started (to the millisecond): run ids are only to the second,
        // and two runs within one second have random suffixes in either order.
        out.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
        Ok(out)
    }
}
