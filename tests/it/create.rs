//! `ferry create`: every create outcome, the dry run, exactly-once creation across a kill,
//! the concurrency limit, and account records that reproduce the staged data.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{Run, count, example_dump, ferry, ferry_wd, repo, s, store};

const TODAY: &str = "2026-11-27";

/// `ferry ARGS --workdir WD`, with the fixed reference date for the commands that take one.
fn wd_run(wd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = args.to_vec();
    if matches!(args[0], "stage" | "create") {
        all.extend(["--today", TODAY]);
    }
    ferry_wd(wd, &all, env)
}

/// A clean generated dump of `accounts` accounts, staged into `<tmp>/work`: (work dir, dump).
fn staged(tmp: &Path, accounts: &str, seed: &str) -> (PathBuf, PathBuf) {
    let wd = tmp.join("work");
    let dump = tmp.join("dump.ndjson");
    let made = ferry(&["generate", "--accounts", accounts, "--seed", seed, "--error-rate", "0", "--out", s(&dump)]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let stage = wd_run(&wd, &["stage", s(&dump)], &[]);
    assert_eq!(stage.code, 0, "{}", stage.stderr);
    (wd, dump)
}

/// The supplier with the most import processes, and how many it has.
fn biggest_supplier(wd: &Path) -> (String, i64) {
    store(wd)
        .query_row(
            "SELECT import_supplier, count(*) FROM import_processes GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// The run id a create or reprocess printed.
fn run_id(run: &Run) -> String {
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split_once(": create outcomes").map(|(id, _)| id.to_owned()))
        .unwrap_or_else(|| panic!("no run id: {}", run.stderr))
}

/// (status, error code, body) of every row of the run's outcomes, by the run id in stderr.
fn outcomes(wd: &Path, run: &Run) -> Vec<(u16, Option<String>, Value)> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt16Type;
    let id = run_id(run);
    let batch = crate::harness::read_table(&wd.join("runs").join(id).join("outcomes.parquet"));
    let status = batch.column_by_name("status").unwrap().as_primitive::<UInt16Type>().clone();
    let code = batch.column_by_name("error_code").unwrap().as_string::<i32>().clone();
    let body = batch.column_by_name("body").unwrap().as_string::<i32>().clone();
    (0..batch.num_rows())
        .map(|i| {
            (
                status.value(i),
                code.is_valid(i).then(|| code.value(i).to_owned()),
                serde_json::from_str(body.value(i)).unwrap(),
            )
        })
        .collect()
}

/// Row count and a content hash of every table of the store.
fn content(wd: &Path) -> Vec<(String, i64, String)> {
    let conn = store(wd);
    let tables: Vec<String> = {
        let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    tables
        .into_iter()
        .map(|t| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1")).unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            let mut text = String::new();
            let mut count = 0;
            while let Some(row) = rows.next().unwrap() {
                count += 1;
                for i in 0..n {
                    text.push_str(&format!("{:?}|", row.get_ref(i).unwrap()));
                }
                text.push('\n');
            }
            (t, count, format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())))
        })
        .collect()
}

#[test]
fn every_create_outcome() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let dump = example_dump(tmp.path(), "account.json");
    assert_eq!(wd_run(&wd, &["stage", s(&dump)], &[]).code, 0);
    let create = |extra: &[&str]| {
        let mut args = vec!["create", "--supplier", "TENTACLE_ENERGY", "--team", "Migration"];
        args.extend(extra);
        wd_run(&wd, &args, &[])
    };

    // Team unknown.
    let run = create(&["--all-pending"]);
    assert_eq!(run.code, 1);
    let o = outcomes(&wd, &run);
    assert_eq!((o[0].0, o[0].1.as_deref()), (400, Some("operations_team_name_does_not_exist")));
    assert_eq!(wd_run(&wd, &["team", "add", "Migration"], &[]).code, 0);

    // Dry run: would succeed, and the store is unchanged, table by table.
    let before = content(&wd);
    let run = create(&["--all-pending", "--dry-run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let o = outcomes(&wd, &run);
    assert_eq!((o[0].0, o[0].1.as_deref()), (400, Some("dry_run_rolled_back")));
    assert_eq!(o[0].2["detail"], "Account would successfully import. Rolled back due to Dry Run.");
    assert_eq!(content(&wd), before, "a dry run leaves every table as it was");

    // Not staged, listed in a file with one that is.
    let list = tmp.path().join("accounts.txt");
    std::fs::write(&list, "# to create\nEXTERNAL-1234\nNOPE-1\n").unwrap();
    let run = create(&["--accounts", s(&list)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let mut o = outcomes(&wd, &run);
    o.sort_by_key(|x| x.0);
    assert_eq!(o[0].0, 201);
    let number = o[0].2["kraken_account_number"].as_str().unwrap().to_owned();
    assert!(
        number.len() == 10
            && number.starts_with("A-")
            && number[2..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()),
        "{number}"
    );
    assert_eq!((o[1].0, o[1].1.as_deref()), (400, Some("import_process_does_not_exist")));
    let status = wd_run(&wd, &["status", "--supplier", "TENTACLE_ENERGY", "EXTERNAL-1234"], &[]);
    assert_eq!(status.stdout.trim(), format!(r#"{{"status":"COMPLETED","kraken_account_number":"{number}"}}"#));

    // Already imported: by name, with both numbers; and staging it again is refused too.
    let run = create(&["--accounts", s(&list)]);
    let o = outcomes(&wd, &run);
    let imported = o.iter().find(|x| x.1.as_deref() == Some("account_import_process_already_imported")).unwrap();
    assert_eq!(imported.2["kraken_account_number"], number.as_str());
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), 1, "created once");
    assert_eq!(wd_run(&wd, &["stage", s(&dump)], &[]).code, 1);
    // Every created account's audit row carries its number.
    assert_eq!(
        count(
            &wd,
            &format!("SELECT count(*) FROM audit WHERE operation = 'create' AND kraken_account_number = '{number}'")
        ),
        1
    );
}

#[test]
fn staged_data_that_fails_the_rules_now_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    // Staged while the postcode check is off, created with the built-in schema.
    let lenient = tmp.path().join("lenient.toml");
    let text = std::fs::read_to_string(repo("schemas/account.toml")).unwrap();
    std::fs::write(&lenient, text.replace("invalid_postcode = \"error\"", "invalid_postcode = \"off\"")).unwrap();
    let source = std::fs::read_to_string(repo("data/examples/account.json")).unwrap();
    let mut value: Value = serde_json::from_str(&source).unwrap();
    value["billing_postcode"] = "2009".into();
    let dump = tmp.path().join("d.ndjson");
    std::fs::write(&dump, format!("{value}\n")).unwrap();
    let staged = wd_run(&wd, &["stage", s(&dump), "--schema", s(&lenient)], &[]);
    assert_eq!(staged.code, 0, "{}", staged.stderr);
    assert_eq!(wd_run(&wd, &["team", "add", "Migration"], &[]).code, 0);
    let run = wd_run(&wd, &["create", "--supplier", "TENTACLE_ENERGY", "--team", "Migration", "--all-pending"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let o = outcomes(&wd, &run);
    assert_eq!((o[0].0, o[0].1.as_deref()), (400, Some("account_failed_validation")));
    assert_eq!(o[0].2["errors"][0]["attr"], "billing_postcode");
    assert_eq!(count(&wd, "SELECT count(*) FROM import_processes WHERE status = 'STAGED'"), 1, "still staged");
}

#[test]
fn a_killed_create_creates_every_account_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (wd, _) = staged(tmp.path(), "90", "5");
    assert_eq!(wd_run(&wd, &["team", "add", "Migration"], &[]).code, 0);
    let (supplier, pending) = biggest_supplier(&wd);
    let args =
        ["create", "--supplier", supplier.as_str(), "--team", "Migration", "--all-pending", "--concurrency", "7"];
    // Killed while writing its third chunk: two chunks of 7 are committed, the third is not.
    let killed = wd_run(&wd, &args, &[("FERRY_FAILPOINT", "create-chunk=hit:3")]);
    assert!(![0, 1, 2].contains(&killed.code), "{}", killed.stderr);
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), 14, "the chunk in flight left nothing");
    assert_eq!(count(&wd, "SELECT count(*) FROM import_processes WHERE status = 'IMPORTED'"), 14);
    assert_eq!(
        count(&wd, "SELECT count(*) FROM audit WHERE operation = 'create'"),
        14,
        "committed with their accounts"
    );
    // The chunk in flight left its intents: its accounts are IN_PROGRESS, the others not.
    assert_eq!(count(&wd, "SELECT count(*) FROM create_intents"), 7);
    let in_flight: String =
        store(&wd).query_row("SELECT external_account_number FROM create_intents LIMIT 1", [], |r| r.get(0)).unwrap();
    let status = wd_run(&wd, &["status", "--supplier", supplier.as_str(), in_flight.as_str()], &[]);
    assert_eq!(status.stdout.trim(), r#"{"status":"IN_PROGRESS","kraken_account_number":""}"#);
    let again = wd_run(&wd, &args, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("resuming run"), "{}", again.stderr);
    assert!(again.stderr.contains("7 creations were interrupted"), "{}", again.stderr);
    assert!(again.stderr.contains("7 earlier attempts in this run were retried"), "{}", again.stderr);
    // The audit shows the interrupted attempts (attempt 1, 500) and their retries (attempt 2).
    assert_eq!(
        count(
            &wd,
            "SELECT count(*) FROM audit a JOIN audit b USING (import_supplier, external_account_number, run_id)
             WHERE a.status_code = 500 AND a.error_code = 'creation_interrupted' AND a.attempt = 1
               AND b.status_code = 201 AND b.attempt = 2"
        ),
        7
    );
    assert_eq!(count(&wd, "SELECT count(*) FROM create_intents"), 0);
    let status = wd_run(&wd, &["status", "--supplier", supplier.as_str(), in_flight.as_str()], &[]);
    assert!(status.stdout.contains(r#""status":"COMPLETED""#), "{}", status.stdout);
    assert!(again.stderr.contains("at most 7 accounts in flight (limit 7)"), "{}", again.stderr);
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), pending);
    assert_eq!(count(&wd, "SELECT count(DISTINCT kraken_account_number) FROM record_accounts"), pending);
    assert_eq!(
        count(&wd, "SELECT count(*) FROM import_processes p JOIN record_accounts a USING (kraken_account_number)"),
        pending
    );
    // Running it again creates nothing twice.
    let third = wd_run(&wd, &args, &[]);
    assert_eq!(third.code, 0);
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), pending);
    assert_eq!(count(&wd, "SELECT count(*) FROM audit WHERE operation = 'create' AND status_code = 201"), pending);
}

#[test]
fn a_second_create_while_one_runs_gets_429() {
    let tmp = tempfile::tempdir().unwrap();
    let (wd, _) = staged(tmp.path(), "30", "6");
    assert_eq!(wd_run(&wd, &["team", "add", "Migration"], &[]).code, 0);
    let (supplier, pending) = biggest_supplier(&wd);
    let args = ["create", "--supplier", supplier.as_str(), "--team", "Migration", "--all-pending"];
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .arg("--workdir")
        .arg(&wd)
        .env("FERRY_FAILPOINT", "create-chunk=sleep:3000")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first has its chunk in flight (its intents are committed).
    let started = std::time::Instant::now();
    while count(&wd, "SELECT count(*) FROM create_intents") == 0 {
        assert!(started.elapsed().as_secs() < 30, "the first create never started its chunk");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = wd_run(&wd, &args, &[]);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains("429 Too Many Requests"), "{}", second.stderr);
    let body: Value = serde_json::from_str(second.stdout.trim()).unwrap();
    assert_eq!(body["code"], "concurrency_limit_exceeded");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("`ferry create`") && detail.contains("Retry once it has finished"), "{detail}");
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), pending, "the first created them all, once");
    assert_eq!(count(&wd, "SELECT count(*) FROM runs WHERE command = 'create'"), 1);
}

#[test]
fn account_records_hold_every_staged_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (wd, dump) = staged(tmp.path(), "300", "9");
    assert_eq!(wd_run(&wd, &["team", "add", "Migration"], &[]).code, 0);
    let suppliers: Vec<String> = {
        let conn = store(&wd);
        let mut stmt = conn.prepare("SELECT DISTINCT import_supplier FROM import_processes").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    for supplier in &suppliers {
        let run = wd_run(&wd, &["create", "--supplier", supplier, "--team", "Migration", "--all-pending"], &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    // Every table: as many records as the flattened input has rows.
    let flat = tmp.path().join("flat");
    assert_eq!(ferry(&["flatten", s(&dump), "--out", s(&flat)]).code, 0);
    let schema = ferry::schema::Schema::builtin();
    for table in &schema.tables {
        let rows: usize = crate::harness::read_parquet(&flat.join(format!("{}.parquet", table.name)))
            .iter()
            .map(arrow_array::RecordBatch::num_rows)
            .sum();
        let records = count(&wd, &format!("SELECT count(*) FROM record_{}", table.name));
        assert_eq!(records as usize, rows, "{}", table.name);
    }
    // Values as the input has them: text, decimals, datetimes in UTC, booleans.
    let input: Vec<Value> =
        std::fs::read_to_string(&dump).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let conn = store(&wd);
    for account in input.iter().take(25) {
        let ext = account["external_account_number"].as_str().unwrap();
        let (postcode, balance): (String, Option<String>) = conn
            .query_row(
                "SELECT billing_postcode, transfer_balance FROM record_accounts WHERE external_account_number = ?1",
                [ext],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(postcode, account["billing_postcode"].as_str().unwrap());
        let same_decimal = |a: &str, b: &str| {
            rust_decimal::Decimal::from_str_exact(a).unwrap() == rust_decimal::Decimal::from_str_exact(b).unwrap()
        };
        if let Some(b) = account["transfer_balance"].as_str() {
            assert!(same_decimal(&balance.unwrap(), b), "{ext}");
        }
        let customers = account["customers"].as_array().unwrap();
        let names: Vec<(String, i64)> = {
            let mut stmt = conn
                .prepare(
                    "SELECT c.family_name, c.position FROM record_customers c JOIN record_accounts a ON a.id = c.account_id
                     WHERE a.external_account_number = ?1 ORDER BY c.position",
                )
                .unwrap();
            stmt.query_map([ext], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
        };
        let expected: Vec<(String, i64)> = customers
            .iter()
            .enumerate()
            .map(|(i, c)| (c["family_name"].as_str().unwrap().to_owned(), i as i64))
            .collect();
        assert_eq!(names, expected, "{ext}");
    }
}

#[test]
fn one_failing_account_leaves_the_rest_of_its_chunk_created() {
    let tmp = tempfile::tempdir().unwrap();
    let (wd, _) = staged(tmp.path(), "40", "5");
    assert_eq!(wd_run(&wd, &["team", "add", "Migration"], &[]).code, 0);
    let (supplier, pending) = biggest_supplier(&wd);
    // An account in the middle of the chunk: the ones before it were written when it
    // failed, and must be kept all the same.
    let victim: String = store(&wd)
        .query_row(
            "SELECT external_account_number FROM import_processes WHERE import_supplier = ?1
             ORDER BY external_account_number LIMIT 1 OFFSET ?2",
            rusqlite::params![&supplier, pending / 2],
            |r| r.get(0),
        )
        .unwrap();
    let hook = format!("create-account-fails={victim}");
    let mut args = vec!["create", "--supplier", supplier.as_str(), "--team", "Migration", "--all-pending"];
    // A dry run: the victim is the one rejection, every other account would import.
    args.push("--dry-run");
    let dry = wd_run(&wd, &args, &[("FERRY_FAILPOINT", hook.as_str())]);
    let o = outcomes(&wd, &dry);
    assert_eq!(o.iter().filter(|x| x.1.as_deref() == Some("account_record_rejected")).count(), 1, "{}", dry.stderr);
    assert_eq!(o.iter().filter(|x| x.1.as_deref() == Some("dry_run_rolled_back")).count() as i64, pending - 1);
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), 0, "a dry run keeps nothing");
    args.pop();
    let run = wd_run(&wd, &args, &[("FERRY_FAILPOINT", hook.as_str())]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("at most {pending} accounts in flight")), "one chunk: {}", run.stderr);
    let o = outcomes(&wd, &run);
    let failed: Vec<_> = o.iter().filter(|x| x.0 == 400).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1.as_deref(), Some("account_record_rejected"));
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), pending - 1, "the others are created");
    assert_eq!(
        count(&wd, &format!("SELECT count(*) FROM record_accounts WHERE external_account_number = '{victim}'")),
        0,
        "the failed account's rows were undone"
    );
    let orphans =
        count(&wd, "SELECT count(*) FROM record_customers WHERE account_id NOT IN (SELECT id FROM record_accounts)");
    assert_eq!(orphans, 0, "no half-created account");
    // Every 201 names the account number its record has.
    let numbered = count(
        &wd,
        "SELECT count(*) FROM audit a JOIN record_accounts r USING (kraken_account_number)
         WHERE a.operation = 'create' AND a.status_code = 201",
    );
    assert_eq!(numbered, pending - 1);
}

#[test]
fn reprocess_creates_exactly_what_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let (wd, _) = staged(tmp.path(), "30", "3");
    let (supplier, pending) = biggest_supplier(&wd);
    // No team yet: every account fails.
    let first = wd_run(&wd, &["create", "--supplier", supplier.as_str(), "--team", "Night", "--all-pending"], &[]);
    assert_eq!(first.code, 1);
    let run_id = run_id(&first);
    // A code that did not occur selects nothing; one attempt so far is the limit of 1.
    let none = wd_run(&wd, &["reprocess", "--run", &run_id, "--codes", "dry_run_rolled_back"], &[]);
    assert_eq!(none.code, 0, "{}", none.stderr);
    assert!(none.stderr.contains("nothing to reprocess"), "{}", none.stderr);
    let capped = wd_run(&wd, &["reprocess", "--run", &run_id, "--max-attempts", "1"], &[]);
    assert!(capped.stderr.contains(&format!("{pending} failed accounts left out")), "{}", capped.stderr);
    assert_eq!(wd_run(&wd, &["team", "add", "Night"], &[]).code, 0);
    let again = wd_run(&wd, &["reprocess", "--run", &run_id, "--codes", "operations_team_name_does_not_exist"], &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), pending, "all created");
    assert_eq!(
        count(&wd, &format!("SELECT count(*) FROM runs WHERE command = 'reprocess' AND parent = '{run_id}'")),
        1,
        "a new run linked to its parent"
    );
    assert_eq!(
        count(&wd, "SELECT count(*) FROM audit WHERE operation = 'create' AND status_code = 201 AND attempt = 2"),
        pending,
        "the second attempt of each"
    );
    // Reprocessing the same run again creates nothing twice.
    let twice = wd_run(&wd, &["reprocess", "--run", &run_id], &[]);
    assert_eq!(twice.code, 1, "{}", twice.stderr);
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), pending);
    let o = outcomes(&wd, &twice);
    assert!(o.iter().all(|x| x.1.as_deref() == Some("account_import_process_already_imported")), "{o:?}");
    // An unknown run is a usage error.
    assert_eq!(wd_run(&wd, &["reprocess", "--run", "nope"], &[]).code, 2);
}

#[test]
fn reprocess_with_a_newer_dump_restages_only_the_failed_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    let (wd, dump) = staged(tmp.path(), "12", "4");
    let mut accounts: Vec<Value> =
        std::fs::read_to_string(&dump).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let supplier = accounts[0]["import_supplier"].as_str().unwrap().to_owned();
    let first = wd_run(&wd, &["create", "--supplier", supplier.as_str(), "--team", "Day", "--all-pending"], &[]);
    assert_eq!(first.code, 1);
    let run_id = run_id(&first);
    // The source is fixed: one failed account changes, and the new export has an account
    // nobody asked for.
    accounts[0]["billing_address2"] = "99b".into();
    let mut stranger = accounts[1].clone();
    stranger["external_account_number"] = "NEW-00000001".into();
    accounts.push(stranger);
    let newer = tmp.path().join("newer.ndjson");
    std::fs::write(&newer, accounts.iter().map(|a| format!("{a}\n")).collect::<String>()).unwrap();
    assert_eq!(wd_run(&wd, &["team", "add", "Day"], &[]).code, 0);
    let run = wd_run(&wd, &["reprocess", "--run", &run_id, "--dump", s(&newer)], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("staging"), "{}", run.stderr);
    let ext = accounts[0]["external_account_number"].as_str().unwrap();
    let address: String = store(&wd)
        .query_row("SELECT billing_address2 FROM record_accounts WHERE external_account_number = ?1", [ext], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(address, "99b", "created from the newer dump");
    assert_eq!(count(&wd, "SELECT count(*) FROM import_processes WHERE external_account_number = 'NEW-00000001'"), 0);
    let failed = count(&wd, &format!("SELECT count(*) FROM audit WHERE run_id = '{run_id}'"));
    assert_eq!(count(&wd, "SELECT count(*) FROM record_accounts"), failed);
    // The re-stage recorded outcomes only for the failed accounts.
    let restage: String = store(&wd)
        .query_row("SELECT id FROM runs WHERE command = 'stage' ORDER BY started_at DESC, id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(count(&wd, &format!("SELECT count(*) FROM audit WHERE run_id = '{restage}'")), failed);
}

/// A flattened or recorded value as comparable text: decimals normalised, datetimes as UTC
/// instants, booleans and integers as numbers.
fn comparable(kind: &arrow_schema::DataType, text: Option<String>) -> Option<String> {
    use arrow_schema::DataType;
    let text = text?;
    Some(match kind {
        DataType::Decimal128(_, _) => rust_decimal::Decimal::from_str_exact(&text).unwrap().normalize().to_string(),
        DataType::Timestamp(_, _) => {
            let utc = ferry::rules::field::instant(&text, chrono_tz::Europe::Berlin).unwrap();
            utc.timestamp_micros().to_string()
        }
        _ => text,
    })
}

#[test]
fn account_records_reproduce_every_field_of_the_input() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, UInt32Type};
    use arrow_array::{Array, RecordBatch};
    use arrow_schema::DataType;
    use std::collections::HashMap;

    let tmp = tempfile::tempdir().unwrap();
    let (wd, dump) = staged(tmp.path(), "200", "21");
    assert_eq!(wd_run(&wd, &["team", "add", "Migration"], &[]).code, 0);
    for supplier in ["ALPEN_GAS", "NORDLICHT_STROM", "TENTACLE_ENERGY"] {
        wd_run(&wd, &["create", "--supplier", supplier, "--team", "Migration", "--all-pending"], &[]);
    }
    let schema = ferry::schema::Schema::builtin();
    let typed = ferry::stage::typed::TypedTables::new(&schema);
    let flat = tmp.path().join("flat");
    assert_eq!(ferry(&["flatten", s(&dump), "--out", s(&flat)]).code, 0);
    let tables: Vec<RecordBatch> =
        schema.tables.iter().map(|t| crate::harness::read_table(&flat.join(format!("{}.parquet", t.name)))).collect();
    // The input, as (table, external account number, attr path) -> every column's value.
    let root = &tables[0];
    let externals = root.column_by_name("external_account_number").unwrap().as_string::<i32>();
    let mut input: HashMap<(usize, String, String), Vec<Option<String>>> = HashMap::new();
    for (t, batch) in tables.iter().enumerate() {
        let accounts = batch.column_by_name("_account").unwrap().as_primitive::<UInt32Type>();
        for row in 0..batch.num_rows() {
            let ext = externals.value(accounts.value(row) as usize).to_owned();
            let path = ferry::ingest::attr_path(&schema, &tables, ferry::schema::TableId(t), row);
            let values = batch
                .columns()
                .iter()
                .enumerate()
                .skip(ferry::ingest::KEY_COLUMNS)
                .map(|(i, c)| {
                    let text = c.is_valid(row).then(|| match c.data_type() {
                        DataType::Utf8 => c.as_string::<i32>().value(row).to_owned(),
                        DataType::Boolean => i64::from(c.as_boolean().value(row)).to_string(),
                        DataType::Int64 => c.as_primitive::<Int64Type>().value(row).to_string(),
                        DataType::UInt32 => c.as_primitive::<UInt32Type>().value(row).to_string(),
                        other => panic!("{other}"),
                    });
                    comparable(typed.schemas[t].field(i).data_type(), text)
                })
                .collect();
            input.insert((t, ext, path), values);
        }
    }
    // The records, keyed the same way through parent ids and positions.
    let conn = store(&wd);
    let mut paths: Vec<HashMap<i64, (String, String)>> = vec![HashMap::new(); schema.tables.len()];
    let mut compared = 0;
    for (t, table) in schema.tables.iter().enumerate() {
        let lead = if table.parent.is_none() { 3 } else { 4 };
        let mut stmt = conn.prepare(&format!("SELECT * FROM record_{}", table.name)).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let id: i64 = r.get(0).unwrap();
            let (ext, path) = match &table.parent {
                None => (r.get::<_, String>("external_account_number").unwrap(), String::new()),
                Some((parent, list)) => {
                    let (ext, parent_path) = paths[parent.0][&r.get::<_, i64>(2).unwrap()].clone();
                    let position: i64 = r.get(3).unwrap();
                    let path = if parent_path.is_empty() {
                        format!("{list}.{position}")
                    } else {
                        format!("{parent_path}.{list}.{position}")
                    };
                    (ext, path)
                }
            };
            let values: Vec<Option<String>> = (lead..n)
                .enumerate()
                .map(|(c, i)| {
                    let text = match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8(t.to_vec()).unwrap()),
                        other => panic!("{other:?}"),
                    };
                    comparable(typed.schemas[t].field(ferry::ingest::KEY_COLUMNS + c).data_type(), text)
                })
                .collect();
            let expected = input
                .remove(&(t, ext.clone(), path.clone()))
                .unwrap_or_else(|| panic!("record {}:{ext}:{path} is not in the input", table.name));
            assert_eq!(values, expected, "{}: {ext} {path}", table.name);
            paths[t].insert(id, (ext, path));
            compared += 1;
        }
    }
    assert!(input.is_empty(), "rows of the input with no record: {:?}", input.keys().take(5).collect::<Vec<_>>());
    assert!(compared > 10_000, "{compared} rows compared");
}
