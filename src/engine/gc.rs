//! Garbage: staged folders that no committed staged version references, and the temporary
//! files (`.<name>.tmp`) of interrupted writes.
//!
//! The selection errs on the side of keeping. A folder under `staging/` is garbage only when no
//! location the store records is the folder, inside it, or around it, compared component by
//! component after lexical normalisation. So a location written before supplier codes were
//! encoded as folder names ([`crate::workdir::supplier_component`]) - `staging/./R`,
//! `staging/A\B/R` - still protects what it points at, and nothing outside `staging/` and `runs/`
//! is ever looked at.
//!
//! On shared storage (`--staging`), a location (`staging/<supplier>/<run>`) is garbage when no
//! committed version references it and the store knows its run as finished: another machine may
//! be publishing a run's files right now, before its commit. A location whose run the store
//! does not know at all is kept and counted (another migration may share the bucket).

use std::path::{Component, Path, PathBuf};

use crate::error::Error;
use crate::store::Store;
use crate::workdir::Workdir;

/// What [`select`] found: paths with their sizes in bytes, in a stable order.
#[derive(Debug, Default)]
pub struct Garbage {
    pub paths: Vec<(PathBuf, u64)>,
    /// Staged locations (`staging/<supplier>/<run>`) on the shared storage (`--staging`).
    pub shared: Vec<(String, u64)>,
    /// Locations on the shared storage kept because the store knows no run of theirs (another
    /// migration's store may share the bucket).
    pub foreign: usize,
}

impl Garbage {
    pub fn bytes(&self) -> u64 {
        self.paths.iter().map(|(_, n)| n).sum::<u64>() + self.shared.iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Removes every selected path, and every selected location from `wd`'s shared storage.
    pub fn remove(&self, wd: &Workdir) -> Result<(), Error> {
        for (path, _) in &self.paths {
            if path.is_dir() {
                fs_err::remove_dir_all(path)?;
            } else {
                fs_err::remove_file(path)?;
            }
        }
        if let Some(shared) = &wd.files {
            for (location, _) in &self.shared {
                shared.remove_tree(location)?;
            }
        }
        Ok(())
    }
}

/// Selects the garbage of a work directory (the caller holds its lock).
pub fn select(wd: &Workdir, store: &dyn Store) -> Result<Garbage, Error> {
    let referenced: Vec<PathBuf> = store.staged_locations()?.iter().map(|l| normalise(Path::new(l))).collect();
    let protected = |candidate: &Path| {
        let candidate = normalise(candidate.strip_prefix(&wd.root).unwrap_or(candidate));
        referenced.iter().any(|r| r.starts_with(&candidate) || candidate.starts_with(r))
    };
    let mut garbage = Vec::new();
    let staging = wd.staging_root();
    if staging.is_dir() {
        for supplier in sorted_entries(&staging)? {
            if !supplier.is_dir() {
                continue;
            }
            for run in sorted_entries(&supplier)? {
                if !protected(&run) {
                    garbage.push(run);
                } else if run.is_dir() {
                    temporaries(&run, &mut garbage)?;
                }
            }
        }
    }
    let runs = wd.root.join("runs");
    if runs.is_dir() {
        temporaries(&runs, &mut garbage)?;
    }
    let paths = garbage.into_iter().map(|p| Ok((size(&p)?, p)).map(|(n, p)| (p, n))).collect::<Result<_, Error>>()?;
    let (mut shared, mut foreign) = (Vec::new(), 0);
    if let Some(files) = &wd.files {
        let mut locations: std::collections::BTreeMap<String, u64> = Default::default();
        for object in files.list("staging")? {
            let parts: Vec<&str> = object.path.splitn(4, '/').collect();
            if let [_, _, _, _] = parts.as_slice() {
                *locations.entry(parts[..3].join("/")).or_default() += object.bytes;
            }
        }
        for (location, bytes) in locations {
            let run = location.rsplit('/').next().unwrap_or_default();
            match store.run(run)? {
                None => foreign += 1,
                Some(r) if r.finished_at.is_some() && !protected(Path::new(&location)) => {
                    shared.push((location, bytes))
                }
                Some(_) => {}
            }
        }
    }
    Ok(Garbage { paths, shared, foreign })
}

/// `a/./b/../c` as `a/c`, without touching the file system; a leading `..` is kept.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_is_lexical() {
        assert_eq!(normalise(Path::new("staging/./R")), Path::new("staging/R"));
        assert_eq!(normalise(Path::new("staging/../../escaped/R")), Path::new("../escaped/R"));
        assert_eq!(normalise(Path::new("staging/A/R")), Path::new("staging/A/R"));
    }
}
