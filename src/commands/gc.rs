//! `ferry gc`: remove staged files that no committed staged version references, and the
//! temporary files of interrupted writes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cli::GcArgs;
use crate::error::{Error, ExitStatus};
use crate::workdir::Workdir;

pub(super) fn run(args: GcArgs) -> Result<ExitStatus, Error> {
    let wd = Workdir::new(&args.workdir.workdir);
    let _lock = wd.lock("gc")?;
    let store = crate::store::open(&wd.root)?;
    let referenced: HashSet<String> = store.staged_locations()?.into_iter().collect();
    let mut garbage: Vec<PathBuf> = Vec::new();
    let staging = wd.staging_root();
    if staging.is_dir() {
        for supplier in sorted_entries(&staging)? {
            if !supplier.is_dir() {
                continue;
            }
            for run in sorted_entries(&supplier)? {
                let location = run.strip_prefix(&wd.root).unwrap_or(&run).to_string_lossy().replace('\\', "/");
                if referenced.contains(&location) {
                    temporaries(&run, &mut garbage)?;
                } else {
                    garbage.push(run);
                }
            }
        }
    }
    let runs = wd.root.join("runs");
    if runs.is_dir() {
        temporaries(&runs, &mut garbage)?;
    }
    let mut bytes = 0;
    for path in &garbage {
        bytes += size(path)?;
        println!("{}", path.display());
        if !args.dry_run {
            if path.is_dir() {
                fs_err::remove_dir_all(path)?;
            } else {
                fs_err::remove_file(path)?;
            }
        }
    }
    eprintln!(
        "{} {} paths ({:.1} MB) that no committed staged version references",
        if args.dry_run { "would remove" } else { "removed" },
        garbage.len(),
        bytes as f64 / 1e6
    );
    Ok(ExitStatus::Clean)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut entries = fs_err::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Temporary files (`.<name>.tmp`) anywhere under `dir`.
fn temporaries(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            temporaries(&path, out)?;
        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp")) {
            out.push(path);
        }
    }
    Ok(())
}

fn size(path: &Path) -> Result<u64, Error> {
    if path.is_dir() {
        sorted_entries(path)?.iter().try_fold(0, |n, p| Ok(n + size(p)?))
    } else {
        Ok(fs_err::metadata(path)?.len())
    }
}
