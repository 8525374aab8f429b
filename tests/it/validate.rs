//! `ferry validate`: field rules over fixtures and generated dumps.

use std::collections::BTreeSet;

use crate::harness::{example_dump, ferry, findings, s};

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

fn manifest(path: &std::path::Path) -> BTreeSet<Key> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            let t = |k: &str| v[k].as_str().unwrap().to_owned();
            (v["line"].as_u64().unwrap(), t("attr"), t("code"), t("severity"))
        })
        .collect()
}

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
    let want = manifest(&expected);
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
