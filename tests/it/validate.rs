//! `ferry validate`: field rules over fixtures and generated dumps.

use std::collections::BTreeSet;

use crate::harness::{example_dump, ferry, findings, manifest, s};

/// Exactly the errors and warnings of spec/fields.md §4.
#[test]
fn guide_example_gives_the_errors_and_warnings_of_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = example_dump(tmp.path(), "guide-account.json");
    let run = ferry(&["validate", s(&dump), "--emit", "findings", "--today", "2026-11-27"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {} {} | {}",
                v["severity"].as_str().unwrap(),
                v["code"].as_str().unwrap(),
                v["attr"].as_str().unwrap(),
                v["detail"].as_str().unwrap()
            )
        })
        .collect();
    let codes: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    let count = |c: &str| codes.iter().filter(|x| **x == c).count();
    assert_eq!(count("invalid_supply_point_identifier"), 1);
    assert_eq!(count("invalid_market_partner_id"), 5);
    assert_eq!((count("invalid_eic"), count("invalid_iban")), (1, 1));
    assert_eq!(count("naive_datetime"), 4);
    assert_eq!((count("unknown_control_area"), count("ledger_balances_not_equal_to_transfer_balance")), (1, 1));
    assert_eq!(codes.len(), 14, "nothing else");
    insta::assert_snapshot!("guide_example_findings", lines.join("\n"));
}

#[test]
fn corrected_example_is_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = example_dump(tmp.path(), "account.json");
    let out = tmp.path().join("out");
    let run = ferry(&["validate", s(&dump), "--out", s(&out)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(findings(&out).is_empty());
}

#[test]
fn a_repeated_account_number_is_a_finding_on_the_repeat() {
    let tmp = tempfile::tempdir().unwrap();
    let one = std::fs::read_to_string(example_dump(tmp.path(), "account.json")).unwrap();
    let dump = tmp.path().join("twice.ndjson");
    std::fs::write(&dump, format!("{one}{one}")).unwrap();
    let out = tmp.path().join("out");
    assert_eq!(ferry(&["validate", s(&dump), "--out", s(&out)]).code, 1);
    assert_eq!(
        findings(&out),
        [(2, "external_account_number".to_owned(), "duplicate_external_account_number".to_owned(), "error".to_owned())]
    );
}

type Key = (u64, String, String, String);

/// Every injected error is found at its attr with its code, and nothing else is.
#[test]
fn generated_errors_are_found_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.ndjson");
    let expected = tmp.path().join("expected.ndjson");
    let args = [
        "generate",
        "--accounts",
        "2000",
        "--seed",
        "8",
        "--error-rate",
        "0.08",
        "--out",
        s(&dump),
        "--manifest",
        s(&expected),
    ];
    assert_eq!(ferry(&args).code, 0);
    let out = tmp.path().join("out");
    assert_eq!(ferry(&["validate", s(&dump), "--out", s(&out)]).code, 1);
    let found: BTreeSet<Key> = findings(&out).into_iter().collect();
    let want = manifest(&expected, |_| true);
    let codes: BTreeSet<&str> = want.iter().map(|k| k.2.as_str()).collect();
    assert!(codes.len() >= 15, "many different codes: {codes:?}");
    let missing: Vec<_> = want.difference(&found).collect();
    let extra: Vec<_> = found.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:#?}\nextra {extra:#?}");
}

/// A clean generated dump passes every rule.
#[test]
fn clean_generated_dump_passes_every_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.ndjson");
    assert_eq!(ferry(&["generate", "--accounts", "1000", "--seed", "12", "--out", s(&dump)]).code, 0);
    let run = ferry(&["validate", s(&dump), "--emit", "findings"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.is_empty());
}

/// The same findings for 1, 2 and 4 threads.
#[test]
fn findings_do_not_depend_on_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.ndjson");
    assert_eq!(
        ferry(&["generate", "--accounts", "300", "--seed", "2", "--error-rate", "0.3", "--out", s(&dump)]).code,
        0
    );
    let runs: Vec<String> = ["1", "2", "4"]
        .iter()
        .map(|t| ferry(&["validate", s(&dump), "--emit", "findings", "--threads", t, "--chunk-size", "20000"]).stdout)
        .collect();
    assert!(!runs[0].is_empty());
    assert!(runs.iter().all(|r| r == &runs[0]));
}

/// `--emit outcomes` on the shipped sample: one outcome per account, 400 exactly for the
/// accounts with an error finding, and outcomes.parquet with the same rows.
#[test]
fn outcomes_agree_with_findings_on_the_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = ferry(&["validate", "data/sample.ndjson", "--out", s(&out), "--emit", "outcomes"]);
    assert_eq!(run.code, 1, "the sample has injected errors: {}", run.stderr);
    let outcomes: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(outcomes.len(), 200, "one outcome per line of the sample");
    let error_lines: BTreeSet<u64> = findings(&out).into_iter().filter(|f| f.3 == "error").map(|f| f.0).collect();
    for o in &outcomes {
        let line = o["line"].as_u64().unwrap();
        let status = o["status"].as_u64().unwrap();
        assert_eq!(status == 400, error_lines.contains(&line), "line {line}: {o}");
        if status == 400 {
            assert_eq!(o["body"]["code"], "account_failed_validation");
            assert!(!o["body"]["errors"].as_array().unwrap().is_empty());
        } else {
            assert_eq!(o["body"]["external_account_number"], o["external_account_number"]);
        }
    }
    let table = crate::harness::read_table(&out.join("outcomes.parquet"));
    assert_eq!(table.num_rows(), 200);
}

/// `--account`: the validate endpoint on the command line, both ways.
#[test]
fn one_account_gives_the_guide_response() {
    let bad = ferry(&["validate", "--account", "data/examples/guide-account.json"]);
    assert_eq!(bad.code, 1);
    assert_eq!(bad.stderr.trim(), "400 Bad Request");
    insta::assert_snapshot!("guide_account_response", bad.stdout);
    let good = ferry(&["validate", "--account", "data/examples/account.json"]);
    assert_eq!((good.code, good.stderr.trim()), (0, "200 OK"));
    // The 200 body is the account as it came, normalised: decimals given as JSON numbers
    // become their text, and an absent nullable field becomes null.
    let input: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(crate::harness::repo("data/examples/account.json")).unwrap())
            .unwrap();
    let mut expected = input.clone();
    for i in 0..2 {
        expected["payment_schedules"][i]["amount"] = serde_json::json!("20");
    }
    expected["supply_addresses"][0]["supply_points"][0]["transfer_readings"][0]["register_type"] =
        serde_json::Value::Null;
    let body: serde_json::Value = serde_json::from_str(&good.stdout).unwrap();
    assert_eq!(body, expected);
}

/// The `ferry.outcomes` metadata of a Parquet file.
fn outcomes_kind(path: &std::path::Path) -> Option<String> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
    let metadata = parquet::file::reader::FileReader::metadata(&reader).file_metadata().clone();
    metadata.key_value_metadata()?.iter().find(|k| k.key == "ferry.outcomes").and_then(|k| k.value.clone())
}

#[test]
fn outcomes_files_name_their_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = example_dump(tmp.path(), "account.json");
    let out = tmp.path().join("v");
    assert_eq!(ferry(&["validate", s(&dump), "--out", s(&out), "--today", "2026-11-27"]).code, 0);
    assert_eq!(outcomes_kind(&out.join("outcomes.parquet")).as_deref(), Some("validate"));
    let wd = tmp.path().join("work");
    let staged = ferry(&["stage", s(&dump), "--today", "2026-11-27", "--workdir", s(&wd)]);
    assert_eq!(staged.code, 0, "{}", staged.stderr);
    let runs: Vec<_> = std::fs::read_dir(wd.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(outcomes_kind(&runs[0].join("outcomes.parquet")).as_deref(), Some("audit"));
}

/// A lone surrogate escape (`"\ud800"`) is `invalid_json` wherever it stands, in a `json` field
/// (`metadata.N.value`, kept as text) as in a string field: no panic, one outcome per line, every
/// body valid JSON, and stage refuses the line instead of storing text no reader can parse.
#[test]
fn a_lone_surrogate_is_invalid_json_in_any_field() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(crate::harness::repo("data/examples/account.json")).unwrap();
    let account: serde_json::Value = serde_json::from_str(&text).unwrap();
    let line = |ext: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut a = account.clone();
        a["external_account_number"] = serde_json::json!(ext);
        edit(&mut a);
        a.to_string()
    };
    let json_field = line("IN-JSON", &|a| a["metadata"][0]["value"] = serde_json::json!({ "x": "SURROGATE" }));
    let string_field = line("IN-STRING", &|a| a["billing_address2"] = serde_json::json!("SURROGATE"));
    let lines = [
        line("GOOD-1", &|_| {}),
        json_field.replace("SURROGATE", "\\ud800"),
        string_field.replace("SURROGATE", "\\ud800"),
        line("GOOD-2", &|_| {}),
        // A number no reader can hold, in the field kept as text.
        json_field.replace("IN-JSON", "HUGE").replace("\"SURROGATE\"", "1e400"),
    ];
    let dump = tmp.path().join("surrogates.ndjson");
    std::fs::write(&dump, lines.join("\n") + "\n").unwrap();
    let run = ferry(&["validate", s(&dump), "--emit", "outcomes", "--today", "2026-11-27"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let outcomes: Vec<serde_json::Value> =
        run.stdout.lines().map(|l| serde_json::from_str(l).expect("every outcome is JSON")).collect();
    let statuses: Vec<(u64, u64)> =
        outcomes.iter().map(|o| (o["line"].as_u64().unwrap(), o["status"].as_u64().unwrap())).collect();
    assert_eq!(statuses, [(1, 200), (2, 400), (3, 400), (4, 200), (5, 400)]);
    for bad in [&outcomes[1], &outcomes[2], &outcomes[4]] {
        assert_eq!(bad["body"]["errors"][0]["code"], "invalid_json", "{bad}");
    }
    let wd = tmp.path().join("work");
    let staged = ferry(&["stage", s(&dump), "--today", "2026-11-27", "--workdir", s(&wd)]);
    assert_eq!(staged.code, 1, "{}", staged.stderr);
    assert_eq!(
        crate::harness::count(&wd, "SELECT count(*) FROM import_processes"),
        2,
        "only the good lines are staged"
    );
}

/// Empty and white-space lines get no outcome, and the summary counts them as skipped.
#[test]
fn blank_lines_are_counted_as_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(crate::harness::repo("data/sample.ndjson")).unwrap();
    let lines: Vec<&str> = sample.lines().take(3).collect();
    let dump = tmp.path().join("blank.ndjson");
    std::fs::write(&dump, format!("{}\n{}\n   \n\n\t\r\n{}\n\n", lines[0], lines[1], lines[2])).unwrap();
    let run = ferry(&["validate", s(&dump), "--emit", "outcomes", "--today", "2026-11-27"]);
    let outcome_lines: Vec<u64> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["line"].as_u64().unwrap())
        .collect();
    assert_eq!(outcome_lines, [1, 2, 6]);
    assert!(run.stderr.contains("3 lines, 3 accounts"), "{}", run.stderr);
    assert!(run.stderr.contains("4 blank lines skipped"), "{}", run.stderr);
}
