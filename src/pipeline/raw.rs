//! The pipeline file as written: the spanned TOML tree walked into plain values.

use crate::diagnostics::Problem;
use crate::diagnostics::walk::{
    Sp, boolean, document, entries, float, integer, sp_key, string, string_array, unknown_key,
};

#[derive(Debug, Default)]
pub(super) struct RawPipeline {
    pub name: Option<Sp<String>>,
    pub workdir: Option<Sp<String>>,
    pub store: Option<Sp<String>>,
    pub staging: Option<Sp<String>>,
    pub schema: Option<Sp<String>>,
    pub timezone: Option<Sp<String>>,
    pub stages: Option<Sp<Vec<Sp<String>>>>,
    pub report: Option<Sp<Vec<Sp<String>>>>,
    /// The span of the `[source]` table, when there is one.
    pub source: Option<std::ops::Range<usize>>,
    pub paths: Option<Sp<Vec<Sp<String>>>>,
    pub severity: Vec<(Sp<String>, Sp<String>)>,
    pub max_rejected_share: Option<Sp<f64>>,
    pub max_count: Vec<(Sp<String>, Sp<i64>)>,
    pub team: Option<Sp<String>>,
    pub create_team: Option<Sp<bool>>,
    pub dry_run: Option<Sp<bool>>,
    pub concurrency: Option<Sp<i64>>,
    pub suppliers: Option<Sp<Vec<Sp<String>>>>,
    pub push: RawPush,
}

/// The `[push]` table as written.
#[derive(Debug, Default)]
pub(super) struct RawPush {
    pub base_url: Option<Sp<String>>,
    pub team: Option<Sp<String>>,
    pub operations: Option<Sp<Vec<Sp<String>>>>,
    pub dry_run: Option<Sp<bool>>,
    pub concurrency: Option<Sp<i64>>,
    pub token_file: Option<Sp<String>>,
    pub insecure_http: Option<Sp<bool>>,
    pub ca_cert: Option<Sp<String>>,
    pub timeout: Option<Sp<f64>>,
    pub give_up_after: Option<Sp<i64>>,
    pub suppliers: Option<Sp<Vec<Sp<String>>>>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "workdir",
    "store",
    "staging",
    "schema",
    "timezone",
    "stages",
    "report",
    "source",
    "severity",
    "thresholds",
    "create",
    "push",
];
const SOURCE_KEYS: &[&str] = &["paths"];
const THRESHOLD_KEYS: &[&str] = &["max_rejected_share", "max_count"];
const CREATE_KEYS: &[&str] = &["team", "create_team", "dry_run", "concurrency", "suppliers"];
const PUSH_KEYS: &[&str] = &[
    "base_url",
    "team",
    "operations",
    "dry_run",
    "concurrency",
    "token_file",
    "insecure_http",
    "ca_cert",
    "timeout",
    "give_up_after",
    "suppliers",
];

/// Parses the text and walks it; returns `None` only when the TOML itself does not parse.
pub(super) fn parse(text: &str, problems: &mut Vec<Problem>) -> Option<RawPipeline> {
    let doc = document(text, problems)?;
    let mut raw = RawPipeline::default();
    for (key, value) in doc.get_ref().iter() {
        match key.get_ref().as_ref() {
            "name" => raw.name = string(value, "name", problems),
            "workdir" => raw.workdir = string(value, "workdir", problems),
            "store" => raw.store = string(value, "store", problems),
            "staging" => raw.staging = string(value, "staging", problems),
            "schema" => raw.schema = string(value, "schema", problems),
            "timezone" => raw.timezone = string(value, "timezone", problems),
            "stages" => raw.stages = string_array(value, "stages", problems),
            "report" => raw.report = string_array(value, "report", problems),
            "source" => {
                raw.source = Some(key.span());
                for (k, v) in entries(value, "source", problems) {
                    match k.get_ref().as_ref() {
                        "paths" => raw.paths = string_array(v, "source.paths", problems),
                        other => problems.push(unknown_key(k, other, "[source] table", SOURCE_KEYS)),
                    }
                }
            }
            "severity" => {
                for (code, severity) in entries(value, "severity", problems) {
                    if let Some(severity) = string(severity, "a severity", problems) {
                        raw.severity.push((sp_key(code), severity));
                    }
                }
            }
            "thresholds" => {
                for (k, v) in entries(value, "thresholds", problems) {
                    match k.get_ref().as_ref() {
                        "max_rejected_share" => raw.max_rejected_share = float(v, "max_rejected_share", problems),
                        "max_count" => {
                            for (code, n) in entries(v, "max_count", problems) {
                                if let Some(n) = integer(n, "a maximum count", problems) {
                                    raw.max_count.push((sp_key(code), n));
                                }
                            }
                        }
                        other => problems.push(unknown_key(k, other, "[thresholds] table", THRESHOLD_KEYS)),
                    }
                }
            }
            "create" => {
                for (k, v) in entries(value, "create", problems) {
                    match k.get_ref().as_ref() {
                        "team" => raw.team = string(v, "create.team", problems),
                        "create_team" => raw.create_team = boolean(v, "create.create_team", problems),
                        "dry_run" => raw.dry_run = boolean(v, "create.dry_run", problems),
                        "concurrency" => raw.concurrency = integer(v, "create.concurrency", problems),
                        "suppliers" => raw.suppliers = string_array(v, "create.suppliers", problems),
                        other => problems.push(unknown_key(k, other, "[create] table", CREATE_KEYS)),
                    }
                }
            }
            "push" => {
                let p = &mut raw.push;
                for (k, v) in entries(value, "push", problems) {
                    match k.get_ref().as_ref() {
                        "base_url" => p.base_url = string(v, "push.base_url", problems),
                        "team" => p.team = string(v, "push.team", problems),
                        "operations" => p.operations = string_array(v, "push.operations", problems),
                        "dry_run" => p.dry_run = boolean(v, "push.dry_run", problems),
                        "concurrency" => p.concurrency = integer(v, "push.concurrency", problems),
                        "token_file" => p.token_file = string(v, "push.token_file", problems),
                        "insecure_http" => p.insecure_http = boolean(v, "push.insecure_http", problems),
                        "ca_cert" => p.ca_cert = string(v, "push.ca_cert", problems),
                        "timeout" => p.timeout = float(v, "push.timeout", problems),
                        "give_up_after" => p.give_up_after = integer(v, "push.give_up_after", problems),
                        "suppliers" => p.suppliers = string_array(v, "push.suppliers", problems),
                        other => problems.push(unknown_key(k, other, "[push] table", PUSH_KEYS)),
                    }
                }
            }
            other => problems.push(unknown_key(key, other, "pipeline", TOP_KEYS)),
        }
    }
    Some(raw)
}
