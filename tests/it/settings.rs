//! Settings resolved once: every command that reads dates takes the same reference date and
//! timezone, and `ferry reprocess` re-validates in the timezone of the run it re-runs.
//!
//! The probe is one reading at 2026-11-28T03:00Z with the reference date 2026-11-27: after the
//! end of that day in Europe/Berlin (23:00Z), so `date_in_future`, but before its end in
//! America/New_York (05:00Z the next morning), so valid.

use std::path::{Path, PathBuf};

use crate::harness::{Run, ferry_wd, repo, s};

const TODAY: &str = "2026-11-27";
const NEW_YORK: &str = "America/New_York";

fn probe(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo("data/examples/account.json")).unwrap();
    let mut account: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reading = "/supply_addresses/0/supply_points/0/melos/0/meters/0/registers/0/readings/0/read_at";
    *account.pointer_mut(reading).unwrap() = serde_json::json!("2026-11-28T03:00:00Z");
    let path = dir.join("probe.ndjson");
    std::fs::write(&path, format!("{account}\n")).unwrap();
    path
}

fn run(wd: &Path, args: &[&str]) -> Run {
    ferry_wd(wd, args, &[])
}

#[test]
fn validate_reads_dates_in_the_given_timezone() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = probe(tmp.path());
    let berlin = crate::harness::ferry(&["validate", s(&dump), "--today", TODAY, "--emit", "findings"]);
    assert_eq!(berlin.code, 1, "{}", berlin.stderr);
    assert!(berlin.stdout.contains("\"code\":\"date_in_future\""), "{}", berlin.stdout);
    let ny = crate::harness::ferry(&["validate", s(&dump), "--today", TODAY, "--timezone", NEW_YORK]);
    assert_eq!(ny.code, 0, "{}", ny.stderr);
    let typo = crate::harness::ferry(&["validate", s(&dump), "--timezone", "Europe/Berln"]);
    assert_eq!(typo.code, 2);
    assert!(typo.stderr.contains("did you mean \"Europe/Berlin\""), "{}", typo.stderr);
}

#[test]
fn stage_and_create_read_dates_in_the_given_timezone() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = probe(tmp.path());
    let wd = tmp.path().join("work");
    let berlin = run(&wd, &["stage", s(&dump), "--today", TODAY]);
    assert_eq!(berlin.code, 1, "Berlin: the reading is in the future\n{}", berlin.stderr);
    let ny = run(&wd, &["stage", s(&dump), "--today", TODAY, "--timezone", NEW_YORK]);
    assert_eq!(ny.code, 0, "New York: staged\n{}", ny.stderr);
    assert_eq!(run(&wd, &["team", "add", "Migration"]).code, 0);
    let create = ["create", "--supplier", "TENTACLE_ENERGY", "--team", "Migration", "--all-pending", "--today", TODAY];
    let dry = [&create[..], &["--dry-run"]].concat();
    let in_berlin = run(&wd, &dry);
    assert_eq!(in_berlin.code, 1, "re-validated in Berlin, the reading is in the future\n{}", in_berlin.stderr);
    let in_ny = run(&wd, &[&create[..], &["--timezone", NEW_YORK]].concat());
    assert_eq!(in_ny.code, 0, "{}", in_ny.stderr);
}

#[test]
fn reprocess_revalidates_in_the_timezone_of_its_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = probe(tmp.path());
    let wd = tmp.path().join("work");
    assert_eq!(run(&wd, &["stage", s(&dump), "--today", TODAY, "--timezone", NEW_YORK]).code, 0);
    // The team does not exist yet: the create run fails the account, in New York time.
    let args = ["create", "--supplier", "TENTACLE_ENERGY", "--team", "Migration", "--all-pending"];
    let failed = run(&wd, &[&args[..], &["--today", TODAY, "--timezone", NEW_YORK]].concat());
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let id = failed
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split_once(": create outcomes").map(|(id, _)| id.to_owned()))
        .unwrap_or_else(|| panic!("no run id: {}", failed.stderr));
    assert_eq!(run(&wd, &["team", "add", "Migration"]).code, 0);
    let again = run(&wd, &["reprocess", "--run", &id, "--today", TODAY]);
    assert_eq!(again.code, 0, "re-validated in New York, the account is created\n{}", again.stderr);
}

/// A stage killed on the command line is resumed by a pipeline run with the same settings (dump,
/// schema, reference date and timezone): both resolve them the same way now that the command
/// line takes `--timezone`. The timezone stays part of what makes two runs the same: the staged
/// instants of naive datetimes depend on it.
#[test]
fn a_pipeline_run_resumes_a_killed_stage_of_the_same_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = probe(tmp.path());
    let wd = tmp.path().join("work");
    let killed = ferry_wd(
        &wd,
        &["stage", s(&dump), "--today", TODAY, "--timezone", NEW_YORK],
        &[("FERRY_FAILPOINT", "stage-committed")],
    );
    assert_ne!(killed.code, 0, "the failpoint kills the stage");
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"p\"\nworkdir = \"work\"\ntimezone = \"{NEW_YORK}\"\nstages = [\"stage\"]\n[source]\npaths = [\"probe.ndjson\"]\n"
        ),
    )
    .unwrap();
    let run = crate::harness::ferry(&["run", s(&pipeline), "--today", TODAY]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("resuming run"), "{}", run.stderr);
    let runs = crate::harness::count(&wd, "SELECT count(*) FROM runs WHERE command = 'stage'");
    assert_eq!(runs, 1, "one stage run, resumed");
}
