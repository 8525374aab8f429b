//! The pipeline file: what a nightly run reads, checks, stages and creates, and when it fails.
//!
//! Like the schema, a pipeline file is read in three steps: the spanned TOML tree is walked
//! into `raw` values (unknown keys and wrong types are problems), the values are resolved
//! against the schema and the file system (`resolve`), and every problem of the file is
//! reported at once in one [`ConfigError`]. Relative paths are relative to the pipeline file,
//! so a pipeline runs the same from any directory.

pub mod manifest;
mod raw;
mod resolve;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::diagnostics::ConfigError;
use crate::error::Error;
use crate::schema::{Schema, Severity};

/// A resolved pipeline file.
#[derive(Debug)]
pub struct Pipeline {
    /// Names the pipeline in runs, manifests, reports and trends.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// sha256 of the file, hex.
    pub hash: String,
    /// Files and glob patterns, resolved against the pipeline's directory; expanded when the
    /// pipeline runs (a nightly export brings new files).
    pub sources: Vec<String>,
    /// The schema file; `None` for the built-in one.
    pub schema: Option<PathBuf>,
    pub timezone: chrono_tz::Tz,
    /// Severity overrides by code, applied on top of the schema's `[rules]`.
    pub severity: Vec<(String, Severity)>,
    pub thresholds: Thresholds,
    /// The stages to run; `validate` and `stage` unless the file lists them.
    pub stages: Vec<Stage>,
    pub create: CreateOptions,
    pub push: PushOptions,
    pub workdir: PathBuf,
    /// A PostgreSQL store (`postgres://…`) instead of the work directory's ferry.db; `FERRY_STORE`
    /// in the environment wins (a password belongs there rather than in a file).
    pub store: Option<String>,
    /// Where staged and run files are also published (`s3://…`, `file://…`); `FERRY_STAGING`
    /// in the environment wins.
    pub staging: Option<String>,
    pub report: Vec<ReportFormat>,
}

/// When a run that completed still exits 1.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Thresholds {
    /// The largest share of read accounts that may be rejected (0.0 to 1.0).
    pub max_rejected_share: Option<f64>,
    /// The largest number of error findings per code.
    pub max_count: Vec<(String, u64)>,
}

/// One stage of a pipeline, in the order they run (in manifests: `validate`, `stage`, `create`,
/// `push`). `create` makes the accounts in this work directory's store; `push` sends them to a
/// target API (`ferry push`); a pipeline does one or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Validate,
    Stage,
    Create,
    Push,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Validate, Stage::Stage, Stage::Create, Stage::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Stage => "stage",
            Stage::Create => "create",
            Stage::Push => "push",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateOptions {
    pub team: Option<String>,
    /// Adds the team to the store when it is missing (for a first run).
    pub create_team: bool,
    pub dry_run: bool,
    pub concurrency: u8,
    /// The suppliers to create accounts of; every supplier the run staged when `None`.
    pub suppliers: Option<Vec<String>>,
}

/// The `[push]` table: what the push stage sends where (the options of `ferry push`).
#[derive(Debug, Clone, PartialEq)]
pub struct PushOptions {
    /// Required by the push stage.
    pub base_url: Option<String>,
    /// Required when the operations include create.
    pub team: Option<String>,
    /// `validate`, `stage`, `create` (all three by default).
    pub operations: Vec<String>,
    pub dry_run: bool,
    pub concurrency: u8,
    /// A file whose first line is the API key (else FERRY_API_TOKEN).
    pub token_file: Option<PathBuf>,
    pub insecure_http: bool,
    /// A PEM file of certificates to trust besides the system's (a company's own CA).
    pub ca_cert: Option<PathBuf>,
    pub timeout: f64,
    pub give_up_after: u64,
    /// The suppliers to push; every supplier in the store when `None`.
    pub suppliers: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Html,
    Json,
    Md,
}

impl ReportFormat {
    pub const ALL: [ReportFormat; 3] = [ReportFormat::Html, ReportFormat::Json, ReportFormat::Md];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Html => "html",
            ReportFormat::Json => "json",
            ReportFormat::Md => "md",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl Pipeline {
    /// Reads and resolves a pipeline file; every problem is reported in one diagnostic.
    pub fn load(path: &Path) -> Result<Pipeline, Error> {
        let text = fs_err::read_to_string(path)?;
        Ok(Self::from_str(path, &text)?)
    }

    /// Resolves pipeline text read from `path` (which relative paths are resolved against).
    pub fn from_str(path: &Path, text: &str) -> Result<Pipeline, Box<ConfigError>> {
        let origin = path.display().to_string();
        let mut problems = Vec::new();
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let pipeline = raw::parse(text, &mut problems).and_then(|raw| resolve::resolve(&raw, &base, &mut problems));
        match pipeline {
            Some(mut pipeline) if problems.is_empty() => {
                pipeline.path = path.to_path_buf();
                pipeline.hash = format!("{:x}", Sha256::digest(text.as_bytes()));
                Ok(pipeline)
            }
            _ => Err(Box::new(ConfigError::new("pipeline", &origin, text, problems))),
        }
    }

    /// The pipeline's schema with its severity overrides applied.
    pub fn load_schema(&self) -> Result<Schema, Error> {
        let mut schema = match &self.schema {
            Some(path) => Schema::load(path)?,
            None => Schema::builtin(),
        };
        for (code, severity) in &self.severity {
            schema.rules.insert(code.clone(), *severity);
        }
        if !self.severity.is_empty() {
            // The overrides change what the rules decide: outputs record the combination.
            let overrides: Vec<String> = self.severity.iter().map(|(c, s)| format!("{c}={}", s.as_str())).collect();
            schema.hash =
                format!("{:x}", Sha256::digest(format!("{}\n{}", schema.hash, overrides.join("\n")).as_bytes()));
        }
        Ok(schema)
    }

    /// The source files, globs expanded, in name order; a pattern that matches nothing is an
    /// error (last night's export is missing).
    pub fn source_files(&self) -> Result<Vec<PathBuf>, Error> {
        let mut files = Vec::new();
        for pattern in &self.sources {
            let mut matched: Vec<PathBuf> = glob::glob(pattern)
                .map_err(|e| Error::usage(format!("source pattern {pattern:?}: {e}"), None))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if matched.is_empty() {
                return Err(Error::usage(
                    format!("source {pattern:?} of pipeline {:?} matches no file", self.name),
                    Some("check that the export arrived, or fix `source.paths` in the pipeline file"),
                ));
            }
            matched.sort();
            for file in matched {
                if !files.contains(&file) {
                    files.push(file);
                }
            }
        }
        Ok(files)
    }

    pub fn runs(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Pipeline, Box<ConfigError>> {
        Pipeline::from_str(Path::new("pipelines/test.toml"), text)
    }

    #[test]
    fn a_minimal_pipeline_takes_the_defaults() {
        let p = load("name = \"n\"\n[source]\npaths = [\"../data/*.ndjson\"]\n").unwrap();
        assert_eq!(p.stages, vec![Stage::Validate, Stage::Stage], "create only when asked");
        assert_eq!(p.timezone, crate::settings::DEFAULT_TIMEZONE);
        assert_eq!(p.workdir, Path::new("ferry-data"));
        assert_eq!(p.sources, vec!["data/*.ndjson".to_owned()]);
        assert_eq!(p.report, ReportFormat::ALL.to_vec());
        assert_eq!(p.create.concurrency, 40);
        assert!(p.schema.is_none());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = load(
            "name = \"n\"\nstages = [\"stage\", \"valdate\"]\ntimezone = \"Europe/Berlinn\"\n\
             [source]\npaths = []\n[severity]\ninvalid_email = \"loud\"\nno_such_code = \"off\"\n\
             [thresholds]\nmax_rejected_share = 1.5\n[create]\nconcurency = 41\n",
        )
        .unwrap_err();
        let messages: Vec<String> = err.problems.iter().map(|p| p.message.clone()).collect();
        assert_eq!(messages.len(), 7, "{messages:#?}");
    }

    #[test]
    fn the_templates_push_table_resolves_and_push_excludes_create() {
        let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/nightly.toml")).unwrap();
        let pushing = template
            .replace("stages = [\"validate\", \"stage\", \"create\"]", "stages = [\"validate\", \"stage\", \"push\"]")
            .replace("# [push]", "[push]")
            .replace("# base_url", "base_url")
            .replace("# team = \"Migration\"\n# A file", "team = \"Migration\"\n# A file")
            .replace("# token_file", "token_file")
            .replace("# operations", "operations")
            .replace("# concurrency = 40\n# Seconds", "concurrency = 40\n# Seconds")
            .replace("# timeout", "timeout")
            .replace("# give_up_after", "give_up_after");
        let p = load(&pushing).unwrap_or_else(|e| panic!("{:#?}", e.problems));
        assert_eq!(p.stages, vec![Stage::Validate, Stage::Stage, Stage::Push]);
        assert_eq!(p.push.base_url.as_deref(), Some("https://import.example.de"));
        assert_eq!(p.push.team.as_deref(), Some("Migration"));
        assert_eq!(p.push.operations, ["validate", "stage", "create"]);
        assert_eq!(p.push.token_file.as_deref(), Some(Path::new("/etc/ferry/platform.key")));
        assert_eq!((p.push.timeout, p.push.give_up_after, p.push.concurrency), (30.0, 60, 40));
        let err = load("name = \"n\"\nstages = [\"stage\", \"create\", \"push\"]\n[source]\npaths = [\"x\"]\n[create]\nteam = \"T\"\n[push]\noperations = [\"craete\"]\n")
            .unwrap_err();
        let messages: Vec<String> = err.problems.iter().map(|p| p.message.clone()).collect();
        assert!(messages.iter().any(|m| m.contains("not both")), "{messages:#?}");
        assert!(messages.iter().any(|m| m.contains("push.base_url")), "{messages:#?}");
        assert!(messages.iter().any(|m| m.contains("unknown push operation `craete`")), "{messages:#?}");
        let err = load("name = \"n\"\nstages = [\"stage\", \"push\"]\n[source]\npaths = [\"x\"]\n[push]\nbase_url = \"https://x\"\noperations = []\n")
            .unwrap_err();
        assert!(err.problems.iter().any(|p| p.message == "`push.operations` is empty"), "{:#?}", err.problems);
    }
}
