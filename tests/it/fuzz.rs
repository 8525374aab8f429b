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

/// The seeded mutator of issue 19: small accounts, mutated by a deterministic generator, through
/// everything a line meets in validate, stage and create (flatten, the rules, uniqueness, the
/// validate outcomes, the stage decisions and typed tables, the rows read back as text and
/// checked again). Each round asserts no panic, exactly one validate outcome and one stage
/// outcome per non-blank line, and every body valid JSON. `FERRY_FUZZ_LINES` and
/// `FERRY_FUZZ_SEED` run it longer or elsewhere; a failure prints the seed and the line.
mod mutator {
    use std::collections::BTreeSet;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use ferry::ingest::{Chunk, arrow_schemas, flatten_chunk};
    use ferry::rules::RuleContext;
    use ferry::stage::Stager;
    use ferry::store::StageSnapshot;
    use ferry::validation::{InputScope, check_chunk};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use serde_json::Value;

    use super::schema;

    /// The corrected example with the lists outside ledgers and supply addresses cut to their
    /// first element (those two carry the balance and supply-type rules): every table present.
    fn small_account() -> Value {
        fn trim(v: &mut Value) {
            match v {
                Value::Array(items) => {
                    items.truncate(1);
                    items.iter_mut().for_each(trim);
                }
                Value::Object(map) => map
                    .iter_mut()
                    .filter(|(k, _)| !matches!(k.as_str(), "ledgers" | "supply_addresses"))
                    .for_each(|(_, x)| trim(x)),
                _ => {}
            }
        }
        let text = std::fs::read_to_string(crate::harness::repo("data/examples/account.json")).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        trim(&mut v);
        v
    }

    /// Every path to a value of `v`, as (keys and indices).
    fn paths(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
        out.push(at.clone());
        match v {
            Value::Array(items) => items.iter().enumerate().for_each(|(i, x)| {
                at.push(Value::from(i));
                paths(x, at, out);
                at.pop();
            }),
            Value::Object(map) => map.iter().for_each(|(k, x)| {
                at.push(Value::from(k.as_str()));
                paths(x, at, out);
                at.pop();
            }),
            _ => {}
        }
    }

    /// The value at `path`, when an earlier edit left it there.
    fn at<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
        path.iter().try_fold(v, |v, step| match step {
            Value::Number(i) => v.get_mut(i.as_u64()? as usize),
            Value::String(k) => v.get_mut(k.as_str()),
            _ => None,
        })
    }

    const ODD_VALUES: &[&str] = &[
        "null",
        "true",
        "0",
        "-0",
        "1e400",
        "-1e400",
        "123456789012345678901234567890",
        "0.1e-400",
        "[]",
        "{}",
        "\"\"",
        "\"\\ud800\"",
        "\"\\udfff\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "\"\\u0000\"",
        "\"\\u001b[2J\"",
        "\"\\u202e\"",
        "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
        "{\"a\":{\"b\":{\"c\":[1,{\"d\":null}]}}}",
        "\"9999-99-99\"",
        "\"2024-02-30T25:61:61+99:99\"",
        "\"-\"",
        "\"NaN\"",
        "1.0000000000000000000001",
    ];
    const INSERTS: &[&str] =
        &["\"", "{", "}", "[", "]", ",", ":", "\\", "\\u", "\\ud800", "\u{0}", "\u{feff}", "\u{202e}", "\n", " "];

    /// One mutated line from the small account.
    fn mutate(base: &Value, all_paths: &[Vec<Value>], rng: &mut ChaCha8Rng) -> Vec<u8> {
        let mut v = base.clone();
        // Its own account number, or the input's uniqueness rule rejects every repeat.
        v["external_account_number"] = Value::from(format!("F-{:016x}", rng.random::<u64>()));
        // Structured edits first: type swaps, odd values, removed and duplicated keys. An odd
        // value goes in as raw text (a lone surrogate or 1e400 is no serde_json Value): a marker
        // string now, replaced once the account is text.
        let mut odd: Vec<(String, &str)> = Vec::new();
        for _ in 0..rng.random_range(0..4) {
            let path = &all_paths[rng.random_range(0..all_paths.len())];
            let Some(slot) = at(&mut v, path) else { continue };
            match rng.random_range(0..4) {
                0 => {
                    let marker = format!("@@odd-{}@@", odd.len());
                    *slot = Value::from(marker.as_str());
                    odd.push((format!("\"{marker}\""), ODD_VALUES[rng.random_range(0..ODD_VALUES.len())]));
                }
                1 => *slot = Value::from("x".repeat(rng.random_range(0..600))),
                2 => {
                    if let Value::Object(map) = slot
                        && !map.is_empty()
                    {
                        let key = map.keys().nth(rng.random_range(0..map.len())).unwrap().clone();
                        map.shift_remove(&key);
                    }
                }
                _ => {
                    if let Value::Array(items) = slot
                        && let Some(first) = items.first().cloned()
                    {
                        items.push(first);
                    }
                }
            }
        }
        // The json-typed field keeps its text as given: odd values there get their own share.
        if rng.random_bool(0.15)
            && let Some(slot) = v.pointer_mut("/metadata/0/value")
        {
            *slot = Value::from("@@odd-json@@");
            odd.push(("\"@@odd-json@@\"".to_owned(), ODD_VALUES[rng.random_range(0..ODD_VALUES.len())]));
        }
        let mut text = serde_json::to_string(&v).unwrap();
        for (marker, raw) in &odd {
            text = text.replacen(marker.as_str(), raw, 1);
        }
        if rng.random_bool(0.3) {
            // A duplicate key, a raw odd value spliced in where a value starts.
            let value = ODD_VALUES[rng.random_range(0..ODD_VALUES.len())];
            text = text.replacen('{', &format!("{{\"external_account_number\":{value},"), 1);
        }
        let mut bytes = text.into_bytes();
        // Then, for half the lines, bytes: flips, inserted syntax, truncation, invalid UTF-8.
        let byte_edits = if rng.random_bool(0.5) { rng.random_range(1..4) } else { 0 };
        for _ in 0..byte_edits {
            let i = rng.random_range(0..bytes.len().max(1));
            match rng.random_range(0..5) {
                0 if !bytes.is_empty() => bytes[i] ^= 1 << rng.random_range(0..8),
                1 => {
                    let s = INSERTS[rng.random_range(0..INSERTS.len())];
                    bytes.splice(i..i, s.bytes());
                }
                2 => bytes.truncate(i),
                3 => bytes.insert(i, [0xff, 0xc3, 0x80, 0xed][rng.random_range(0..4)]),
                _ => {}
            }
        }
        bytes.retain(|b| *b != b'\n');
        bytes
    }

    /// How the lines of a chunk came out: accounts (lines that were JSON objects), 200s, staged.
    #[derive(Default)]
    struct Reach {
        accounts: u64,
        valid: u64,
        staged: u64,
    }

    /// Runs one chunk of lines through validate and stage; `Err` names what broke.
    fn check(lines: &[Vec<u8>], first_line: u64) -> Result<Reach, String> {
        let schema = schema();
        let ctx =
            RuleContext::new(Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()), chrono_tz::Europe::Berlin);
        let mut bytes = lines.join(&b'\n');
        bytes.push(b'\n');
        let expected: BTreeSet<u64> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .map(|(i, _)| first_line + i as u64)
            .collect();
        let chunk = Chunk::Lines { first_line, bytes };
        let mut out = flatten_chunk(schema, &arrow_schemas(schema), &chunk);
        check_chunk(schema, &ctx, &mut out);
        InputScope::new(schema).check(schema, &mut out);
        let outcomes = ferry::outcome::chunk_outcomes(schema, &out);
        let seen: Vec<u64> = outcomes.iter().map(|o| o.line).collect();
        if seen.iter().copied().collect::<BTreeSet<_>>() != expected || seen.len() != expected.len() {
            return Err(format!("validate outcomes for lines {seen:?}, expected {expected:?}"));
        }
        for o in &outcomes {
            serde_json::from_str::<Value>(&o.body).map_err(|e| format!("line {}: body is not JSON ({e})", o.line))?;
            let _ = o.to_json();
        }
        let stager = Stager::new(schema, &ctx, StageSnapshot::default(), None);
        // Every account has its line's hash, whatever the bytes around it.
        let line_hashes = stager.line_hashes(&chunk, &out);
        if line_hashes.len() != out.tables[0].num_rows() || line_hashes.contains(&None) {
            return Err(format!("{} line hashes for {} accounts", line_hashes.len(), out.tables[0].num_rows()));
        }
        let staged = stager.stage_chunk(&mut out, line_hashes);
        let decided: Vec<u64> = staged.outcomes.iter().map(|o| o.line).collect();
        if decided.iter().copied().collect::<BTreeSet<_>>() != expected || decided.len() != expected.len() {
            return Err(format!("stage outcomes for lines {decided:?}, expected {expected:?}"));
        }
        for o in &staged.outcomes {
            serde_json::from_str::<Value>(&o.body)
                .map_err(|e| format!("line {}: stage body not JSON ({e})", o.line))?;
        }
        let reach = Reach {
            accounts: out.tables[0].num_rows() as u64,
            valid: outcomes.iter().filter(|o| o.status == 200).count() as u64,
            staged: staged.staged.iter().map(|r| r.outcomes.len() as u64).sum(),
        };
        // What create reads back: the typed rows as text, checked again, and their hashes.
        for rows in &staged.staged {
            let text = ferry::stage::read::to_text(schema, &rows.tables);
            let _ = ferry::rules::validate_tables(schema, &ctx, &text, &[]);
            let _ = ferry::stage::rows_hashes(&rows.tables, &vec![true; rows.outcomes.len()]);
        }
        Ok(reach)
    }

    /// The line of a chunk that fails on its own (the chunk failed).
    fn culprit(lines: &[Vec<u8>]) -> String {
        for (i, line) in lines.iter().enumerate() {
            let single = std::slice::from_ref(line);
            if !matches!(catch_unwind(AssertUnwindSafe(|| check(single, 1))), Ok(Ok(_))) {
                return format!("line {} of the chunk: {}", i + 1, String::from_utf8_lossy(line));
            }
        }
        "no single line fails alone".to_owned()
    }

    #[test]
    fn a_hundred_thousand_mutated_lines_never_panic_and_each_gets_one_outcome() {
        let total: usize = std::env::var("FERRY_FUZZ_LINES").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
        let seed: u64 = std::env::var("FERRY_FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(19);
        let base = small_account();
        let clean = check(&[serde_json::to_vec(&base).unwrap()], 1).unwrap();
        assert_eq!((clean.valid, clean.staged), (1, 1), "the small account is valid and staged");
        let mut all_paths = Vec::new();
        paths(&base, &mut Vec::new(), &mut all_paths);
        // Chunks are independent (each its own stream of the seed), so they run on every core.
        const CHUNK: usize = 500;
        let chunks = total.div_ceil(CHUNK);
        let results: Vec<Result<Reach, String>> = rayon::iter::ParallelIterator::collect(
            rayon::iter::ParallelIterator::map(rayon::iter::IntoParallelIterator::into_par_iter(0..chunks), |c| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(c as u64);
                let n = CHUNK.min(total - c * CHUNK);
                let lines: Vec<Vec<u8>> = (0..n)
                    .map(|_| if rng.random_bool(0.01) { b"   ".to_vec() } else { mutate(&base, &all_paths, &mut rng) })
                    .collect();
                match catch_unwind(AssertUnwindSafe(|| check(&lines, 1))) {
                    Ok(Ok(reach)) => Ok(reach),
                    Ok(Err(why)) => Err(format!("seed {seed}, chunk {c}: {why}\n{}", culprit(&lines))),
                    Err(_) => Err(format!("seed {seed}, chunk {c}: a panic\n{}", culprit(&lines))),
                }
            }),
        );
        let mut all = Reach::default();
        for r in results {
            let r = r.unwrap_or_else(|why| panic!("{why}"));
            (all.accounts, all.valid, all.staged) =
                (all.accounts + r.accounts, all.valid + r.valid, all.staged + r.staged);
        }
        // The mutations must reach past the parser: many lines are still accounts, and some of
        // those pass every rule and are staged (the typed tables and the rows read back).
        let total = total as u64;
        let reached = format!("{} accounts, {} valid, {} staged of {total} lines", all.accounts, all.valid, all.staged);
        assert!(all.accounts * 2 > total && all.valid * 20 > total && all.staged == all.valid, "{reached}");
    }
}
