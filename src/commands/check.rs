//! `ferry check` and `ferry backup`: the work directory's damage, and a consistent copy of its
//! store.

use crate::cli::{BackupArgs, CheckArgs};
use crate::error::{Error, ExitStatus};

pub(super) fn check(args: CheckArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.schema.as_deref())?;
    let wd = args.workdir.resolve()?;
    if !wd.has_store() {
        return Err(Error::usage(format!("{} has no store (ferry.db)", wd.root.display()), None));
    }
    let store = crate::store::open_unverified(&wd)?;
    let report = crate::engine::check::check(&schema, &wd, store.as_ref())?;
    for problem in &report.problems {
        println!("{}", crate::text::escape(problem));
    }
    let checked = format!("{} staged locations, {} staged accounts read back", report.locations, report.accounts);
    if report.problems.is_empty() {
        eprintln!("{}: no problems ({checked})", wd.root.display());
        return Ok(ExitStatus::Clean);
    }
    Err(Error::damaged(
        format!("{}: {} problems ({checked})", wd.root.display(), report.problems.len()),
        "each is printed above. A damaged store: put back a copy made by `ferry backup`. A damaged staged file: \
         restore it, or stage its accounts again",
    ))
}

pub(super) fn backup(args: BackupArgs) -> Result<ExitStatus, Error> {
    if args.dest.exists() {
        return Err(Error::usage(
            format!("{} exists", args.dest.display()),
            Some("ferry backup never overwrites: name a new file"),
        ));
    }
    let wd = args.workdir.resolve()?;
    if !wd.has_store() {
        return Err(Error::usage(format!("{} has no store (ferry.db)", wd.root.display()), None));
    }
    let started = std::time::Instant::now();
    let store = crate::store::open(&wd)?;
    store.backup(&args.dest)?;
    let bytes = fs_err::metadata(&args.dest)?.len();
    eprintln!(
        "copied {} to {} ({:.1} MB) in {:.2} s",
        wd.store_name(),
        args.dest.display(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitStatus::Clean)
}
