//! `ferry skip` and `unskip`: operators mark import processes to be skipped, and take it back.

use crate::cli::{SkipArgs, UnskipArgs};
use crate::error::{Error, ExitStatus};
use crate::store::SkipRefused;

pub(super) fn skip(args: SkipArgs) -> Result<ExitStatus, Error> {
    if args.reason.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(Error::usage("--reason may not be blank", Some("leave it out, or say why")));
    }
    set_skipped(&args.workdir, &args.supplier, &args.accounts, true, args.reason.as_deref())
}

pub(super) fn unskip(args: UnskipArgs) -> Result<ExitStatus, Error> {
    set_skipped(&args.workdir, &args.supplier, &args.accounts, false, None)
}

fn set_skipped(
    workdir: &crate::cli::WorkdirArgs,
    supplier: &str,
    accounts: &[String],
    skip: bool,
    reason: Option<&str>,
) -> Result<ExitStatus, Error> {
    let wd = workdir.resolve()?;
    let _lock = wd.lock(if skip { "skip" } else { "unskip" })?;
    let mut store = crate::store::open(&wd)?;
    let (verb, to) = if skip { ("skipped", "SKIPPED") } else { ("unskipped", "STAGED") };
    let mut refused = 0;
    let shown = crate::text::escape(supplier);
    for account in accounts {
        let result = store.set_skipped(supplier, account, skip, reason)?;
        let (supplier, account) = (&shown, crate::text::escape(account));
        match result {
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
