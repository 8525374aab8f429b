//! `ferry gc`: remove staged files that no committed staged version references, and the
//! temporary files of interrupted writes.

use crate::cli::GcArgs;
use crate::error::{Error, ExitStatus};

pub(super) fn run(args: GcArgs) -> Result<ExitStatus, Error> {
    let wd = args.workdir.resolve()?;
    let _lock = wd.lock("gc")?;
    let store = crate::store::open(&wd)?;
    let garbage = crate::engine::gc::select(&wd, store.as_ref())?;
    for (path, _) in &garbage.paths {
        println!("{}", crate::text::escape(&path.display().to_string()));
    }
    if !args.dry_run {
        garbage.remove()?;
    }
    eprintln!(
        "{} {} paths ({:.1} MB) that no committed staged version references",
        if args.dry_run { "would remove" } else { "removed" },
        garbage.paths.len(),
        garbage.bytes() as f64 / 1e6
    );
    Ok(ExitStatus::Clean)
}
