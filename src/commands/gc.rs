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
    if let Some(shared) = &wd.files {
        for (location, _) in &garbage.shared {
            println!("{}", crate::text::escape(&shared.named(location)));
        }
    }
    if !args.dry_run {
        garbage.remove(&wd)?;
    }
    eprintln!(
        "{} {} paths ({:.1} MB) that no committed staged version references",
        if args.dry_run { "would remove" } else { "removed" },
        garbage.paths.len() + garbage.shared.len(),
        garbage.bytes() as f64 / 1e6
    );
    if garbage.foreign > 0 {
        eprintln!(
            "kept {} staged locations on {} whose runs this store does not know (another store's, or copied by hand)",
            garbage.foreign,
            wd.files.as_ref().map(|f| f.to_string()).unwrap_or_default()
        );
    }
    Ok(ExitStatus::Clean)
}
