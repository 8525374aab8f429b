//! `ferry flatten`: a dump into Parquet tables and findings.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::cli::FlattenArgs;
use crate::error::{Error, ExitStatus};
use crate::ingest::ingest;
use crate::ingest::output::TableFiles;
use crate::schema::Severity;

pub(super) fn run(args: FlattenArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.ingest.schema.as_deref())?;
    let settings =
        crate::settings::Settings::new(schema, None, None).with_ingest(args.ingest.threads, args.ingest.chunk_size);
    let crate::engine::DumpInput { pool, options, reader, size } =
        crate::engine::DumpInput::open(&settings, &args.dump)?;
    let schema = &settings.schema;
    let consumed = reader.progress();
    let mut files = TableFiles::create(schema, &args.out)?;
    let bar = crate::engine::byte_progress(size);
    let started = Instant::now();
    let mut accounts = 0u64;
    let totals = pool.install(|| {
        ingest(
            schema,
            reader,
            options,
            |_| {},
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
    let elapsed = started.elapsed().as_secs_f64();
    let rows = files.rows().to_vec();
    let by_code = files.findings_by_code.clone();
    let total_findings = files.findings_total;
    files.commit()?;

    let errors: u64 = by_code.iter().filter(|(c, _)| schema.severity(c) == Severity::Error).map(|(_, n)| n).sum();
    let mut out = String::new();
    out.push_str(&format!(
        "flattened {}: {} lines, {} accounts in {:.2} s ({:.1} MB/s)\n",
        args.dump.display(),
        totals.lines,
        totals.accounts,
        elapsed,
        size as f64 / 1e6 / elapsed.max(1e-9)
    ));
    out.push_str("rows per table:\n");
    for (table, n) in schema.tables.iter().zip(&rows) {
        out.push_str(&format!("  {:<40} {n:>10}\n", table.name));
    }
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.push_str(&format!(
        "findings: {total_findings} ({}, {})\n",
        plural(errors, "error"),
        plural(total_findings - errors, "warning")
    ));
    for (code, n) in &by_code {
        out.push_str(&format!("  {code:<40} {n:>10}  {}\n", schema.severity(code).as_str()));
    }
    out.push_str(&format!("wrote {} ({} tables and findings.parquet)\n", args.out.display(), schema.tables.len()));
    eprint!("{out}");
    Ok(if errors > 0 { ExitStatus::Rejected } else { ExitStatus::Clean })
}
