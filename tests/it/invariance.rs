//! Property: the flattened tables and the validation findings do not depend on chunk size or
//! thread count.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use arrow_array::RecordBatch;
use ferry::generate::{GenerateOptions, account_line};
use ferry::ingest::output::TableFiles;
use ferry::ingest::{DumpReader, IngestOptions, ingest};
use ferry::rules::RuleContext;
use ferry::schema::Schema;
use ferry::validation::check_chunk;
use proptest::prelude::*;

use crate::harness::read_table;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(Schema::builtin)
}

/// 60 generated accounts with errors, plus an empty line, a non-JSON line and a cut-off end.
fn dump() -> &'static Vec<u8> {
    static DUMP: OnceLock<Vec<u8>> = OnceLock::new();
    DUMP.get_or_init(|| {
        let options = GenerateOptions { accounts: 60, seed: 21, error_rate: 0.3 };
        let mut out = Vec::new();
        for i in 0..options.accounts {
            out.extend(account_line(schema(), &options, i).0);
            out.push(b'\n');
            if i == 10 {
                out.extend(b"\nnot json\n");
            }
        }
        out.extend(b"{\"external_account_number\": \"CUT");
        out
    })
}

fn flatten(dir: &Path, chunk_size: usize, threads: usize) -> Vec<RecordBatch> {
    let reader = DumpReader::from_reader(
        Path::new("mem.ndjson"),
        Box::new(Cursor::new(dump().clone())),
        chunk_size,
        Arc::new(AtomicU64::new(0)),
    );
    let mut files = TableFiles::create(schema(), dir).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let options = IngestOptions { chunk_size, wave: threads * 2 };
    // The rules run too: findings.parquet then holds the validation findings as well.
    let ctx = RuleContext::new(chrono::NaiveDate::from_ymd_opt(2026, 11, 27), chrono_tz::Europe::Berlin);
    pool.install(|| {
        ingest(
            schema(),
            reader,
            options,
            |_, out| check_chunk(schema(), &ctx, out),
            |wave| files.write(wave.into_iter().map(|(o, ())| o).collect()),
        )
    })
    .unwrap();
    files.commit().unwrap();
    let mut paths: Vec<PathBuf> = schema().tables.iter().map(|t| dir.join(format!("{}.parquet", t.name))).collect();
    paths.push(dir.join("findings.parquet"));
    paths.iter().map(|p| read_table(p)).collect()
}

fn reference() -> &'static Vec<RecordBatch> {
    static REFERENCE: OnceLock<Vec<RecordBatch>> = OnceLock::new();
    REFERENCE.get_or_init(|| flatten(tempfile::tempdir().unwrap().path(), 1 << 22, 1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn any_chunk_size_and_thread_count_gives_the_same_tables(chunk_size in 64usize..400_000, threads in 1usize..=4) {
        let tmp = tempfile::tempdir().unwrap();
        let tables = flatten(tmp.path(), chunk_size, threads);
        let reference = reference();
        prop_assert!(reference.last().unwrap().num_rows() > 10, "the dump has findings");
        for (i, (a, b)) in reference.iter().zip(&tables).enumerate() {
            prop_assert_eq!(a, b, "table {} with chunk size {} and {} threads", i, chunk_size, threads);
        }
    }
}
