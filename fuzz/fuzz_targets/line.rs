//! Any bytes as a chunk of dump lines, through validate and stage: no panic, one outcome per
//! non-blank line from each, every body JSON. `cargo +nightly fuzz run line` from the
//! repository root; seed it with data/sample.ndjson lines (see the README's "Fuzzing").
#![no_main]

use std::sync::OnceLock;

use ferry::ingest::{Chunk, arrow_schemas, flatten_chunk};
use ferry::rules::RuleContext;
use ferry::schema::Schema;
use libfuzzer_sys::fuzz_target;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(Schema::builtin)
}

fuzz_target!(|bytes: &[u8]| {
    let schema = schema();
    let ctx = RuleContext::new(chrono::NaiveDate::from_ymd_opt(2026, 11, 27), chrono_tz::Europe::Berlin);
    let lines = bytes.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).count();
    let mut out = flatten_chunk(schema, &arrow_schemas(schema), &Chunk::Lines { first_line: 1, bytes: bytes.to_vec() });
    ferry::validation::check_chunk(schema, &ctx, &mut out);
    ferry::validation::InputScope::new(schema).check(schema, &mut out);
    let outcomes = ferry::outcome::chunk_outcomes(schema, &out);
    assert_eq!(outcomes.len(), lines);
    for o in &outcomes {
        serde_json::from_str::<serde_json::Value>(&o.body).expect("every validate body is JSON");
    }
    let stager = ferry::stage::Stager::new(schema, &ctx, ferry::store::StageSnapshot::default(), None);
    let staged = stager.stage_chunk(&mut out);
    assert_eq!(staged.outcomes.len(), lines);
    for o in &staged.outcomes {
        serde_json::from_str::<serde_json::Value>(&o.body).expect("every stage body is JSON");
    }
    for rows in &staged.staged {
        let text = ferry::stage::read::to_text(schema, &rows.tables);
        let _ = ferry::rules::validate_tables(schema, &ctx, &text, &[]);
    }
});
