//! A small harness: run `ferry`, capture its output, read Parquet back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The outcome of one `ferry` invocation.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real binary with `args`, without colours and with a fixed terminal width.
pub(crate) fn ferry(args: &[&str]) -> Run {
    ferry_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs the real binary in `dir`: tests whose output names files pass paths relative to it,
/// so that the text does not depend on where the checkout lives.
pub(crate) fn ferry_in(dir: &Path, args: &[&str]) -> Run {
    ferry_with(dir, args, &[])
}

/// Runs the real binary in `dir` with extra environment variables.
pub(crate) fn ferry_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir)
        .args(args)
        // A store named in the caller's environment is never the tests' (they give their own).
        .env_remove("FERRY_STORE")
        .env_remove("FERRY_STAGING")
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("the ferry binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the real binary with `--workdir WD` appended and extra environment variables.
pub(crate) fn ferry_wd(wd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--workdir", s(wd)]);
    ferry_with(&repo(""), &all, env)
}

/// The store of a work directory, opened directly.
pub(crate) fn store(wd: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(wd.join("ferry.db")).unwrap()
}

/// The one integer a query of the store returns (`SELECT count(*) ...`).
pub(crate) fn count(wd: &Path, sql: &str) -> i64 {
    store(wd).query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub(crate) fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub(crate) fn s(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Every batch of a Parquet file.
pub(crate) fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(Result::unwrap).collect()
}

/// A Parquet file as one batch.
pub(crate) fn read_table(path: &Path) -> RecordBatch {
    let batches = read_parquet(path);
    let schema = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().schema().clone();
    arrow_select_concat(&schema, &batches)
}

fn arrow_select_concat(schema: &arrow_schema::SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    if batches.is_empty() {
        return RecordBatch::new_empty(schema.clone());
    }
    arrow_select::concat::concat_batches(schema, batches).unwrap()
}

pub(crate) fn pretty(batch: &RecordBatch) -> String {
    arrow_cast::pretty::pretty_format_batches(std::slice::from_ref(batch)).unwrap().to_string()
}

/// (line, attr, code, severity) of every finding in `dir/findings.parquet`, in file order.
pub(crate) fn findings(dir: &Path) -> Vec<(u64, String, String, String)> {
    let batch = read_table(&dir.join("findings.parquet"));
    let col = |name: &str| batch.column_by_name(name).unwrap().as_string::<i32>().clone();
    let (attr, code, severity) = (col("attr"), col("code"), col("severity"));
    let line = batch.column_by_name("line").unwrap().as_primitive::<UInt64Type>().clone();
    (0..batch.num_rows())
        .map(|i| (line.value(i), attr.value(i).to_owned(), code.value(i).to_owned(), severity.value(i).to_owned()))
        .collect()
}

/// Row counts of every table in a flatten output directory, by table name.
pub(crate) fn row_counts(dir: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "parquet") && name != "findings" {
            out.insert(name, read_parquet(&path).iter().map(RecordBatch::num_rows).sum());
        }
    }
    out
}

/// Replaces the temp directory and the checkout's path in text meant for snapshots.
pub(crate) fn stable(text: &str, temp: &Path) -> String {
    text.replace(s(temp), "[TMP]").replace(env!("CARGO_MANIFEST_DIR"), "[REPO]")
}

/// Snapshot assertion with timings masked (`in 0.24 s (13.2 MB/s)` → `in [TIME]`).
#[macro_export]
macro_rules! assert_stable_snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({filters => vec![(r"in [0-9]+\.[0-9]+ s( \([0-9.]+ MB/s\))?", "in [TIME]")]}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// Writes the corrected example account as a one-line dump and returns its path.
pub(crate) fn example_dump(dir: &Path, example: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo(&format!("data/examples/{example}"))).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let path = dir.join(example.replace(".json", ".ndjson"));
    std::fs::write(&path, format!("{}\n", serde_json::to_string(&value).unwrap())).unwrap();
    path
}

/// (line, attr, code, severity) of a generator manifest's entries that `keep` accepts.
pub(crate) fn manifest(
    path: &Path,
    keep: impl Fn(&serde_json::Value) -> bool,
) -> std::collections::BTreeSet<(u64, String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| keep(v))
        .map(|v| {
            let text = |k: &str| v[k].as_str().unwrap().to_owned();
            (v["line"].as_u64().unwrap(), text("attr"), text("code"), text("severity"))
        })
        .collect()
}
