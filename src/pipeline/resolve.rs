//! From the raw pipeline to a [`Pipeline`]: defaults, paths, codes checked against the schema.

use std::path::{Path, PathBuf};

use super::raw::{RawPipeline, RawPush};
use super::{CreateOptions, Pipeline, PushOptions, ReportFormat, Stage, Thresholds};
use crate::diagnostics::Problem;
use crate::diagnostics::walk::Sp;
use crate::schema::{Schema, Severity};

/// The largest number of accounts in flight the platform takes (the guide's limit).
pub(super) const MAX_CONCURRENCY: i64 = 40;

pub(super) fn resolve(raw: &RawPipeline, base: &Path, problems: &mut Vec<Problem>) -> Option<Pipeline> {
    let name = match &raw.name {
        Some(n) if is_name(&n.v) => n.v.clone(),
        Some(n) => {
            problems.push(
                Problem::new(n.span.clone(), "a pipeline name is letters, digits, `-` and `_`")
                    .help("it names the pipeline's runs and trend; e.g. `nightly-tentacle`"),
            );
            String::new()
        }
        None => {
            problems.push(Problem::new(0..0, "the pipeline has no `name`").help("add e.g. `name = \"nightly\"`"));
            String::new()
        }
    };
    let sources = match &raw.paths {
        Some(paths) if paths.v.is_empty() => {
            problems.push(Problem::new(paths.span.clone(), "`source.paths` is empty").help("name the dump files"));
            Vec::new()
        }
        Some(paths) => paths
            .v
            .iter()
            .filter_map(|p| match glob::Pattern::new(&p.v) {
                Ok(_) => Some(relative(base, &p.v).display().to_string()),
                Err(e) => {
                    problems.push(Problem::new(p.span.clone(), format!("not a valid glob: {e}")));
                    None
                }
            })
            .collect(),
        None => {
            let span = raw.source.clone().unwrap_or(0..0);
            problems.push(
                Problem::new(span, "the pipeline has no `source.paths`")
                    .help("add `[source]` with `paths = [\"exports/*.ndjson.zst\"]`"),
            );
            Vec::new()
        }
    };
    let schema_path = match &raw.schema {
        None => None,
        Some(s) if s.v == "builtin" => None,
        Some(s) => Some((relative(base, &s.v), s.span.clone())),
    };
    // Codes are checked against the schema the pipeline uses.
    let schema = match &schema_path {
        None => Some(Schema::builtin()),
        Some((path, span)) => match fs_err::read_to_string(path) {
            Ok(text) => match Schema::from_str(&path.display().to_string(), &text) {
                Ok(schema) => Some(schema),
                Err(e) => {
                    problems.push(Problem::new(
                        span.clone(),
                        format!(
                            "the schema {} has {} problems (run `ferry schema check` on it)",
                            path.display(),
                            e.problems.len()
                        ),
                    ));
                    None
                }
            },
            Err(e) => {
                problems.push(Problem::new(span.clone(), format!("cannot read the schema: {e}")));
                None
            }
        },
    };
    let timezone = match &raw.timezone {
        None => crate::settings::DEFAULT_TIMEZONE,
        Some(tz) => tz.v.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
            problems.push(Problem::new(tz.span.clone(), format!("unknown timezone `{}`", tz.v)).suggest(&tz.v, names));
            crate::settings::DEFAULT_TIMEZONE
        }),
    };
    let mut severity = Vec::new();
    for (code, level) in &raw.severity {
        let known = schema.as_ref().is_none_or(|s| s.rules.contains_key(&code.v));
        if !known {
            let codes =
                schema.as_ref().map(|s| s.rules.keys().map(String::as_str).collect::<Vec<_>>()).unwrap_or_default();
            problems.push(
                Problem::new(code.span.clone(), format!("`{}` is not a rule code of the schema", code.v))
                    .suggest(&code.v, codes),
            );
        }
        match Severity::parse(&level.v) {
            Some(s) if known => severity.push((code.v.clone(), s)),
            Some(_) => {}
            None => problems.push(
                Problem::new(level.span.clone(), format!("unknown severity `{}`", level.v))
                    .help("one of `error`, `warning`, `off`"),
            ),
        }
    }
    let mut thresholds = Thresholds::default();
    if let Some(share) = &raw.max_rejected_share {
        if (0.0..=1.0).contains(&share.v) {
            thresholds.max_rejected_share = Some(share.v);
        } else {
            problems.push(
                Problem::new(share.span.clone(), "max_rejected_share is a share of the accounts read, 0.0 to 1.0")
                    .help("e.g. 0.05 for 5 %"),
            );
        }
    }
    for (code, n) in &raw.max_count {
        if schema.as_ref().is_some_and(|s| !s.rules.contains_key(&code.v)) {
            let codes =
                schema.as_ref().map(|s| s.rules.keys().map(String::as_str).collect::<Vec<_>>()).unwrap_or_default();
            problems.push(
                Problem::new(code.span.clone(), format!("`{}` is not a rule code of the schema", code.v))
                    .suggest(&code.v, codes),
            );
        } else if n.v < 0 {
            problems.push(Problem::new(n.span.clone(), "a maximum count cannot be negative"));
        } else {
            thresholds.max_count.push((code.v.clone(), n.v as u64));
        }
    }
    let stages = stages(raw.stages.as_ref(), problems);
    let report = match &raw.report {
        None => ReportFormat::ALL.to_vec(),
        Some(list) => list
            .v
            .iter()
            .filter_map(|f| {
                let format = ReportFormat::parse(&f.v);
                if format.is_none() {
                    let names = ReportFormat::ALL.map(ReportFormat::as_str);
                    let problem =
                        Problem::new(f.span.clone(), format!("unknown report format `{}`", f.v)).suggest(&f.v, names);
                    problems.push(or_help(problem, "one of `html`, `json`, `md`"));
                }
                format
            })
            .collect(),
    };
    let concurrency = match &raw.concurrency {
        None => MAX_CONCURRENCY as u8,
        Some(c) if (1..=MAX_CONCURRENCY).contains(&c.v) => c.v as u8,
        Some(c) => {
            problems.push(
                Problem::new(c.span.clone(), format!("create.concurrency must be 1 to {MAX_CONCURRENCY}"))
                    .help("the platform takes at most 40 accounts in flight"),
            );
            MAX_CONCURRENCY as u8
        }
    };
    if stages.contains(&Stage::Create) && raw.team.is_none() {
        problems.push(
            Problem::new(raw.stages.as_ref().map_or(0..0, |s| s.span.clone()), "the create stage needs `create.team`")
                .help("add `[create]` with `team = \"Migration\"`"),
        );
    }
    let create = CreateOptions {
        team: raw.team.as_ref().map(|t| t.v.clone()),
        create_team: raw.create_team.as_ref().is_some_and(|b| b.v),
        dry_run: raw.dry_run.as_ref().is_some_and(|b| b.v),
        concurrency,
        suppliers: raw.suppliers.as_ref().map(|s| s.v.iter().map(|x| x.v.clone()).collect()),
    };
    let push = push_options(&raw.push, raw.stages.as_ref(), &stages, base, problems);
    let workdir = raw.workdir.as_ref().map_or_else(|| relative(base, "../ferry-data"), |w| relative(base, &w.v));
    Some(Pipeline {
        name,
        path: PathBuf::new(),
        hash: String::new(),
        sources,
        schema: schema_path.map(|(p, _)| p),
        timezone,
        severity,
        thresholds,
        stages,
        create,
        push,
        workdir,
        store: raw.store.as_ref().map(|s| s.v.clone()),
        staging: raw.staging.as_ref().map(|s| s.v.clone()),
        report,
    })
}

/// The `[push]` table, checked against the stages.
fn push_options(
    raw: &RawPush,
    raw_stages: Option<&Sp<Vec<Sp<String>>>>,
    stages: &[Stage],
    base: &Path,
    problems: &mut Vec<Problem>,
) -> PushOptions {
    let stages_span = raw_stages.map_or(0..0, |s| s.span.clone());
    let operations: Vec<String> = match &raw.operations {
        None => ["validate", "stage", "create"].map(str::to_owned).to_vec(),
        Some(list) => list
            .v
            .iter()
            .filter_map(|o| {
                let known = ["validate", "stage", "create"];
                if known.contains(&o.v.as_str()) {
                    return Some(o.v.clone());
                }
                let problem =
                    Problem::new(o.span.clone(), format!("unknown push operation `{}`", o.v)).suggest(&o.v, known);
                problems.push(or_help(problem, "operations are `validate`, `stage` and `create`"));
                None
            })
            .collect(),
    };
    if let Some(list) = raw.operations.as_ref().filter(|l| l.v.is_empty()) {
        problems.push(Problem::new(list.span.clone(), "`push.operations` is empty").help("e.g. `[\"validate\"]`"));
    }
    if stages.contains(&Stage::Push) {
        if stages.contains(&Stage::Create) {
            problems.push(
                Problem::new(
                    stages_span.clone(),
                    "a pipeline creates accounts here (`create`) or on a target API (`push`), not both",
                )
                .help("drop one of the two stages"),
            );
        }
        if raw.base_url.is_none() {
            problems.push(
                Problem::new(stages_span.clone(), "the push stage needs `push.base_url`")
                    .help("add `[push]` with `base_url = \"https://...\"`"),
            );
        }
        if operations.iter().any(|o| o == "create") && raw.team.is_none() {
            problems.push(
                Problem::new(stages_span, "the push stage's creates need `push.team`")
                    .help("add `team = \"Migration\"` to `[push]`, or leave create out of `push.operations`"),
            );
        }
    }
    let concurrency = match &raw.concurrency {
        None => MAX_CONCURRENCY as u8,
        Some(c) if (1..=MAX_CONCURRENCY).contains(&c.v) => c.v as u8,
        Some(c) => {
            problems.push(Problem::new(c.span.clone(), format!("push.concurrency must be 1 to {MAX_CONCURRENCY}")));
            MAX_CONCURRENCY as u8
        }
    };
    let timeout = match &raw.timeout {
        Some(t) if !(t.v > 0.0 && t.v.is_finite()) => {
            problems.push(Problem::new(t.span.clone(), "push.timeout must be a positive number of seconds"));
            30.0
        }
        Some(t) => t.v,
        None => 30.0,
    };
    let give_up_after = match &raw.give_up_after {
        Some(g) if g.v < 0 => {
            problems.push(Problem::new(g.span.clone(), "push.give_up_after cannot be negative"));
            60
        }
        Some(g) => g.v as u64,
        None => 60,
    };
    PushOptions {
        base_url: raw.base_url.as_ref().map(|b| b.v.clone()),
        team: raw.team.as_ref().map(|t| t.v.clone()),
        operations,
        dry_run: raw.dry_run.as_ref().is_some_and(|b| b.v),
        concurrency,
        token_file: raw.token_file.as_ref().map(|t| relative(base, &t.v)),
        insecure_http: raw.insecure_http.as_ref().is_some_and(|b| b.v),
        ca_cert: raw.ca_cert.as_ref().map(|c| relative(base, &c.v)),
        timeout,
        give_up_after,
        suppliers: raw.suppliers.as_ref().map(|s| s.v.iter().map(|x| x.v.clone()).collect()),
    }
}

fn stages(raw: Option<&Sp<Vec<Sp<String>>>>, problems: &mut Vec<Problem>) -> Vec<Stage> {
    let Some(list) = raw else { return vec![Stage::Validate, Stage::Stage] };
    let mut out: Vec<Stage> = Vec::new();
    for s in &list.v {
        let Some(stage) = Stage::ALL.into_iter().find(|x| x.as_str() == s.v) else {
            let problem = Problem::new(s.span.clone(), format!("unknown stage `{}`", s.v))
                .suggest(&s.v, Stage::ALL.map(Stage::as_str));
            problems.push(or_help(problem, "stages are `validate`, `stage`, and `create` or `push`, in that order"));
            continue;
        };
        if out.last().is_some_and(|last| *last >= stage) {
            problems.push(
                Problem::new(s.span.clone(), format!("stage `{}` is listed twice or out of order", s.v))
                    .help("stages are `validate`, `stage`, and `create` or `push`, in that order"),
            );
            continue;
        }
        out.push(stage);
    }
    if list.v.is_empty() {
        problems.push(Problem::new(list.span.clone(), "`stages` is empty").help("e.g. `[\"validate\", \"stage\"]`"));
    }
    out
}

/// `path` as written in the file, relative to the pipeline's directory unless absolute, with
/// `..` resolved lexically (`pipelines/../data` is `data`).
fn relative(base: &Path, path: &str) -> PathBuf {
    use std::path::Component;
    let p = Path::new(path);
    let joined = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// The problem with `help` unless it already suggests something.
fn or_help(problem: Problem, help: &str) -> Problem {
    if problem.help.is_some() { problem } else { problem.help(help) }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
