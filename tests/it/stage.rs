//! `ferry stage` and the operator commands on import processes: every stage outcome, the
//! state machine, typed staged Parquet, crash safety at each failpoint, the work directory
//! lock and `ferry gc`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, TimestampMicrosecondType, UInt16Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use serde_json::Value;

use crate::harness::{Run, count, example_dump, ferry, ferry_wd, read_table, repo, s, store};

const TODAY: &str = "2026-11-27";

fn wd_run(wd: &Path, args: &[&str]) -> Run {
    ferry_wd(wd, args, &[])
}

/// Stages `dump` and returns the run and its id.
fn stage(wd: &Path, dump: &Path) -> (Run, String) {
    let run = wd_run(wd, &["stage", s(dump), "--today", TODAY]);
    let id = run_id(&run.stderr).unwrap_or_else(|| panic!("no run id in: {}", run.stderr));
    (run, id)
}

fn run_id(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| l.strip_prefix("run ")?.split_once(": stage outcomes").map(|(id, _)| id.to_owned()))
}

/// (line, status, error code, body) of every row of a run's outcomes.parquet.
fn outcomes(wd: &Path, run: &str) -> Vec<(u64, u16, Option<String>, Value)> {
    let batch = read_table(&wd.join("runs").join(run).join("outcomes.parquet"));
    let line = batch.column_by_name("line").unwrap().as_primitive::<UInt64Type>().clone();
    let status = batch.column_by_name("status").unwrap().as_primitive::<UInt16Type>().clone();
    let code = batch.column_by_name("error_code").unwrap().as_string::<i32>().clone();
    let body = batch.column_by_name("body").unwrap().as_string::<i32>().clone();
    (0..batch.num_rows())
        .map(|i| {
            (
                line.value(i),
                status.value(i),
                code.is_valid(i).then(|| code.value(i).to_owned()),
                serde_json::from_str(body.value(i)).unwrap(),
            )
        })
        .collect()
}

/// The corrected example as a one-line dump, with `edit` applied.
fn example(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let text = std::fs::read_to_string(repo("data/examples/account.json")).unwrap();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    edit(&mut value);
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path
}

#[test]
fn every_stage_outcome_and_the_state_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let dump = example_dump(tmp.path(), "account.json");
    let one = |run: &str| {
        let all = outcomes(&wd, run);
        assert_eq!(all.len(), 1, "{all:?}");
        all.into_iter().next().unwrap()
    };
    let staged_body =
        serde_json::json!({ "import_supplier": "TENTACLE_ENERGY", "external_account_number": "EXTERNAL-1234" });

    // 201: first time.
    let (run, id) = stage(&wd, &dump);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(one(&id), (1, 201, None, staged_body.clone()));
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 1);
    let status = wd_run(&wd, &["status", "--supplier", "TENTACLE_ENERGY", "EXTERNAL-1234"]);
    assert_eq!((status.code, status.stdout.trim()), (0, r#"{"status":"UNKNOWN","kraken_account_number":""}"#));

    // 200, identical: no new version.
    let (run, id) = stage(&wd, &dump);
    assert_eq!(run.code, 0);
    assert_eq!(one(&id), (1, 200, None, staged_body.clone()));
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 1, "identical data adds no version");

    // Reformatted but the same data: still identical.
    let pretty = tmp.path().join("reordered.ndjson");
    let mut value: Value = serde_json::from_str(std::fs::read_to_string(&dump).unwrap().trim()).unwrap();
    value.as_object_mut().unwrap().sort_keys();
    std::fs::write(&pretty, format!("{}\n", serde_json::to_string(&value).unwrap().replace(",\"", ", \""))).unwrap();
    let (_, id) = stage(&wd, &pretty);
    assert_eq!(one(&id).1, 200);
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 1, "key order and spacing are not data");

    // 200, replaced: a new version becomes current; the old one stays readable.
    let changed = example(tmp.path(), "changed.ndjson", |v| v["billing_address2"] = "67".into());
    let (_, id) = stage(&wd, &changed);
    assert_eq!(one(&id), (1, 200, None, staged_body.clone()));
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 2);
    assert_eq!(
        count(
            &wd,
            &format!(
                "SELECT count(*) FROM import_processes p JOIN staged_versions v ON v.id = p.current_version
                 WHERE v.run_id = '{id}'"
            )
        ),
        1,
        "the newest version is current"
    );

    // 400 invalid: the validate body, and the rows in quarantine.
    let invalid = example(tmp.path(), "invalid.ndjson", |v| v["billing_postcode"] = "2009".into());
    let (run, id) = stage(&wd, &invalid);
    assert_eq!(run.code, 1);
    let (_, status, code, body) = one(&id);
    assert_eq!((status, code.as_deref()), (400, Some("account_failed_validation")));
    assert_eq!(body["errors"][0]["attr"], "billing_postcode");
    let quarantined = read_table(&wd.join("runs").join(&id).join("quarantine/accounts.parquet"));
    assert_eq!(quarantined.num_rows(), 1);
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 2, "an invalid account stages nothing");

    // 400 skipped, and back.
    let skip = wd_run(&wd, &["skip", "--supplier", "TENTACLE_ENERGY", "EXTERNAL-1234", "--reason", "moved out"]);
    assert_eq!(skip.code, 0, "{}", skip.stderr);
    let (run, id) = stage(&wd, &dump);
    assert_eq!(run.code, 1);
    let (_, status, code, _) = one(&id);
    assert_eq!((status, code.as_deref()), (400, Some("account_import_process_skipped")));
    let again = wd_run(&wd, &["skip", "--supplier", "TENTACLE_ENERGY", "EXTERNAL-1234"]);
    assert_eq!(again.code, 1, "skipping a skipped process is refused");
    assert!(again.stderr.contains("already SKIPPED"), "{}", again.stderr);
    assert_eq!(wd_run(&wd, &["unskip", "--supplier", "TENTACLE_ENERGY", "EXTERNAL-1234"]).code, 0);

    // 400 supplier paused, then complete.
    for (command, word) in [("pause", "paused"), ("complete", "complete")] {
        assert_eq!(wd_run(&wd, &["supplier", command, "TENTACLE_ENERGY"]).code, 0);
        let (_, id) = stage(&wd, &dump);
        let (_, status, code, body) = one(&id);
        assert_eq!((status, code.as_deref()), (400, Some("import_supplier_migration_not_ongoing")));
        assert_eq!(body["detail"], format!("Migration for import supplier TENTACLE_ENERGY is {word}."));
    }
    assert_eq!(wd_run(&wd, &["supplier", "resume", "TENTACLE_ENERGY"]).code, 0);
    let (_, id) = stage(&wd, &dump);
    assert_eq!(one(&id).1, 200, "the first data again: a new version (it differs from the current one)");

    // 400 already imported, with both account numbers. (`ferry create` makes the import;
    // here the store is set as create leaves it.)
    store(&wd)
        .execute(
            "UPDATE import_processes SET status = 'IMPORTED', kraken_account_number = 'A-0000BEEF',
             account_created_at = '2026-11-27T00:00:00.000Z'",
            [],
        )
        .unwrap();
    let (run, id) = stage(&wd, &dump);
    assert_eq!(run.code, 1);
    let (_, status, code, body) = one(&id);
    assert_eq!((status, code.as_deref()), (400, Some("account_import_process_already_imported")));
    assert_eq!(body["detail"], "Account EXTERNAL-1234 has already been imported.");
    assert_eq!(
        (body["external_account_number"].as_str(), body["kraken_account_number"].as_str()),
        (Some("EXTERNAL-1234"), Some("A-0000BEEF"))
    );
    let status = wd_run(&wd, &["status", "--supplier", "TENTACLE_ENERGY", "EXTERNAL-1234"]);
    assert_eq!(status.stdout.trim(), r#"{"status":"COMPLETED","kraken_account_number":"A-0000BEEF"}"#);
    let skip = wd_run(&wd, &["skip", "--supplier", "TENTACLE_ENERGY", "EXTERNAL-1234"]);
    assert_eq!(skip.code, 1, "an imported process cannot be skipped");

    // The database refuses every transition the state machine does not draw.
    let conn = store(&wd);
    for sql in [
        "UPDATE import_processes SET status = 'STAGED'",
        "UPDATE import_processes SET status = 'SKIPPED'",
        "UPDATE import_processes SET current_version = 1",
        "INSERT INTO import_processes (import_supplier, external_account_number, status, created_at, updated_at)
         VALUES ('TENTACLE_ENERGY', 'NEW-1', 'IMPORTED', '', '')",
        "DELETE FROM audit",
        "UPDATE audit SET status_code = 201",
    ] {
        assert!(conn.execute(sql, []).is_err(), "allowed: {sql}");
    }

    // Lists and the 404.
    let list = wd_run(&wd, &["list", "imported", "--supplier", "TENTACLE_ENERGY", "--json"]);
    assert_eq!(
        list.stdout.trim(),
        r#"{"external_account_number":"EXTERNAL-1234","kraken_account_number":"A-0000BEEF","account_created_at":"2026-11-27T00:00:00.000Z"}"#
    );
    assert_eq!(wd_run(&wd, &["list", "pending", "--supplier", "TENTACLE_ENERGY", "--json"]).stdout, "");
    let missing = wd_run(&wd, &["status", "--supplier", "TENTACLE_ENERGY", "NOPE-1"]);
    assert_eq!(missing.code, 1);
    let body: Value = serde_json::from_str(missing.stdout.trim()).unwrap();
    assert_eq!(body["detail"], "No import process for account NOPE-1 of import supplier TENTACLE_ENERGY.");
    assert!(missing.stderr.contains("404 Not Found"));
    // Every stage run left one audit row for its one account.
    assert_eq!(count(&wd, "SELECT count(*) FROM audit"), count(&wd, "SELECT count(*) FROM runs"));
}

/// A re-stage takes a version's payload hash instead of computing it only for the very line
/// the version records (issue 15). The store is edited behind ferry's back to make each path
/// visible: a version whose payload hash is not its data's is "identical" only if its hash was
/// taken, not computed.
#[test]
fn a_restage_takes_the_payload_hash_only_for_the_line_its_version_records() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let dump = example_dump(tmp.path(), "account.json");
    let versions = || count(&wd, "SELECT count(*) FROM staged_versions");
    let line_hash = || -> Option<String> {
        store(&wd)
            .query_row(
                "SELECT v.line_hash FROM import_processes p JOIN staged_versions v ON v.id = p.current_version",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let tamper = |sql: &str| {
        store(&wd).execute(sql, []).unwrap();
    };
    let (run, _) = stage(&wd, &dump);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = line_hash().expect("a staged version records its line's hash");
    assert_eq!(first.len(), 32);

    // The same line: the version's payload hash is taken, even a wrong one.
    tamper("UPDATE staged_versions SET payload_hash = 'not-the-data'");
    let (_, id) = stage(&wd, &dump);
    assert_eq!(outcomes(&wd, &id)[0].1, 200);
    assert_eq!(versions(), 1, "the same line is not hashed again");

    // The same data on a reformatted line is hashed: against the wrong payload hash it is a
    // change, and the new version records the new line.
    let pretty = tmp.path().join("spaced.ndjson");
    let line = std::fs::read_to_string(&dump).unwrap();
    std::fs::write(&pretty, line.replacen(",\"", ", \"", 3)).unwrap();
    stage(&wd, &pretty);
    assert_eq!(versions(), 2, "another line is hashed");
    let spaced = line_hash().unwrap();
    assert_ne!(spaced, first);

    // A version without a line hash (staged by an older ferry) is hashed, found identical, and
    // takes the line's hash; so does one that records another line with the same data.
    tamper("UPDATE staged_versions SET line_hash = NULL");
    stage(&wd, &dump);
    assert_eq!(versions(), 2, "identical data adds no version");
    assert_eq!(line_hash().as_deref(), Some(first.as_str()), "the identical version takes the line's hash");
    stage(&wd, &pretty);
    assert_eq!((versions(), line_hash()), (2, Some(spaced.clone())));

    // Changed data, and back: each line's hash goes with the version it made.
    let changed = example(tmp.path(), "changed.ndjson", |v| v["billing_address2"] = "67".into());
    stage(&wd, &changed);
    assert_eq!(versions(), 3, "changed data is a new version");
    assert_ne!(line_hash(), Some(first.clone()));
    stage(&wd, &dump);
    assert_eq!(versions(), 4, "the first line again is a change back");
    assert_eq!(line_hash(), Some(first));
}

#[test]
fn staged_parquet_holds_typed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let dump = example_dump(tmp.path(), "account.json");
    let (run, id) = stage(&wd, &dump);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let dir = wd.join("staging/TENTACLE_ENERGY").join(&id);
    let column = |table: &str, name: &str| {
        let batch: RecordBatch = read_table(&dir.join(format!("{table}.parquet")));
        batch.column_by_name(name).unwrap_or_else(|| panic!("{table}.{name}")).clone()
    };
    // decimal(4,6): exact units of 10^-6.
    let rate = column("agreements", "params.unit_rate_per_kwh");
    assert_eq!(rate.data_type(), &DataType::Decimal128(10, 6));
    let rate = rate.as_primitive::<Decimal128Type>();
    assert_eq!((rate.value(0), rate.value(1)), (102_500, 359_500));
    // A decimal given as a JSON number (20.0) is read as written.
    let amount = column("payment_schedules", "amount");
    assert_eq!(amount.as_primitive::<Decimal128Type>().value(0), 2000);
    // Dates are days since 1970-01-01.
    let start = column("supply_points", "supply_start_date");
    assert_eq!(start.data_type(), &DataType::Date32);
    assert_eq!(start.as_primitive::<Date32Type>().value(0), 18628, "2021-01-01");
    // Datetimes keep their instant, in UTC; a naive one is read in Europe/Berlin.
    let read_at = column("readings", "read_at");
    assert_eq!(read_at.data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
    let instant = |v: &str| chrono::DateTime::parse_from_rfc3339(v).unwrap().timestamp_micros();
    assert_eq!(read_at.as_primitive::<TimestampMicrosecondType>().value(0), instant("2021-05-13T00:00:00Z"));
    let valid_from = column("balancing_periods", "valid_from");
    assert_eq!(valid_from.as_primitive::<TimestampMicrosecondType>().value(0), instant("2020-12-31T23:00:00Z"));
    // Nulls stay null; booleans and integers keep their types.
    let active_to = column("meters", "active_to");
    assert!(active_to.is_null(0));
    assert_eq!(column("registers", "digits").data_type(), &DataType::Int64);
    assert_eq!(column("accounts", "unknown_occupier").data_type(), &DataType::Boolean);
    // The version points at the account's row.
    let (location, row): (String, i64) = store(&wd)
        .query_row("SELECT location, account_row FROM staged_versions", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((location, row), (format!("staging/TENTACLE_ENERGY/{id}"), 0));
}

/// Everything a stage run leaves, with run ids and times masked: staged versions, audit rows,
/// outcomes.parquet and the staged and quarantined tables.
fn state(wd: &Path) -> String {
    let conn = store(wd);
    let runs: Vec<String> = {
        let mut stmt = conn.prepare("SELECT id FROM runs WHERE committed_at IS NOT NULL ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let mask = |text: String| runs.iter().enumerate().fold(text, |t, (i, id)| t.replace(id, &format!("RUN{i}")));
    let mut out = String::new();
    let mut stmt = conn
        .prepare(
            "SELECT import_supplier, external_account_number, run_id, location, account_row, payload_hash
             FROM staged_versions ORDER BY id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "{} {} {} {} {} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?
            ))
        })
        .unwrap();
    for r in rows {
        out.push_str(&r.unwrap());
        out.push('\n');
    }
    let mut stmt = conn
        .prepare(
            "SELECT run_id, operation, attempt, import_supplier, external_account_number, line, status_code,
                 error_code, body FROM audit ORDER BY id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "{} {} {} {:?} {:?} {:?} {} {:?} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, String>(8)?
            ))
        })
        .unwrap();
    for r in rows {
        out.push_str(&r.unwrap());
        out.push('\n');
    }
    for id in &runs {
        let dir = wd.join("runs").join(id);
        let mut batch = read_table(&dir.join("outcomes.parquet"));
        for time in ["started_at", "finished_at"] {
            batch.remove_column(batch.schema().index_of(time).unwrap());
        }
        out.push_str(&crate::harness::pretty(&batch));
        let mut files: Vec<PathBuf> = Vec::new();
        for base in [dir.join("quarantine"), dir.clone()] {
            if base.is_dir() {
                files.extend(std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()));
            }
        }
        for supplier in std::fs::read_dir(wd.join("staging")).unwrap() {
            let staged = supplier.unwrap().path().join(id);
            if staged.is_dir() {
                files.extend(std::fs::read_dir(&staged).unwrap().map(|e| e.unwrap().path()));
            }
        }
        files.retain(|f| f.extension().is_some_and(|e| e == "parquet") && !f.ends_with("outcomes.parquet"));
        files.sort();
        for f in files {
            out.push_str(&format!(
                "{}: {}\n",
                f.strip_prefix(wd).unwrap().display(),
                crate::harness::pretty(&read_table(&f))
            ));
        }
    }
    mask(out)
}

/// No temporary file anywhere under `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(temporaries(&path));
        } else if path.file_name().unwrap().to_string_lossy().ends_with(".tmp") {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_killed_stage_finishes_on_rerun_exactly_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.ndjson");
    let made = ferry(&["generate", "--accounts", "120", "--seed", "7", "--error-rate", "0.1", "--out", s(&dump)]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let args = ["stage", s(&dump), "--today", TODAY, "--chunk-size", "20000"];
    let clean = tmp.path().join("clean");
    assert_eq!(ferry_wd(&clean, &args, &[]).code, 1);
    let expected = state(&clean);
    assert!(expected.contains(" 201 "), "{expected}");

    for point in ["stage-writing", "stage-files-durable", "stage-committed"] {
        let wd = tmp.path().join(point);
        let killed = ferry_wd(&wd, &args, &[("FERRY_FAILPOINT", point)]);
        assert!(![0, 1, 2].contains(&killed.code), "{point}: the failpoint aborts ({})", killed.stderr);
        assert!(killed.stderr.contains(&format!("failpoint {point}")), "{}", killed.stderr);
        let committed = count(&wd, "SELECT count(*) FROM runs WHERE committed_at IS NOT NULL");
        assert_eq!(committed, i64::from(point == "stage-committed"), "{point}");
        if point != "stage-committed" {
            assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 0, "{point}: nothing is current");
        }
        let again = ferry_wd(&wd, &args, &[]);
        assert_eq!(again.code, 1, "{point}: {}", again.stderr);
        assert!(again.stderr.contains("resuming run"), "{point}: {}", again.stderr);
        assert_eq!(state(&wd), expected, "{point}: the re-run finishes the interrupted run");
        assert_eq!(temporaries(&wd), Vec::<PathBuf>::new(), "{point}");
        assert_eq!(count(&wd, "SELECT count(*) FROM runs WHERE finished_at IS NULL"), 0);
    }
}

#[test]
fn gc_removes_what_no_committed_version_references() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let dump = example_dump(tmp.path(), "account.json");
    let (_, kept) = stage(&wd, &dump);
    let changed = example(tmp.path(), "changed.ndjson", |v| v["billing_address2"] = "67".into());
    let killed =
        ferry_wd(&wd, &["stage", s(&changed), "--today", TODAY], &[("FERRY_FAILPOINT", "stage-files-durable")]);
    assert!(![0, 1, 2].contains(&killed.code));
    let orphans: Vec<_> = std::fs::read_dir(wd.join("staging/TENTACLE_ENERGY")).unwrap().collect();
    assert_eq!(orphans.len(), 2, "the killed run's files are there, unreferenced");
    let dry = wd_run(&wd, &["gc", "--dry-run"]);
    // The killed run's staged files, and the outcomes file it was writing beside its audit rows.
    let listed: Vec<&str> = dry.stdout.lines().collect();
    assert_eq!(listed.len(), 2, "{}", dry.stdout);
    assert!(listed.iter().any(|l| l.contains("staging/TENTACLE_ENERGY/")), "{}", dry.stdout);
    assert!(listed.iter().any(|l| l.ends_with("/.outcomes.parquet.tmp")), "{}", dry.stdout);
    assert!(!dry.stdout.contains(&kept), "{}", dry.stdout);
    let gc = wd_run(&wd, &["gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    let left: Vec<String> = std::fs::read_dir(wd.join("staging/TENTACLE_ENERGY"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [kept]);
    assert_eq!(wd_run(&wd, &["gc"]).stdout, "", "nothing left to collect");
    // The store still reads the kept version.
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 1);
}

#[test]
fn a_second_writer_fails_at_once_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let dump = example_dump(tmp.path(), "account.json");
    let first = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["stage", s(&dump), "--today", TODAY, "--workdir", s(&wd)])
        .env("FERRY_FAILPOINT", "stage-files-durable=sleep:4000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = wd.join("ferry.lock");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.starts_with("run ")) {
        assert!(started.elapsed().as_secs() < 30, "the first stage never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let holder = std::fs::read_to_string(&lock).unwrap();
    let second = wd_run(&wd, &["stage", s(&dump), "--today", TODAY]);
    let gc = wd_run(&wd, &["gc"]);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(second.code, 2, "{}", second.stderr);
    let pid = first_pid(&holder);
    assert!(second.stderr.contains(&format!("(pid {pid})")), "{}", second.stderr);
    let run = run_id(&String::from_utf8_lossy(&out.stderr)).unwrap();
    assert!(second.stderr.contains(&format!("run {run}")), "{}", second.stderr);
    assert_eq!(gc.code, 2, "gc waits for no one either");
    // The refused process changed nothing: one run, one version.
    assert_eq!(count(&wd, "SELECT count(*) FROM runs"), 1);
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 1);
    // The lock goes with its process.
    assert_eq!(stage(&wd, &dump).0.code, 0);
}

fn first_pid(holder: &str) -> u32 {
    let start = holder.find("(pid ").unwrap() + 5;
    holder[start..].split(')').next().unwrap().parse().unwrap()
}

#[test]
fn the_stage_summary_of_the_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let sample = repo("data/sample.ndjson");
    let (first, id) = stage(&wd, &sample);
    assert_eq!(first.code, 1, "the sample has invalid accounts");
    let (second, id2) = stage(&wd, &sample);
    let mask = |text: &str| text.replace(&id, "[RUN]").replace(&id2, "[RUN2]").replace(s(&sample), "[SAMPLE]");
    crate::assert_stable_snapshot!("stage_sample_first", mask(&first.stderr));
    crate::assert_stable_snapshot!("stage_sample_again", mask(&second.stderr));
    let list = wd_run(&wd, &["list", "pending", "--supplier", "ALPEN_GAS"]);
    assert_eq!(list.code, 0);
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert!(rows[0].starts_with("external_account_number"), "{}", list.stdout);
    let staged = count(&wd, "SELECT count(*) FROM import_processes WHERE import_supplier = 'ALPEN_GAS'");
    assert_eq!(rows.len() as i64 - 1, staged);
}

#[test]
fn a_value_its_typed_column_cannot_hold_is_a_finding_not_a_rounding() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    // A schema that lets too many decimal places through validation.
    let schema = tmp.path().join("lenient.toml");
    let text = std::fs::read_to_string(repo("schemas/account.toml")).unwrap();
    std::fs::write(&schema, text.replace("max_decimal_places = \"error\"", "max_decimal_places = \"off\"")).unwrap();
    let dump = example(tmp.path(), "places.ndjson", |v| {
        v["supply_addresses"][0]["supply_points"][0]["agreements"][0]["params"]["unit_rate_per_kwh"] =
            "0.10250001".into();
    });
    let run = wd_run(&wd, &["stage", s(&dump), "--today", TODAY, "--schema", s(&schema)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let id = run_id(&run.stderr).unwrap();
    let (_, status, code, body) = outcomes(&wd, &id).remove(0);
    assert_eq!((status, code.as_deref()), (400, Some("account_failed_validation")));
    assert_eq!(body["errors"][0]["code"], "not_stageable");
    assert_eq!(body["errors"][0]["attr"], "supply_addresses.0.supply_points.0.agreements.0.params.unit_rate_per_kwh");
    assert!(body["errors"][0]["detail"].as_str().unwrap().contains("8 decimal places"), "{body}");
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 0);
    let findings = crate::harness::findings(&wd.join("runs").join(&id));
    assert!(findings.iter().any(|f| f.2 == "not_stageable"), "{findings:?}");
}

#[test]
fn staged_rows_read_back_in_windows_and_pass_the_rules_again() {
    use ferry::rules::{RuleContext, validate_tables};
    use ferry::schema::{Schema, Severity};
    use ferry::stage::read::{StagedReader, to_text};

    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let dump = tmp.path().join("dump.ndjson");
    let made = ferry(&["generate", "--accounts", "60", "--seed", "11", "--error-rate", "0", "--out", s(&dump)]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let (run, id) = stage(&wd, &dump);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let schema = Schema::builtin();
    let ctx = RuleContext::new(Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()), chrono_tz::Europe::Berlin);
    let mut lines = Vec::new();
    let mut rows_per_table = vec![0; schema.tables.len()];
    for supplier in std::fs::read_dir(wd.join("staging")).unwrap() {
        let mut reader = StagedReader::open(&schema, &supplier.unwrap().path().join(&id)).unwrap();
        let mut next = 0;
        while let Some(window) = reader.next_window(7).unwrap() {
            assert_eq!(window.first_account, next);
            next += window.tables[0].num_rows() as u64;
            let text = to_text(&schema, &window.tables);
            let errors: Vec<_> = validate_tables(&schema, &ctx, &text, &[])
                .into_iter()
                .filter(|f| f.severity == Severity::Error)
                .collect();
            assert!(errors.is_empty(), "staged data re-validates clean: {errors:?}");
            let line = text[0].column_by_name("_line").unwrap().as_primitive::<UInt64Type>();
            lines.extend(line.values().iter().copied());
            for (t, batch) in text.iter().enumerate() {
                rows_per_table[t] += batch.num_rows();
            }
        }
        assert_eq!(next, reader.accounts());
    }
    lines.sort_unstable();
    assert_eq!(lines, (1..=60).collect::<Vec<u64>>(), "every account once");
    let flat = tmp.path().join("flat");
    assert_eq!(ferry(&["flatten", s(&dump), "--out", s(&flat)]).code, 0);
    for (t, table) in schema.tables.iter().enumerate() {
        let expected: usize = crate::harness::read_parquet(&flat.join(format!("{}.parquet", table.name)))
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows_per_table[t], expected, "{}", table.name);
    }
}
