//! `ferry flatten` on fixtures and generated dumps.

use std::collections::BTreeSet;

use arrow_array::cast::AsArray;
use ferry::ingest::attr_path;
use ferry::schema::Schema;

use crate::assert_stable_snapshot;
use crate::harness::{example_dump, ferry, findings, manifest, pretty, read_table, row_counts, s, stable};

/// The corrected example: the right number of rows in every table, no finding, exit 0.
#[test]
fn example_account_rows_per_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = example_dump(tmp.path(), "account.json");
    let out = tmp.path().join("out");
    let run = ferry(&["flatten", s(&dump), "--out", s(&out)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(findings(&out).is_empty(), "{:?}", findings(&out));
    let expected = [
        ("accounts", 1),
        ("customers", 1),
        ("supply_addresses", 1),
        ("supply_points", 2),
        ("agreements", 2),
        ("melos", 2),
        ("meters", 2),
        ("registers", 2),
        ("readings", 2),
        ("smgw_configurations", 1),
        ("conversion_factors", 1),
        ("electricity_meter_gateways", 1),
        ("balancing_periods", 2),
        ("balancing_period_time_slices", 2),
        ("transfer_readings", 2),
        ("meter_operators", 2),
        ("network_operators", 2),
        ("transmission_system_operators", 1),
        ("gas_supply_point_load_profiles", 1),
        ("electricity_supply_point_load_profiles", 1),
        ("references", 1),
        ("statements", 2),
        ("ledgers", 2),
        ("ledger_identifiers", 2),
        ("transactions", 6),
        ("payment_instructions", 1),
        ("payment_schedules", 2),
        ("account_campaigns", 1),
        ("metadata", 1),
        ("notes", 1),
    ];
    let counts = row_counts(&out);
    assert_eq!(counts.len(), expected.len(), "{counts:?}");
    for (table, n) in expected {
        assert_eq!(counts[table], n, "rows of {table}");
    }
    assert_stable_snapshot!("flatten_example_summary", stable(&run.stderr, tmp.path()));

    // Every file names the ferry version and the schema it was written with.
    let schema = Schema::builtin();
    for name in ["accounts", "readings", "findings"] {
        let file = std::fs::File::open(out.join(format!("{name}.parquet"))).unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
        let kv =
            parquet::file::reader::FileReader::metadata(&reader).file_metadata().key_value_metadata().unwrap().clone();
        let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
        assert_eq!(get("ferry.version").as_deref(), Some(env!("CARGO_PKG_VERSION")), "{name}");
        assert_eq!(get("ferry.schema_hash"), Some(schema.hash.clone()), "{name}");
    }
}

/// Attr paths rebuilt from the keys point at the right values.
#[test]
fn example_account_paths_point_at_their_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = example_dump(tmp.path(), "account.json");
    let out = tmp.path().join("out");
    assert_eq!(ferry(&["flatten", s(&dump), "--out", s(&out)]).code, 0);
    let schema = Schema::builtin();
    let batches: Vec<_> = schema.tables.iter().map(|t| read_table(&out.join(format!("{}.parquet", t.name)))).collect();
    let value_at = |path: &str| -> Option<String> {
        // Find the row whose rebuilt path plus a column name equals `path`.
        for table in &schema.tables {
            let batch = &batches[table.id.0];
            for row in 0..batch.num_rows() {
                let row_path = attr_path(&schema, &batches, table.id, row);
                for col in &table.columns {
                    let full = if row_path.is_empty() { col.name.clone() } else { format!("{row_path}.{}", col.name) };
                    if full == path {
                        let array = batch.column_by_name(&col.name).unwrap();
                        return Some(arrow_cast::display::array_value_to_string(array, row).unwrap());
                    }
                }
            }
        }
        None
    };
    let cases = [
        ("supply_addresses.0.supply_points.1.melos.0.meters.0.registers.0.obis_code", "1-1:1.8.1"),
        ("supply_addresses.0.supply_points.0.melos.0.meters.0.registers.0.obis_code", "1-0:1.8.0"),
        ("supply_addresses.0.supply_points.1.identifier", "60203829714"),
        ("supply_addresses.0.supply_points.0.melos.0.meters.0.registers.0.readings.0.value", "1234.02"),
        ("supply_addresses.0.supply_points.1.agreements.0.params.network_charges.eeg_charge_annual", "195.0"),
        ("supply_addresses.0.supply_points.1.transfer_readings.0.value", "9876.03"),
        ("ledgers.1.current_statement_transactions.2.transaction_id", "7"),
        ("ledgers.0.current_statement_transactions.0.payment_type", "DIRECT_CREDIT"),
        ("customers.0.customer_preferences.opted_into_sms", "true"),
        ("payment_instructions.0.bank_account.iban", "GB82WEST12345698765432"),
        ("payment_schedules.0.amount", "20"),
        ("metadata.0.value", r#"{"some_data":"some_value"}"#),
        ("billing_postcode", "20099"),
    ];
    for (path, expected) in cases {
        assert_eq!(value_at(path).as_deref(), Some(expected), "{path}");
    }
    let ids = &batches[schema.table_by_name("ledger_identifiers").unwrap().id.0];
    let ledger_ids = schema.table_by_name("ledger_identifiers").unwrap().id;
    assert_eq!(attr_path(&schema, &batches, ledger_ids, 1), "ledgers.1.identifiers.0");
    assert_eq!(ids.column_by_name("value").unwrap().as_string::<i32>().value(1), "60203829714");
    insta::assert_snapshot!("example_registers", pretty(&batches[schema.table_by_name("registers").unwrap().id.0]));
}

/// The guide's own example has only rule-level problems: flatten finds nothing in it.
#[test]
fn guide_example_has_no_type_level_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = example_dump(tmp.path(), "guide-account.json");
    let out = tmp.path().join("out");
    let run = ferry(&["flatten", s(&dump), "--out", s(&out)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(findings(&out).is_empty());
}

/// Each kind of bad line becomes exactly its finding; every other account is intact.
#[test]
fn bad_lines_are_findings_and_lose_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = ferry(&["flatten", "tests/fixtures/bad-lines/dump.ndjson", "--out", s(&out)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let batch = read_table(&out.join("findings.parquet"));
    assert_stable_snapshot!("bad_lines_findings", pretty(&batch));
    let accounts = read_table(&out.join("accounts.parquet"));
    let lines: Vec<u64> =
        accounts.column_by_name("_line").unwrap().as_primitive::<arrow_array::types::UInt64Type>().values().to_vec();
    assert_eq!(lines, [1, 3, 4, 5, 9]);
    let counts = row_counts(&out);
    // Five accounts, each with the example's two supply points, except none lost.
    assert_eq!(counts["supply_points"], 10);
    assert_eq!(counts["customers"], 4, "BAD-CUSTOMERS has no customer rows");
    assert_stable_snapshot!("bad_lines_summary", stable(&run.stderr, tmp.path()));
}

/// The same tables and findings whatever the thread count and chunk size.
#[test]
fn output_does_not_depend_on_threads_or_chunk_size() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.ndjson");
    let generated = ferry(&["generate", "--accounts", "300", "--seed", "11", "--error-rate", "0.2", "--out", s(&dump)]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let schema = Schema::builtin();
    let mut reference: Option<Vec<arrow_array::RecordBatch>> = None;
    for (threads, chunk) in [("1", "4194304"), ("2", "7919"), ("4", "65536"), ("3", "1000")] {
        let out = tmp.path().join(format!("out-{threads}-{chunk}"));
        let run = ferry(&["flatten", s(&dump), "--out", s(&out), "--threads", threads, "--chunk-size", chunk]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        let mut tables: Vec<_> =
            schema.tables.iter().map(|t| read_table(&out.join(format!("{}.parquet", t.name)))).collect();
        tables.push(read_table(&out.join("findings.parquet")));
        match &reference {
            None => reference = Some(tables),
            Some(r) => {
                for (i, (a, b)) in r.iter().zip(&tables).enumerate() {
                    assert_eq!(a, b, "table {i} differs with {threads} threads and {chunk}-byte chunks");
                }
            }
        }
    }
}

type Key = (u64, String, String, String);

/// The generator's expected type-level findings are exactly what flatten reports.
#[test]
fn generated_manifest_equals_flatten_findings() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.ndjson");
    let expected = tmp.path().join("expected.ndjson");
    let generated = ferry(&[
        "generate",
        "--accounts",
        "2000",
        "--seed",
        "5",
        "--error-rate",
        "0.05",
        "--out",
        s(&dump),
        "--manifest",
        s(&expected),
    ]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let out = tmp.path().join("out");
    ferry(&["flatten", s(&dump), "--out", s(&out)]);
    let found: BTreeSet<Key> = findings(&out).into_iter().collect();
    let want = manifest(&expected, |v| v["stage"] == "flatten");
    assert!(want.len() > 20, "the manifest should name many type-level findings, has {}", want.len());
    let codes: BTreeSet<&str> = want.iter().map(|k| k.2.as_str()).collect();
    assert!(codes.len() >= 6, "several different codes: {codes:?}");
    let missing: Vec<_> = want.difference(&found).collect();
    let extra: Vec<_> = found.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:#?}\nextra {extra:#?}");
}

/// With no injected errors there is no finding at all.
#[test]
fn clean_generated_dump_has_no_findings() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.ndjson");
    assert_eq!(ferry(&["generate", "--accounts", "500", "--seed", "3", "--out", s(&dump)]).code, 0);
    let out = tmp.path().join("out");
    let run = ferry(&["flatten", s(&dump), "--out", s(&out)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(findings(&out).is_empty());
    assert_eq!(row_counts(&out)["accounts"], 500);
}

/// Compressed dumps give the same tables as the plain one.
#[test]
fn gzip_and_zstd_dumps_read_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let schema = Schema::builtin();
    let mut reference = None;
    for name in ["dump.ndjson", "dump.ndjson.gz", "dump.ndjson.zst"] {
        let dump = tmp.path().join(name);
        let generated =
            ferry(&["generate", "--accounts", "120", "--seed", "9", "--error-rate", "0.1", "--out", s(&dump)]);
        assert_eq!(generated.code, 0, "{}", generated.stderr);
        let out = tmp.path().join(format!("out-{name}"));
        let run = ferry(&["flatten", s(&dump), "--out", s(&out)]);
        assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
        let mut tables: Vec<_> =
            schema.tables.iter().map(|t| read_table(&out.join(format!("{}.parquet", t.name)))).collect();
        tables.push(read_table(&out.join("findings.parquet")));
        match &reference {
            None => reference = Some(tables),
            Some(r) => assert!(r == &tables, "{name} differs from the plain dump"),
        }
    }
}

/// A line over 16 MiB is one finding; the lines around it are read.
#[test]
fn a_line_over_16_mib_is_a_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let account = std::fs::read_to_string(example_dump(tmp.path(), "account.json")).unwrap();
    let long = format!("{{\"notes\": [{{\"body\": \"{}\"}}]}}\n", "x".repeat(17 << 20));
    let dump = tmp.path().join("long.ndjson");
    std::fs::write(&dump, format!("{account}{long}{account}")).unwrap();
    let out = tmp.path().join("out");
    let run = ferry(&["flatten", s(&dump), "--out", s(&out)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(findings(&out), [(2, "non_field_errors".to_owned(), "line_too_long".to_owned(), "error".to_owned())]);
    assert_eq!(row_counts(&out)["accounts"], 2);
}

/// A dump that does not exist is an I/O error naming the path: exit 2.
#[test]
fn missing_dump_exits_2_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let run = ferry(&["flatten", "no/such/dump.ndjson", "--out", s(&tmp.path().join("out"))]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no/such/dump.ndjson"), "{}", run.stderr);
}
