//! The command line itself: help texts and exit codes.

use crate::harness::{ferry, s};

#[test]
fn help_texts_say_what_and_show_an_example() {
    for args in [
        vec!["--help"],
        vec!["flatten", "--help"],
        vec!["validate", "--help"],
        vec!["generate", "--help"],
        vec!["schema", "--help"],
        vec!["schema", "check", "--help"],
        vec!["supplier", "--help"],
        vec!["team", "--help"],
        vec!["stage", "--help"],
        vec!["create", "--help"],
        vec!["reprocess", "--help"],
        vec!["skip", "--help"],
        vec!["unskip", "--help"],
        vec!["status", "--help"],
        vec!["list", "--help"],
        vec!["gc", "--help"],
        vec!["check", "--help"],
        vec!["backup", "--help"],
        vec!["serve", "--help"],
        vec!["push", "--help"],
        vec!["token", "--help"],
        vec!["run", "--help"],
        vec!["report", "--help"],
    ] {
        let run = ferry(&args);
        assert_eq!(run.code, 0, "{args:?}");
        assert!(run.stdout.contains("Example"), "{args:?} has no example");
        insta::assert_snapshot!(format!("help_{}", args.join("_").replace("--", "")), run.stdout);
    }
}

#[test]
fn version_names_the_references_of_the_identifier_checks() {
    let run = ferry(&["--version"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with(&format!("ferry {}", env!("CARGO_PKG_VERSION"))), "{}", run.stdout);
    for part in ["libphonenumber metadata 9.0.42", "SWIFT IBAN registry release 101", "Django's EmailValidator"] {
        assert!(run.stdout.contains(part), "{part} missing from {}", run.stdout);
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ferry(&["no-such-command"]).code, 2);
    assert_eq!(ferry(&["flatten"]).code, 2);
    let tmp = tempfile::tempdir().unwrap();
    let run = ferry(&["generate", "--error-rate", "1.5", "--out", s(&tmp.path().join("x.ndjson"))]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--error-rate must be between 0 and 1"), "{}", run.stderr);
    let run = ferry(&["flatten", "x.ndjson", "--out", s(tmp.path()), "--threads", "0"]);
    assert_eq!(run.code, 2);
}

#[test]
fn generate_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.ndjson");
    let b = tmp.path().join("b.ndjson");
    for (out, threads) in [(&a, "1"), (&b, "2")] {
        let args = [
            "generate",
            "--accounts",
            "50",
            "--seed",
            "4",
            "--error-rate",
            "0.3",
            "--out",
            s(out),
            "--threads",
            threads,
        ];
        assert_eq!(ferry(&args).code, 0);
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

/// An I/O error is said once, naming the file (miette printed its cause a second time).
#[test]
fn an_io_error_is_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken.ndjson.gz");
    std::fs::write(&broken, b"not gzip at all").unwrap();
    let run = ferry(&["validate", s(&broken)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let said = run.stderr.matches("broken.ndjson.gz").count();
    assert_eq!(said, 1, "{}", run.stderr);
}
