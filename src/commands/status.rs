//! `ferry status` and `ferry list`: what the store knows of import processes, as the guide answers.

use std::io::Write;

use crate::cli::{ListArgs, ListWhich, StatusArgs};
use crate::error::{Error, ExitStatus};
use crate::store::{ProcessFilter, ProcessStatus, RemoteAccount};

pub(super) fn status(args: StatusArgs) -> Result<ExitStatus, Error> {
    let store = crate::store::open(&args.workdir.resolve()?)?;
    let (status, body, process) = crate::engine::status::status(store.as_ref(), &args.supplier, &args.account)?;
    println!("{body}");
    for r in store.remote_accounts(None, &args.supplier, Some((&args.account, &args.account)))? {
        eprintln!(
            "created on {} as {} (push run {}, {})",
            crate::text::escape(&r.target),
            r.kraken_account_number,
            r.run_id,
            r.recorded_at
        );
    }
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
    let store = crate::store::open(&args.workdir.resolve()?)?;
    // Imported: here (`ferry create`) or on a target API (`ferry push`), so every process is read.
    let filter = match args.which {
        ListWhich::All | ListWhich::Imported => ProcessFilter::All,
        ListWhich::Pending => ProcessFilter::Pending,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !args.json {
        writeln!(
            out,
            "{:<32} {:<9} {:<12} {:<24} created on a target by ferry push",
            "external_account_number", "status", "kraken", "account_created_at"
        )?;
    }
    let mut total = 0;
    crate::engine::status::list(store.as_ref(), &args.supplier, filter, |page| {
        let (Some(first), Some(last)) = (page.first(), page.last()) else { return Ok(()) };
        let between = (first.external_account_number.as_str(), last.external_account_number.as_str());
        let found = store.remote_accounts(None, &args.supplier, Some(between))?;
        let mut remote: std::collections::HashMap<&str, Vec<&RemoteAccount>> = std::collections::HashMap::new();
        for r in &found {
            remote.entry(r.external_account_number.as_str()).or_default().push(r);
        }
        for p in page {
            let remote = remote.get(p.external_account_number.as_str()).map(Vec::as_slice).unwrap_or_default();
            if args.which == ListWhich::Imported && p.status != ProcessStatus::Imported && remote.is_empty() {
                continue;
            }
            total += 1;
            if args.json && remote.is_empty() {
                writeln!(out, "{}", crate::guide::list_entry(p))?;
            } else if args.json {
                // The guide's entry, with the numbers target APIs gave (`ferry push`).
                let mut entry: serde_json::Value =
                    serde_json::from_str(&crate::guide::list_entry(p)).expect("the guide's entries are JSON");
                let remote: Vec<serde_json::Value> = remote
                    .iter()
                    .map(
                        |r| serde_json::json!({ "target": r.target, "kraken_account_number": r.kraken_account_number }),
                    )
                    .collect();
                entry["remote_accounts"] = serde_json::Value::Array(remote);
                writeln!(out, "{entry}")?;
            } else {
                let remote: Vec<String> = remote
                    .iter()
                    .map(|r| format!("{} at {}", r.kraken_account_number, crate::text::escape(&r.target)))
                    .collect();
                writeln!(
                    out,
                    "{:<32} {:<9} {:<12} {:<24} {}",
                    crate::text::escape(&p.external_account_number),
                    p.status.as_str(),
                    p.kraken_account_number.as_deref().unwrap_or("-"),
                    p.account_created_at.as_deref().unwrap_or("-"),
                    if remote.is_empty() { "-".to_owned() } else { remote.join(", ") }
                )?;
            }
        }
        Ok(())
    })?;
    out.flush()?;
    eprintln!("{total} import processes of {}", crate::text::escape(&args.supplier));
    Ok(ExitStatus::Clean)
}
