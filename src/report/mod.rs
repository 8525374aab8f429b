//! The data-quality report of a pipeline run: what a migration lead reads in the morning.
//!
//! [`collect`] reads the run's manifest, the findings and outcomes files its steps wrote, and
//! the manifests and findings of the pipeline's earlier runs, into one [`Report`]; the
//! formats render that one value: JSON (serde), Markdown ([`md`]) and a self-contained HTML
//! page with inline SVG charts ([`html`]). Personal data is masked when collected ([`mask`]),
//! so no format can show it.

pub mod html;
pub mod mask;
pub mod md;
pub mod read;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Error;
use crate::pipeline::manifest::{Funnel, Input, Manifest, Options, OutcomeCount, ThresholdCheck};
use crate::pipeline::{ReportFormat, Stage};
use crate::validation::fold_indices;
use crate::workdir::Workdir;

/// How many rows the longer lists keep.
const TOP: usize = 15;
/// Sample accounts per code.
const SAMPLES: usize = 3;
/// Runs in the trend.
const TREND: usize = 20;

#[derive(Debug, Serialize)]
pub struct Report {
    pub run_id: String,
    pub pipeline: String,
    pub started_at: String,
    pub finished_at: String,
    pub status: String,
    pub exit: u8,
    pub ferry_version: String,
    pub schema: String,
    pub options: Options,
    pub inputs: Vec<Input>,
    pub funnel: Funnel,
    pub findings: Findings,
    pub create: CreateSummary,
    /// What each push step sent, got and took (`runs/<push run>/push.json`).
    pub push: Vec<crate::push::run::PushFile>,
    pub steps: Vec<StepTiming>,
    pub thresholds: Vec<ThresholdCheck>,
    pub trend: Vec<TrendPoint>,
    /// Against the pipeline's previous finished run; none for its first run.
    pub diff: Option<Diff>,
}

#[derive(Debug, Default, Serialize)]
pub struct Findings {
    pub total: u64,
    pub errors: u64,
    pub warnings: u64,
    /// Lines with at least one error finding.
    pub lines_with_errors: u64,
    pub by_code: Vec<CodeCount>,
    /// By the list the attr is in (`customers`, `agreements`; `accounts` for top-level fields).
    pub by_table: Vec<Count>,
    /// By attr with list indices folded (`customers.*.landline`).
    pub by_pattern: Vec<Count>,
    /// The most frequent offending values, personal data masked.
    pub values: Vec<ValueCount>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Serialize)]
pub struct CodeCount {
    pub code: String,
    pub severity: String,
    pub count: u64,
    /// Distinct lines (accounts) with the code.
    pub lines: u64,
}

#[derive(Debug, Serialize)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct ValueCount {
    pub pattern: String,
    pub code: String,
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct Sample {
    pub code: String,
    pub accounts: Vec<SampleAccount>,
}

#[derive(Debug, Serialize)]
pub struct SampleAccount {
    pub input: String,
    pub line: u64,
    pub import_supplier: Option<String>,
    pub external_account_number: Option<String>,
    pub findings: Vec<SampleFinding>,
}

#[derive(Debug, Serialize)]
pub struct SampleFinding {
    pub attr: String,
    pub code: String,
    pub severity: String,
    pub detail: String,
    pub value: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct CreateSummary {
    pub outcomes: Vec<OutcomeCount>,
    pub seconds: f64,
    pub accounts_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct StepTiming {
    pub stage: String,
    pub what: String,
    pub run_id: Option<String>,
    pub seconds: f64,
    pub accounts: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub started_at: String,
    pub read: u64,
    pub valid: u64,
    pub staged: u64,
    pub created: u64,
    pub rejected_share: f64,
}

#[derive(Debug, Serialize)]
pub struct Diff {
    pub previous_run: String,
    /// Findings (account, attr, code) in this run and not in the previous one.
    pub new_total: u64,
    /// Findings in the previous run and not in this one.
    pub fixed_total: u64,
    pub new: Vec<Count>,
    pub fixed: Vec<Count>,
}

/// A finding as the diff compares them: account (or line, for lines without one), attr, code.
type FindingKey = (String, String, String);

/// Reads everything the report of `manifest`'s run shows.
pub fn collect(wd: &Workdir, manifest: &Manifest) -> Result<Report, Error> {
    let mut findings = Vec::new();
    for (i, step) in manifest.steps.iter().enumerate() {
        if step.stage != Stage::Create {
            for f in read::findings(&wd.root.join(&step.dir).join("findings.parquet"))? {
                findings.push((i, f));
            }
        }
    }
    // `Manifest::all` is in the order the runs started; run ids alone do not order runs that
    // started within one second.
    let key = |m: &Manifest| (m.started_at.clone(), m.run_id.clone());
    let earlier: Vec<Manifest> = Manifest::all(wd)?
        .into_iter()
        .filter(|m| m.pipeline.name == manifest.pipeline.name && key(m) < key(manifest))
        .collect();
    let mut trend: Vec<TrendPoint> = earlier.iter().chain([manifest]).map(trend_point).collect();
    if trend.len() > TREND {
        trend.drain(..trend.len() - TREND);
    }
    let diff = match earlier.last() {
        Some(previous) => Some(diff(wd, previous, &findings)?),
        None => None,
    };
    let mut create = CreateSummary::default();
    let mut by_outcome: BTreeMap<(u16, String), u64> = BTreeMap::new();
    for step in manifest.steps.iter().filter(|s| s.stage == Stage::Create) {
        create.seconds += step.seconds;
        for o in &step.outcomes {
            *by_outcome.entry((o.status, o.outcome.clone())).or_default() += o.count;
        }
    }
    create.outcomes =
        by_outcome.into_iter().map(|((status, outcome), count)| OutcomeCount { status, outcome, count }).collect();
    if create.seconds > 0.0 {
        create.accounts_per_second = manifest.funnel.created as f64 / create.seconds;
    }
    let push = manifest
        .steps
        .iter()
        .filter(|s| s.stage == Stage::Push)
        .filter_map(|s| crate::push::run::PushFile::read(wd, s.run_id.as_deref()?))
        .collect();
    Ok(Report {
        run_id: manifest.run_id.clone(),
        pipeline: manifest.pipeline.name.clone(),
        started_at: manifest.started_at.clone(),
        finished_at: manifest.finished_at.clone(),
        status: manifest.status.clone(),
        exit: manifest.exit,
        ferry_version: manifest.ferry_version.clone(),
        schema: format!("{} ({})", manifest.schema.name, manifest.schema.path.trim_matches(['(', ')'])),
        options: manifest.options.clone(),
        inputs: manifest.inputs.clone(),
        funnel: manifest.funnel.clone(),
        findings: summarise(manifest, &findings),
        create,
        push,
        steps: manifest
            .steps
            .iter()
            .map(|s| StepTiming {
                stage: s.stage.as_str().to_owned(),
                what: s.input.clone().or_else(|| s.supplier.clone()).unwrap_or_default(),
                run_id: s.run_id.clone(),
                seconds: s.seconds,
                accounts: s.outcomes.iter().map(|o| o.count).sum(),
            })
            .collect(),
        thresholds: manifest.thresholds.clone(),
        trend,
        diff,
    })
}

fn trend_point(m: &Manifest) -> TrendPoint {
    let f = &m.funnel;
    TrendPoint {
        run_id: m.run_id.clone(),
        started_at: m.started_at.clone(),
        read: f.read,
        valid: f.valid,
        staged: f.staged,
        created: f.created,
        rejected_share: if f.read == 0 { 0.0 } else { f.rejected as f64 / f.read as f64 },
    }
}

/// A code's severity, findings, and the (step, line) pairs it was found on.
type CodeTally = (String, u64, HashSet<(usize, u64)>);

fn summarise(manifest: &Manifest, findings: &[(usize, read::FindingRow)]) -> Findings {
    let mut out = Findings { total: findings.len() as u64, ..Findings::default() };
    let mut codes: BTreeMap<&str, CodeTally> = BTreeMap::new();
    let mut tables: BTreeMap<String, u64> = BTreeMap::new();
    let mut patterns: BTreeMap<String, u64> = BTreeMap::new();
    let mut values: HashMap<(String, &str, &str), u64> = HashMap::new();
    let mut error_lines: HashSet<(usize, u64)> = HashSet::new();
    let mut by_line: BTreeMap<(usize, u64), Vec<&read::FindingRow>> = BTreeMap::new();
    for (step, f) in findings {
        match f.severity.as_str() {
            "error" => {
                out.errors += 1;
                error_lines.insert((*step, f.line));
            }
            "warning" => out.warnings += 1,
            _ => {}
        }
        let entry = codes.entry(&f.code).or_insert_with(|| (f.severity.clone(), 0, HashSet::new()));
        entry.1 += 1;
        entry.2.insert((*step, f.line));
        *tables.entry(table_of(&f.attr)).or_default() += 1;
        let pattern = fold_indices(&f.attr);
        if let Some(v) = f.value.as_deref().filter(|v| !v.is_empty()) {
            *values.entry((pattern.clone(), &f.code, v)).or_default() += 1;
        }
        *patterns.entry(pattern).or_default() += 1;
        by_line.entry((*step, f.line)).or_default().push(f);
    }
    out.lines_with_errors = error_lines.len() as u64;
    let mut by_code: Vec<CodeCount> = codes
        .iter()
        .map(|(code, (severity, count, lines))| CodeCount {
            code: (*code).to_owned(),
            severity: severity.clone(),
            count: *count,
            lines: lines.len() as u64,
        })
        .collect();
    by_code.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    out.by_table = ranked(tables);
    out.by_pattern = ranked(patterns);
    out.by_pattern.truncate(TOP);
    let mut values: Vec<ValueCount> = values
        .into_iter()
        .map(|((pattern, code, value), count)| ValueCount {
            value: mask::value(&pattern, value),
            pattern,
            code: code.to_owned(),
            count,
        })
        .collect();
    values.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| (&a.pattern, &a.code, &a.value).cmp(&(&b.pattern, &b.code, &b.value)))
    });
    values.truncate(TOP);
    out.values = values;
    for code in by_code.iter().take(TOP) {
        let lines: BTreeSet<&(usize, u64)> = codes[code.code.as_str()].2.iter().collect();
        let accounts = lines
            .into_iter()
            .take(SAMPLES)
            .map(|key| {
                let rows = &by_line[key];
                let input = manifest.steps[key.0].input.clone().unwrap_or_default();
                SampleAccount {
                    input,
                    line: key.1,
                    import_supplier: rows[0].supplier.clone(),
                    external_account_number: rows[0].external.clone(),
                    findings: rows
                        .iter()
                        .map(|f| {
                            let masked = f.value.as_deref().map(|v| mask::value(&f.attr, v));
                            SampleFinding {
                                attr: f.attr.clone(),
                                code: f.code.clone(),
                                severity: f.severity.clone(),
                                detail: mask::detail(&f.detail, f.value.as_deref(), masked.as_deref()),
                                value: masked,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        out.samples.push(Sample { code: code.code.clone(), accounts });
    }
    out.by_code = by_code;
    out
}

fn ranked(counts: BTreeMap<String, u64>) -> Vec<Count> {
    let mut out: Vec<Count> = counts.into_iter().map(|(key, count)| Count { key, count }).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    out
}

/// The list an attr is in: the last segment followed by an index (`customers.0.email` is in
/// `customers`); `accounts` for a top-level field.
pub fn table_of(attr: &str) -> String {
    let segments: Vec<&str> = attr.split('.').collect();
    let is_index = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    segments
        .windows(2)
        .filter(|w| is_index(w[1]) && !is_index(w[0]))
        .map(|w| w[0].to_owned())
        .next_back()
        .unwrap_or_else(|| "accounts".to_owned())
}

fn key(f: &read::FindingRow) -> FindingKey {
    let account = match (&f.supplier, &f.external) {
        (Some(s), Some(e)) => format!("{s}/{e}"),
        _ => format!("line {}", f.line),
    };
    (account, f.attr.clone(), f.code.clone())
}

fn diff(wd: &Workdir, previous: &Manifest, current: &[(usize, read::FindingRow)]) -> Result<Diff, Error> {
    let mut before: HashSet<FindingKey> = HashSet::new();
    for step in previous.steps.iter().filter(|s| s.stage != Stage::Create) {
        for f in read::findings(&wd.root.join(&step.dir).join("findings.parquet"))? {
            before.insert(key(&f));
        }
    }
    let now: HashSet<FindingKey> = current.iter().map(|(_, f)| key(f)).collect();
    let by_code = |keys: Vec<&FindingKey>| {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for k in keys {
            *counts.entry(k.2.clone()).or_default() += 1;
        }
        ranked(counts)
    };
    let new: Vec<&FindingKey> = now.iter().filter(|k| !before.contains(*k)).collect();
    let fixed: Vec<&FindingKey> = before.iter().filter(|k| !now.contains(*k)).collect();
    Ok(Diff {
        previous_run: previous.run_id.clone(),
        new_total: new.len() as u64,
        fixed_total: fixed.len() as u64,
        new: by_code(new),
        fixed: by_code(fixed),
    })
}

/// The report in one format.
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Html => html::render(report),
        ReportFormat::Json => serde_json::to_string_pretty(report).expect("a report serialises") + "\n",
        ReportFormat::Md => md::render(report),
    }
}

/// Writes `runs/<run>/report.<format>` for each format; returns the paths.
pub fn write_all(
    wd: &Workdir,
    manifest: &Manifest,
    report: &Report,
    formats: &[ReportFormat],
) -> Result<Vec<PathBuf>, Error> {
    let dir = wd.run_dir(&manifest.run_id);
    fs_err::create_dir_all(&dir)?;
    let mut written = Vec::new();
    for format in formats {
        let path = dir.join(format!("report.{}", format.as_str()));
        let tmp = path.with_extension(format!("{}.tmp", format.as_str()));
        fs_err::write(&tmp, render(report, *format))?;
        fs_err::rename(&tmp, &path)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_belong_to_their_innermost_list() {
        assert_eq!(table_of("billing_postcode"), "accounts");
        assert_eq!(table_of("customers.0.email"), "customers");
        assert_eq!(table_of("supply_addresses.0.supply_points.12.identifier"), "supply_points");
        assert_eq!(table_of("ledgers.1.identifiers.0"), "identifiers");
    }
}
