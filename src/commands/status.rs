//! `ferry status` and `ferry list`: what the store knows of import processes, as the guide answers.

use std::io::Write;

use crate::cli::{ListArgs, ListWhich, StatusArgs};
use crate::error::{Error, ExitStatus};
use crate::store::ProcessFilter;

pub(super) fn status(args: StatusArgs) -> Result<ExitStatus, Error> {
    let store = crate::store::open(&args.workdir.workdir)?;
    let (status, body, process) = crate::engine::status::status(store.as_ref(), &args.supplier, &args.account)?;
    println!("{body}");
    let Some(process) = process else {
        eprintln!("{}", status.line());
        return Ok(ExitStatus::Rejected);
    };
    if args.verbose {
        eprintln!(
            "process {} {}: {}, staged version {}, skip reason {}, updated {}",
            crate::text::escape(&process.import_supplier),
            crate::text::escape(&process.external_account_number),
            process.status.as_str(),
            process.current_version.map_or("none".to_owned(), |v| v.to_string()),
            crate::text::escape(process.skip_reason.as_deref().unwrap_or("none")),
            process.updated_at
        );
    }
    Ok(ExitStatus::Clean)
}

pub(super) fn list(args: ListArgs) -> Result<ExitStatus, Error> {
    let store = crate::store::open(&args.workdir.workdir)?;
    let filter = match args.which {
        ListWhich::All => ProcessFilter::All,
        ListWhich::Pending => ProcessFilter::Pending,
        ListWhich::Imported => ProcessFilter::Imported,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !args.json {
        writeln!(out, "{:<32} {:<9} {:<12} account_created_at", "external_account_number", "status", "kraken")?;
    }
    let total = crate::engine::status::list(store.as_ref(), &args.supplier, filter, |page| {
        for p in page {
            if args.json {
                writeln!(out, "{}", crate::guide::list_entry(p))?;
            } else {
                writeln!(
                    out,
                    "{:<32} {:<9} {:<12} {}",
                    crate::text::escape(&p.external_account_number),
                    p.status.as_str(),
                    p.kraken_account_number.as_deref().unwrap_or("-"),
                    p.account_created_at.as_deref().unwrap_or("-")
                )?;
            }
        }
        Ok(())
    })?;
    out.flush()?;
    eprintln!("{total} import processes of {}", crate::text::escape(&args.supplier));
    Ok(ExitStatus::Clean)
}
