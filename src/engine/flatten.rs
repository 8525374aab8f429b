//! Flatten: a dump into one Parquet file per table and findings.parquet, with the type-level
//! findings only (no rules).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::error::Error;
use crate::ingest::ingest;
use crate::ingest::output::TableFiles;
use crate::settings::Settings;

/// What a flatten came to.
pub struct Flattened {
    pub lines: u64,
    pub accounts: u64,
    /// Rows written per table, in the schema's table order.
    pub rows: Vec<u64>,
    pub findings_by_code: BTreeMap<String, u64>,
    pub findings: u64,
    pub seconds: f64,
    /// The dump's size in bytes.
    pub bytes: u64,
}

/// Flattens `dump` into the directory `out`, in parallel, with a progress bar on a terminal.
pub fn flatten_dump(settings: &Settings, dump: &Path, out: &Path) -> Result<Flattened, Error> {
    let super::DumpInput { pool, options, reader, size } = super::DumpInput::open(settings, dump)?;
    let schema = &settings.schema;
    let consumed = reader.progress();
    let mut files = TableFiles::create(schema, out)?;
    let bar = super::byte_progress(size);
    let started = Instant::now();
    let mut accounts = 0u64;
    let totals = pool.install(|| {
        ingest(
            schema,
            reader,
            options,
            |_, _| {},
            |wave| {
                accounts += wave.iter().map(|(o, ())| o.accounts).sum::<u64>();
                bar.set_position(consumed.load(Ordering::Relaxed));
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("{accounts} accounts, {:.0}/s", accounts as f64 / secs));
                files.write(wave.into_iter().map(|(o, ())| o).collect())
            },
        )
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let flattened = Flattened {
        lines: totals.lines,
        accounts: totals.accounts,
        rows: files.rows().to_vec(),
        findings_by_code: files.findings_by_code.clone(),
        findings: files.findings_total,
        seconds,
        bytes: size,
    };
    files.commit()?;
    Ok(flattened)
}
