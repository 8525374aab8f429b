//! `ferry run PIPELINE` and `ferry report`: pipeline files, nightly runs, manifests, reports.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use arrow_array::Array;
use serde_json::Value;

use crate::harness::{Run, count, ferry, ferry_in, read_parquet, repo, s, stable};

const TODAY: &str = "2026-11-27";

/// A pipeline file `name.toml` in `dir` (paths in `body` are relative to `dir`).
fn pipeline(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\nworkdir = \"work\"\n{body}")).unwrap();
    path
}

fn run(pipeline: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["run", s(pipeline), "--today", TODAY];
    args.extend(extra);
    ferry(&args)
}

/// The id of the pipeline run a `ferry run` printed.
fn run_id(run: &Run) -> String {
    let line = run.stderr.lines().find(|l| l.starts_with("manifest: ")).unwrap_or_else(|| panic!("{}", run.stderr));
    line.rsplit('/').nth(1).unwrap().to_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn generated(dir: &Path, accounts: &str, rate: &str) -> PathBuf {
    let dump = dir.join("dump.ndjson");
    let run = ferry(&["generate", "--accounts", accounts, "--seed", "11", "--error-rate", rate, "--out", s(&dump)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    dump
}

#[test]
fn every_shipped_pipeline_loads() {
    for entry in std::fs::read_dir(repo("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            ferry::pipeline::Pipeline::load(&path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        }
    }
}

#[test]
fn a_broken_pipeline_gives_all_its_errors_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broken.toml");
    std::fs::write(
        &path,
        "name = \"nightly run\"\nstages = [\"stage\", \"creat\"]\ntimezone = \"Europe/Berln\"\nreprot = [\"html\"]\n\
         [source]\npaths = [\"exports/[.ndjson\"]\n[severity]\ninvalid_emial = \"off\"\nnaive_datetime = \"silent\"\n\
         [thresholds]\nmax_rejected_share = 5\n[create]\nteam = \"Migration\"\nconcurrency = 80\n",
    )
    .unwrap();
    let out = ferry_in(tmp.path(), &["run", "broken.toml"]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!("broken_pipeline", stable(&out.stderr, tmp.path()));
}

#[test]
fn the_example_pipeline_twice_stages_and_creates_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("pipelines")).unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::copy(repo("pipelines/example.toml"), tmp.path().join("pipelines/example.toml")).unwrap();
    std::fs::copy(repo("data/sample.ndjson"), tmp.path().join("data/sample.ndjson")).unwrap();
    let example = tmp.path().join("pipelines/example.toml");
    let wd = tmp.path().join("ferry-data");
    let first = run(&example, &[]);
    assert_eq!(first.code, 1, "the sample has invalid accounts: {}", first.stderr);
    let second = run(&example, &[]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    let (id1, id2) = (run_id(&first), run_id(&second));
    let m1 = json(&wd.join("runs").join(&id1).join("manifest.json"));
    let m2 = json(&wd.join("runs").join(&id2).join("manifest.json"));
    assert_eq!(m1["funnel"]["read"], 200);
    assert_eq!(m1["funnel"]["staged"], 196);
    assert_eq!(m1["funnel"]["created"], 196);
    assert_eq!(m2["funnel"]["staged"], 0, "nothing new to stage");
    assert_eq!(m2["funnel"]["already_imported"], 196);
    assert_eq!(m2["funnel"]["created"], 0);
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), 196, "created once");
    assert_eq!(count(&wd, "SELECT count(*) FROM audit WHERE operation = 'create' AND status_code = 201"), 196);
    // The manifest: inputs with size and hash, hashes, version, timings, exit.
    let input = &m1["inputs"][0];
    assert_eq!(input["size"], std::fs::metadata(repo("data/sample.ndjson")).unwrap().len());
    assert_eq!(input["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(m1["pipeline"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(m1["exit"], 1);
    assert!(m1["steps"].as_array().unwrap().iter().all(|s| s["seconds"].as_f64().unwrap() > 0.0));
    // The second report shows the trend over both runs and the diff with the first.
    let report = json(&wd.join("runs").join(&id2).join("report.json"));
    let trend: Vec<&str> = report["trend"].as_array().unwrap().iter().map(|p| p["run_id"].as_str().unwrap()).collect();
    assert_eq!(trend, [id1.as_str(), id2.as_str()]);
    assert_eq!(report["diff"]["previous_run"], id1.as_str());
    assert_eq!(report["diff"]["new_total"], 0);
    assert_eq!(report["diff"]["fixed_total"], 0);
    let html = std::fs::read_to_string(wd.join("runs").join(&id2).join("report.html")).unwrap();
    assert!(html.contains(&format!("Compared with run <code>{id1}</code>")));
    // `ferry report --latest` rewrites the same report.
    let again = ferry(&["report", "--latest", "--format", "json", "--stdout", "--workdir", s(&wd)]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(serde_json::from_str::<Value>(&again.stdout).unwrap(), report);
}

#[test]
fn the_diff_names_what_is_new_and_what_was_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.ndjson");
    let sample = std::fs::read_to_string(repo("data/sample.ndjson")).unwrap();
    std::fs::write(&dump, &sample).unwrap();
    let p = pipeline(tmp.path(), "diff", "stages = [\"validate\"]\n[source]\npaths = [\"dump.ndjson\"]\n");
    assert_eq!(run(&p, &[]).code, 1);
    // Fix the unknown field of line 174, break a postcode elsewhere.
    let mut lines: Vec<String> = sample.lines().map(str::to_owned).collect();
    let mut fixed: Value = serde_json::from_str(&lines[173]).unwrap();
    fixed.as_object_mut().unwrap().remove("billing_adress1").expect("line 174 has the misspelt field");
    lines[173] = fixed.to_string();
    lines[0] = lines[0].replacen("\"billing_postcode\": \"", "\"billing_postcode\": \"x", 1).replacen(
        "\"billing_postcode\":\"",
        "\"billing_postcode\":\"x",
        1,
    );
    std::fs::write(&dump, lines.join("\n") + "\n").unwrap();
    let second = run(&p, &[]);
    let report = json(&tmp.path().join("work/runs").join(run_id(&second)).join("report.json"));
    let codes = |key: &str| -> BTreeMap<String, u64> {
        report["diff"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["key"].as_str().unwrap().to_owned(), c["count"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(codes("fixed"), BTreeMap::from([("unknown_field".to_owned(), 1)]));
    assert_eq!(report["diff"]["new_total"], 1, "{}", report["diff"]);
}

#[test]
fn a_run_over_the_rejected_share_exits_1_naming_the_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let body = format!(
        "stages = [\"validate\", \"stage\"]\n[source]\npaths = [{:?}]\n[thresholds]\nmax_rejected_share = 0.01\n",
        repo("data/sample.ndjson").display()
    );
    let p = pipeline(tmp.path(), "strict", &body);
    let out = run(&p, &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("threshold crossed: max_rejected_share is 0.0200 (limit 0.0100)"), "{}", out.stderr);
    let m = json(&tmp.path().join("work/runs").join(run_id(&out)).join("manifest.json"));
    assert_eq!(m["status"], "threshold crossed");
    assert_eq!(m["thresholds"][0]["crossed"], true);
    // Within the threshold, and with no account rejected, the exit is 0.
    let lenient = pipeline(tmp.path(), "lenient", &body.replace("0.01", "0.5"));
    let out = run(&lenient, &[]);
    assert_eq!(out.code, 1, "4 accounts are still rejected");
    assert!(!out.stderr.contains("threshold crossed"), "{}", out.stderr);
}

#[test]
fn three_shards_cover_every_account_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = generated(tmp.path(), "90", "0.1");
    // A line that is not JSON belongs to exactly one shard too.
    let mut text = std::fs::read_to_string(&dump).unwrap();
    text.insert_str(0, "{not json\n");
    std::fs::write(&dump, text).unwrap();
    let p = pipeline(tmp.path(), "shards", "stages = [\"validate\", \"stage\"]\n[source]\npaths = [\"dump.ndjson\"]\n");
    let mut seen: Vec<u64> = Vec::new();
    for shard in ["1/3", "2/3", "3/3"] {
        let out = run(&p, &["--shard", shard]);
        assert!(out.code <= 1, "{}", out.stderr);
        let m = json(&tmp.path().join("work/runs").join(run_id(&out)).join("manifest.json"));
        assert_eq!(m["options"]["shard"], shard);
        let dir = tmp.path().join("work").join(m["steps"][0]["dir"].as_str().unwrap());
        for batch in read_parquet(&dir.join("outcomes.parquet")) {
            let lines = batch.column_by_name("line").unwrap();
            let lines = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::UInt64Type>(lines);
            seen.extend(lines.values().iter());
        }
    }
    seen.sort();
    assert_eq!(seen, (1..=91).collect::<Vec<u64>>(), "every line once");
    let bad = ferry(&["run", s(&p), "--shard", "4/3"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn only_failed_from_processes_exactly_the_failed_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    generated(tmp.path(), "60", "0.15");
    let p = pipeline(
        tmp.path(),
        "retry",
        "stages = [\"validate\", \"stage\", \"create\"]\n[source]\npaths = [\"dump.ndjson\"]\n\
         [create]\nteam = \"Migration\"\ncreate_team = true\n",
    );
    let first = run(&p, &[]);
    let m1 = json(&tmp.path().join("work/runs").join(run_id(&first)).join("manifest.json"));
    // The rejected accounts with a key (a line that is not JSON has none to select it by).
    let stage_dir = tmp.path().join("work").join(m1["steps"][0]["dir"].as_str().unwrap());
    let outcomes = crate::harness::read_table(&stage_dir.join("outcomes.parquet"));
    let status = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::UInt16Type>(
        outcomes.column_by_name("status").unwrap(),
    );
    let ext = outcomes.column_by_name("external_account_number").unwrap();
    let failed = (0..outcomes.num_rows()).filter(|i| status.value(*i) >= 400 && !ext.is_null(*i)).count();
    assert!(failed > 0 && failed as u64 <= m1["funnel"]["rejected"].as_u64().unwrap(), "{m1}");
    let retry = run(&p, &["--only-failed-from", &run_id(&first)]);
    assert!(retry.stderr.contains(&format!("{failed} accounts failed in run")), "{}", retry.stderr);
    let m2 = json(&tmp.path().join("work/runs").join(run_id(&retry)).join("manifest.json"));
    assert_eq!(m2["funnel"]["read"], failed as u64, "only the failed accounts are read: {m2}");
    assert_eq!(m2["funnel"]["rejected"], failed as u64, "the source is unchanged, so they fail again");
    assert_eq!(m2["funnel"]["created"], 0);
    assert_eq!(m2["options"]["only_failed_from"], run_id(&first).as_str());
}

/// Counts recomputed from the run's files, independently of the report.
#[test]
fn the_report_agrees_with_the_files_and_masks_personal_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = generated(tmp.path(), "150", "0.3");
    let p = pipeline(
        tmp.path(),
        "quality",
        "stages = [\"validate\", \"stage\", \"create\"]\n[source]\npaths = [\"dump.ndjson\"]\n\
         [create]\nteam = \"Migration\"\ncreate_team = true\n",
    );
    let out = run(&p, &[]);
    assert!(out.code <= 1, "{}", out.stderr);
    let wd = tmp.path().join("work");
    let id = run_id(&out);
    let report = json(&wd.join("runs").join(&id).join("report.json"));
    let manifest = json(&wd.join("runs").join(&id).join("manifest.json"));
    let stage_dir = wd.join(manifest["steps"][0]["dir"].as_str().unwrap());
    // Findings by code, from findings.parquet.
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, code, _) in crate::harness::findings(&stage_dir) {
        *by_code.entry(code).or_default() += 1;
    }
    let reported: BTreeMap<String, u64> = report["findings"]["by_code"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["code"].as_str().unwrap().to_owned(), c["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(reported, by_code);
    // The funnel, from the stage outcomes and the store.
    let outcomes = crate::harness::read_table(&stage_dir.join("outcomes.parquet"));
    let status = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::UInt16Type>(
        outcomes.column_by_name("status").unwrap(),
    );
    let staged = status.values().iter().filter(|s| **s == 201 || **s == 200).count() as u64;
    assert_eq!(report["funnel"]["read"], outcomes.num_rows() as u64);
    assert_eq!(report["funnel"]["staged"], staged);
    assert_eq!(report["funnel"]["created"], count(&wd, "SELECT count(*) FROM record_accounts") as u64);
    // The HTML: well formed, every section, no personal data from the input.
    let html = std::fs::read_to_string(wd.join("runs").join(&id).join("report.html")).unwrap();
    assert_balanced(&html);
    for section in [
        "funnel",
        "findings",
        "by-code",
        "by-table",
        "by-pattern",
        "values",
        "samples",
        "create",
        "trend",
        "diff",
        "inputs",
    ] {
        assert!(html.contains(&format!("id=\"{section}\"")), "section {section}");
    }
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );
    let personal = personal_values(&dump);
    assert!(personal.len() > 100, "the dump has personal data to hide");
    for value in &personal {
        assert!(!html.contains(value.as_str()), "{value} appears unmasked");
        assert!(
            !std::fs::read_to_string(wd.join("runs").join(&id).join("report.md")).unwrap().contains(value.as_str())
        );
    }
    let shown = report["findings"]["values"].as_array().unwrap();
    assert!(shown.iter().any(|v| v["value"].as_str().unwrap().contains("***")), "masked values are shown: {shown:?}");
}

/// Every e-mail address, phone number and IBAN of a dump (five characters or more).
fn personal_values(dump: &Path) -> HashSet<String> {
    fn walk(value: &Value, key: &str, out: &mut HashSet<String>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, k, out)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, key, out)),
            Value::String(text) if ["email", "mobile", "landline", "iban"].contains(&key) && text.len() >= 5 => {
                out.insert(text.clone());
            }
            _ => {}
        }
    }
    let mut out = HashSet::new();
    for line in std::fs::read_to_string(dump).unwrap().lines() {
        if let Ok(value) = serde_json::from_str::<Value>(line) {
            walk(&value, "", &mut out);
        }
    }
    out
}

/// Every element opened is closed, in order (void elements and `/>` aside).
fn assert_balanced(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link", "!doctype"];
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("a tag ends") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.ends_with('/') {
            continue;
        }
        let name = tag.trim_start_matches('/').split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
        if VOID.contains(&name.as_str()) {
            continue;
        }
        if tag.starts_with('/') {
            assert_eq!(open.pop().as_deref(), Some(name.as_str()), "</{name}> closes something else");
        } else {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "unclosed: {open:?}");
}

#[test]
fn the_pipeline_timezone_reads_naive_datetimes() {
    let tmp = tempfile::tempdir().unwrap();
    let body = format!(
        "timezone = \"America/New_York\"\nstages = [\"validate\"]\n[source]\npaths = [{:?}]\n[severity]\nnaive_datetime = \"error\"\n",
        repo("data/sample.ndjson").display()
    );
    let p = pipeline(tmp.path(), "newyork", &body);
    let out = run(&p, &[]);
    let report = json(&tmp.path().join("work/runs").join(run_id(&out)).join("report.json"));
    let naive = report["findings"]["by_code"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "naive_datetime")
        .unwrap()
        .clone();
    assert_eq!(naive["severity"], "error", "the pipeline's severity override applies");
    let details: Vec<&str> = report["findings"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["accounts"].as_array().unwrap())
        .flat_map(|a| a["findings"].as_array().unwrap())
        .filter(|f| f["code"] == "naive_datetime")
        .map(|f| f["detail"].as_str().unwrap())
        .collect();
    assert!(
        !details.is_empty() && details.iter().all(|d| d.ends_with("it is read in America/New_York")),
        "{details:?}"
    );
}
