//! `ferry skip`, `unskip`, `status` and `list`: operator commands on import processes.

use std::io::Write;

use serde_json::json;

use crate::cli::{ListArgs, ListWhich, SkipArgs, StatusArgs, UnskipArgs};
use crate::error::{Error, ExitStatus};
use crate::store::{ProcessFilter, SkipRefused};
use crate::workdir::Workdir;

pub(super) fn skip(args: SkipArgs) -> Result<ExitStatus, Error> {
    if args.reason.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(Error::usage("--reason may not be blank", Some("leave it out, or say why")));
    }
    set_skipped(&args.workdir.workdir, &args.supplier, &args.accounts, true, args.reason.as_deref())
}

pub(super) fn unskip(args: UnskipArgs) -> Result<ExitStatus, Error> {
    set_skipped(&args.workdir.workdir, &args.supplier, &args.accounts, false, None)
}

fn set_skipped(
    workdir: &std::path::Path,
    supplier: &str,
    accounts: &[String],
    skip: bool,
    reason: Option<&str>,
) -> Result<ExitStatus, Error> {
    let wd = Workdir::new(workdir);
    let _lock = wd.lock(if skip { "skip" } else { "unskip" })?;
    let mut store = crate::store::open(&wd.root)?;
    let (verb, to) = if skip { ("skipped", "SKIPPED") } else { ("unskipped", "STAGED") };
    let mut refused = 0;
    for account in accounts {
        match store.set_skipped(supplier, account, skip, reason)? {
            Ok(()) => eprintln!("{supplier} {account}: {verb} (now {to})"),
            Err(why) => {
                refused += 1;
                let because = match why {
                    SkipRefused::Unknown => "no such import process (stage it first)".to_owned(),
                    SkipRefused::From(status) if status.as_str() == to => format!("already {to}"),
                    SkipRefused::From(status) => format!(
                        "it is {}, and only a {} process can be {verb}",
                        status.as_str(),
                        if skip { "STAGED" } else { "SKIPPED" }
                    ),
                };
                eprintln!("{supplier} {account}: not {verb}: {because}");
            }
        }
    }
    Ok(if refused > 0 { ExitStatus::Rejected } else { ExitStatus::Clean })
}

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
            process.import_supplier,
            process.external_account_number,
            process.status.as_str(),
            process.current_version.map_or("none".to_owned(), |v| v.to_string()),
            process.skip_reason.as_deref().unwrap_or("none"),
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
    let processes = crate::engine::status::list(store.as_ref(), &args.supplier, filter)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        for p in &processes {
            let entry = json!({
                "external_account_number": p.external_account_number,
                "kraken_account_number": p.kraken_account_number,
                "account_created_at": p.account_created_at,
            });
            writeln!(out, "{entry}")?;
        }
    } else {
        writeln!(out, "{:<32} {:<9} {:<12} account_created_at", "external_account_number", "status", "kraken")?;
        for p in &processes {
            writeln!(
                out,
                "{:<32} {:<9} {:<12} {}",
                p.external_account_number,
                p.status.as_str(),
                p.kraken_account_number.as_deref().unwrap_or("-"),
                p.account_created_at.as_deref().unwrap_or("-")
            )?;
        }
    }
    out.flush()?;
    eprintln!("{} import processes of {}", processes.len(), args.supplier);
    Ok(ExitStatus::Clean)
}
