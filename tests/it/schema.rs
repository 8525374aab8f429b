//! `ferry schema check`: shipped schemas load; a broken one reports all its problems at once.

use crate::harness::{ferry, repo, s};

#[test]
fn every_shipped_schema_loads() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("schemas")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let run = ferry(&["schema", "check", s(&path)]);
            assert_eq!(run.code, 0, "{}: {}", path.display(), run.stderr);
            checked += 1;
        }
    }
    assert!(checked >= 1);
    let run = ferry(&["schema", "check"]);
    assert_eq!(run.code, 0);
    insta::assert_snapshot!("builtin_schema_tables", run.stdout);
}

#[test]
fn broken_schema_gives_every_problem_in_one_diagnostic() {
    // A relative path: miette wraps at 80 columns, so the text must not depend on the checkout.
    let run = ferry(&["schema", "check", "tests/fixtures/broken-schema/schema.toml"]);
    assert_eq!(run.code, 2);
    let text = run.stderr;
    assert!(text.contains("4 problems"), "{text}");
    insta::assert_snapshot!("broken_schema", text);
}

#[test]
fn schema_that_is_not_toml_points_at_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, "name = \"x\"\n[tables\n").unwrap();
    let run = ferry(&["schema", "check", s(&path)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not valid TOML"), "{}", run.stderr);
}

/// docs/fields.md is `ferry schema docs`, regenerated whenever the schema changes.
#[test]
fn field_reference_is_up_to_date() {
    let run = ferry(&["schema", "docs"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let committed = std::fs::read_to_string(repo("docs/fields.md")).unwrap_or_default();
    assert!(
        committed == run.stdout,
        "docs/fields.md is stale: run `cargo run -- schema docs > docs/fields.md` and commit it"
    );
    for table in ["## accounts", "## readings", "## transactions", "## Rule codes"] {
        assert!(run.stdout.contains(table), "{table}");
    }
}
