//! Broken schemas: every mistake reported, all at once.
use crate::schema::Schema;

fn problems(text: &str) -> Vec<String> {
    match Schema::from_str("test.toml", text) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.iter().map(|p| p.message.clone()).collect(),
    }
}

fn head() -> String {
    format!("name = \"t\"\nversion = 1\nroot = \"a\"\n{}", crate::schema::engine_rules_for_tests())
}

/// A misspelt `[rules]` entry is not a silent default: it is a problem with "did you mean",
/// and a check whose code has no severity is one too.
#[test]
fn unreported_rule_codes_and_unrated_checks_are_problems() {
    let text = format!(
        "{}invalid_emial = \"off\"\n[tables.a]\nfields = [{{ name = \"m\", type = \"string\", check = \"email\" }}]\n",
        head()
    );
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p == "rule `invalid_emial` is not a code that ferry or this schema reports"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p == "check `email` reports `invalid_email`, which has no severity in [rules]"),
        "{found:?}"
    );
    let fixed = format!(
        "{}invalid_email = \"off\"\n[tables.a]\nfields = [{{ name = \"m\", type = \"string\", check = \"email\" }}]\n",
        head()
    );
    assert_eq!(problems(&fixed), Vec::<String>::new());
}

#[test]
fn a_minimal_schema_resolves() {
    let text = format!("{}[tables.a]\nfields = [{{ name = \"x\", type = \"string\" }}]\n", head());
    assert_eq!(problems(&text), Vec::<String>::new());
}

#[test]
fn every_kind_of_mistake_is_reported_together() {
    let text = format!(
        r#"{}
[tables.a]
fields = [
  {{ name = "b", type = "list(bs)" }},
  {{ name = "c", type = "list(missing_table)" }},
  {{ name = "d", type = "enum(no_such_list)" }},
  {{ name = "e", type = "decimal(10,2)", min = ">=1" }},
  {{ name = "f", type = "string", req = true, null_ok = true }},
  {{ name = "g", type = "int(5..1)" }},
  {{ name = "h", type = "string", check = "mallo" }},
  {{ name = "i", type = "string", missing_code = "not_a_rule" }},
  {{ name = "j", type = "bool", not_blank = true }},
  {{ name = "k", type = "object(nope)" }},
]
[tables.bs]
same_as = "nothing"
[tables.orphan]
fields = [{{ name = "x", type = "string" }}]
"#,
        head()
    );
    let found = problems(&text);
    for expected in [
        "unknown table `missing_table`",
        "unknown value list `no_such_list`",
        "unknown minimum `>=1`",
        "`null_ok` contradicts `req = true`: a required field is never null",
        "bad type `int(5..1)`: `int(a..b)` needs a range of integers with a <= b",
        "unknown check `mallo`",
        "rule code `not_a_rule` is not listed in [rules]",
        "`not_blank` is only allowed on string fields",
        "unknown object `nope`",
        "`same_as` names `nothing`, which is not a table with its own fields",
        "table `orphan` is not reached from the root",
    ] {
        assert!(found.iter().any(|p| p == expected), "missing {expected:?} in {found:#?}");
    }
}

#[test]
fn engine_codes_need_a_severity() {
    let text = "name = \"t\"\nversion = 1\nroot = \"a\"\n[rules]\n[tables.a]\nfields = []\n";
    let found = problems(text);
    assert!(found.iter().any(|p| p.contains("rule `invalid_json` is reported by ferry")), "{found:#?}");
}
