//! Arbitrary and mutated input never panics the flattener, and every line is accounted for.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use ferry::ingest::{Chunk, arrow_schemas, flatten_chunk};
use ferry::schema::Schema;
use proptest::prelude::*;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(Schema::builtin)
}

fn example_line() -> &'static Vec<u8> {
    static LINE: OnceLock<Vec<u8>> = OnceLock::new();
    LINE.get_or_init(|| {
        let text = std::fs::read_to_string(crate::harness::repo("data/examples/account.json")).unwrap();
        serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(&text).unwrap()).unwrap()
    })
}

/// Flattens `bytes` as one chunk and checks that every non-empty line made an account or
/// is named by a finding.
fn check_accounted(bytes: Vec<u8>) {
    let schema = schema();
    let expected: BTreeSet<u64> = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    let out = flatten_chunk(schema, &arrow_schemas(schema), &Chunk::Lines { first_line: 1, bytes });
    let accounts: BTreeSet<u64> =
        out.tables[0].column_by_name("_line").unwrap().as_primitive::<UInt64Type>().values().iter().copied().collect();
    let named: BTreeSet<u64> = out.findings.iter().map(|f| f.line).collect();
    let seen: BTreeSet<u64> = accounts.union(&named).copied().collect();
    assert_eq!(seen, expected);
    assert_eq!(out.accounts as usize, accounts.len());
    for batch in &out.tables {
        assert!(
            batch.num_rows() == 0
                || batch.column(0).as_primitive::<UInt64Type>().values().iter().all(|l| accounts.contains(l))
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check_accounted(bytes);
    }

    #[test]
    fn mutated_accounts_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..12)) {
        let mut line = example_line().clone();
        for (at, byte, op) in edits {
            let i = at.index(line.len().max(1));
            match op {
                0 if !line.is_empty() => {
                    let last = line.len() - 1;
                    line[i.min(last)] = byte;
                }
                1 => line.insert(i.min(line.len()), byte),
                _ if !line.is_empty() => { line.remove(i.min(line.len() - 1)); }
                _ => {}
            }
        }
        let mut bytes = example_line().clone();
        bytes.push(b'\n');
        bytes.extend_from_slice(&line);
        bytes.push(b'\n');
        bytes.extend_from_slice(example_line());
        check_accounted(bytes);
    }
}
