//! `ferry flatten`: a dump into Parquet tables and findings.

use crate::cli::FlattenArgs;
use crate::error::{Error, ExitStatus};
use crate::schema::Severity;

pub(super) fn run(args: FlattenArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.ingest.schema.as_deref())?;
    let settings =
        crate::settings::Settings::new(schema, None, None).with_ingest(args.ingest.threads, args.ingest.chunk_size);
    let f = crate::engine::flatten::flatten_dump(&settings, &args.dump, &args.out)?;
    let schema = &settings.schema;
    let (by_code, total_findings, rows) = (&f.findings_by_code, f.findings, &f.rows);

    let errors: u64 = by_code.iter().filter(|(c, _)| schema.severity(c) == Severity::Error).map(|(_, n)| n).sum();
    let mut out = String::new();
    out.push_str(&format!(
        "flattened {}: {} lines, {} accounts in {:.2} s ({:.1} MB/s)\n",
        args.dump.display(),
        f.lines,
        f.accounts,
        f.seconds,
        f.bytes as f64 / 1e6 / f.seconds.max(1e-9)
    ));
    out.push_str("rows per table:\n");
    for (table, n) in schema.tables.iter().zip(rows) {
        out.push_str(&format!("  {:<40} {n:>10}\n", table.name));
    }
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.push_str(&format!(
        "findings: {total_findings} ({}, {})\n",
        plural(errors, "error"),
        plural(total_findings - errors, "warning")
    ));
    for (code, n) in by_code {
        out.push_str(&format!("  {code:<40} {n:>10}  {}\n", schema.severity(code).as_str()));
    }
    out.push_str(&format!("wrote {} ({} tables and findings.parquet)\n", args.out.display(), schema.tables.len()));
    eprint!("{out}");
    Ok(if errors > 0 { ExitStatus::Rejected } else { ExitStatus::Clean })
}
