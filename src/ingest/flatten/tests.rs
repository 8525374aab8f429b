//! The flattener on single lines: values land in their tables, problems are findings.
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type};

use super::*;
use crate::ingest::arrow_schemas;

const TINY_TABLES: &str = r#"
name_missing = "error"

[tables.things]
fields = [
  { name = "ref", type = "string", req = true },
  { name = "name", type = "string", req = true, missing_code = "name_missing" },
  { name = "count", type = "int(0..10)" },
  { name = "price", type = "decimal(4,2)" },
  { name = "flag", type = "bool", null_ok = true },
  { name = "extra", type = "json" },
  { name = "box", type = "object(box)" },
  { name = "parts", type = "list(parts)" },
  { name = "tags", type = "list(tags)" },
]

[objects.box]
fields = [{ name = "w", type = "int(0..9)", req = true }]

[tables.parts]
fields = [{ name = "p", type = "string", req = true }, { name = "subs", type = "list(subs)" }]

[tables.subs]
fields = [{ name = "s", type = "string" }]

[tables.tags]
value = { type = "string", req = true }
"#;

fn run(input: &str) -> (Schema, ChunkOutput) {
    let schema = crate::schema::tiny_schema_for_tests(TINY_TABLES);
    let arrow = arrow_schemas(&schema);
    let out = flatten_chunk(&schema, &arrow, &Chunk::Lines { first_line: 1, bytes: input.as_bytes().to_vec() });
    (schema, out)
}

fn found(out: &ChunkOutput) -> Vec<(u64, &str, &str)> {
    out.findings.iter().map(|f| (f.line, f.attr.as_str(), f.code.as_str())).collect()
}

fn strings(out: &ChunkOutput, table: usize, col: &str) -> Vec<Option<String>> {
    let array = out.tables[table].column_by_name(col).unwrap().as_string::<i32>();
    array.iter().map(|v| v.map(str::to_owned)).collect()
}

#[test]
fn values_land_in_their_tables_and_columns() {
    let line = r#"{"ref":"a","name":"x","count":3,"price":12.5,"flag":null,"extra":{"k":[1,2]},"box":{"w":4},"parts":[{"p":"p0"},{"p":"p1","subs":[{"s":"s0"},{"s":"s1"}]}],"tags":["t0","t1"]}"#;
    let (schema, out) = run(line);
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    assert_eq!(out.accounts, 1);
    assert_eq!(strings(&out, 0, "price"), [Some("12.5".into())]);
    assert_eq!(strings(&out, 0, "extra"), [Some(r#"{"k":[1,2]}"#.into())]);
    assert_eq!(out.tables[0].column_by_name("box.w").unwrap().as_primitive::<Int64Type>().value(0), 4);
    assert!(out.tables[0].column_by_name("box").unwrap().as_boolean().value(0));
    assert_eq!(out.tables[0].column_by_name("parts").unwrap().as_primitive::<UInt32Type>().value(0), 2);
    let subs = schema.table_by_name("subs").unwrap().id;
    assert_eq!(strings(&out, subs.0, "s"), [Some("s0".into()), Some("s1".into())]);
    assert_eq!(crate::ingest::attr_path(&schema, &out.tables, subs, 1), "parts.1.subs.1");
    let tags = schema.table_by_name("tags").unwrap().id;
    assert_eq!(strings(&out, tags.0, "value"), [Some("t0".into()), Some("t1".into())]);
}

#[test]
fn type_and_presence_problems_are_findings_at_their_path() {
    let input = [
        r#"{"ref":5,"name":null}"#,
        r#"{"ref":"b","name":"x","parts":[{"p":"x"},3,{"q":1}],"tags":[1]}"#,
        r#"{"ref":"c","name":"x","box":1,"count":1.5}"#,
        r#"{"ref":"d","name":"x","box":{},"parts":"x","count":99999999999999999999}"#,
        r#"{"ref":"e","name":"x","ref":"again"}"#,
    ]
    .join("\n");
    let (_, out) = run(&input);
    assert_eq!(
        found(&out),
        [
            (1, "ref", "invalid_type"),
            (1, "name", "name_missing"),
            (2, "parts.1", "invalid_type"),
            (2, "parts.2.q", "unknown_field"),
            (2, "parts.2.p", "required"),
            (2, "tags.0", "invalid_type"),
            (3, "box", "invalid_type"),
            (3, "count", "invalid_type"),
            (4, "box.w", "required"),
            (4, "parts", "not_a_list"),
            (4, "count", "invalid_type"),
            (5, "non_field_errors", "invalid_json"),
        ]
    );
    assert_eq!(out.accounts, 5, "type problems keep the row");
    assert_eq!(out.findings[0].value.as_deref(), Some("5"));
    assert_eq!(out.findings[1].external_account_number, None, "the schema has no account-number column");
}

#[test]
fn a_broken_line_leaves_no_rows_anywhere() {
    let input = "{\"ref\":\"a\",\"name\":\"x\",\"parts\":[{\"p\":\"p0\",\"subs\":[{\"s\":\"s0\"}]}],\"tags\":[\"t\"\n{\"ref\":\"b\",\"name\":\"y\"}";
    let (_, out) = run(input);
    assert_eq!(found(&out), [(1, "non_field_errors", "invalid_json")]);
    assert_eq!(out.accounts, 1);
    assert!(out.tables[1..].iter().all(|t| t.num_rows() == 0), "no part, sub or tag of the broken line survives");
    assert_eq!(strings(&out, 0, "ref"), [Some("b".into())]);
}

#[test]
fn empty_and_whitespace_lines_are_skipped_and_crlf_is_accepted() {
    let (_, out) = run("\n  \r\n{\"ref\":\"a\",\"name\":\"x\"}\r\n\n");
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    assert_eq!((out.accounts, out.lines), (1, 1));
    assert_eq!(
        out.tables[0].column_by_name("_line").unwrap().as_primitive::<arrow_array::types::UInt64Type>().value(0),
        3
    );
}
