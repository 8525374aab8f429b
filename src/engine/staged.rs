//! Reading staged files back, trusting nothing: every file recorded for a location is checked
//! against its length and CRC-32 before anything is read from it ([`check_files`]), and every
//! account read back against the hash of its typed rows when staged ([`check_rows`]). Damage is
//! an exit-2 error naming the file (and the account), never a finding about the customer's data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::stage::read::{StagedReader, Window};
use crate::store::Store;
use crate::workdir::Workdir;

/// The accounts selected in one staged location: row → (external account number, rows hash).
pub(crate) type Selected = BTreeMap<u64, (String, Option<String>)>;

const RESTORE: &str = "nothing was created from it. Restore the work directory from a backup, or stage the \
                       accounts again (`ferry check` lists every damaged file)";

/// Checks every staged file recorded for `location` against its length and CRC-32. With shared
/// files (`--staging`), what the work directory lacks is fetched first, and a local copy that
/// fails the check is fetched again before it counts as damaged.
pub(crate) fn check_files(store: &dyn Store, wd: &Workdir, location: &str) -> Result<(), Error> {
    let dir = wd.staged_path(location)?;
    let files = store.staged_files(location)?;
    if let Some(shared) = &wd.files {
        shared.fetch_staged(&wd.root, location, &files, false)?;
    }
    for file in &files {
        let path = dir.join(&file.name);
        let mut problem = damage(&path, file);
        if let (Some(_), Some(shared)) = (&problem, &wd.files) {
            shared.fetch_staged(&wd.root, location, std::slice::from_ref(file), true)?;
            problem = damage(&path, file);
        }
        if let Some(problem) = problem {
            return Err(Error::damaged(format!("staged file {} is damaged: it {problem}", path.display()), RESTORE));
        }
    }
    Ok(())
}

/// What is wrong with the staged file at `path` against its record, if anything.
fn damage(path: &std::path::Path, file: &crate::ingest::WrittenFile) -> Option<String> {
    match crate::ingest::checksum(path) {
        Err(e) => Some(format!("cannot be read ({e})")),
        Ok((bytes, _)) if bytes != file.bytes => Some(format!("has {bytes} bytes; {} were written", file.bytes)),
        Ok((_, crc)) if crc != file.crc32 => Some(format!("has CRC-32 {crc:08x}; {:08x} was written", file.crc32)),
        Ok(_) => None,
    }
}

/// The staged files of one location, read in windows of accounts; a file that cannot be
/// decoded is an error naming the folder.
pub(crate) struct Reader {
    dir: PathBuf,
    inner: StagedReader,
}

impl Reader {
    pub(crate) fn open(schema: &crate::schema::Schema, dir: &Path) -> Result<Self, Error> {
        let inner = StagedReader::open(schema, dir).map_err(|e| unreadable(dir, &e))?;
        Ok(Self { dir: dir.to_owned(), inner })
    }

    pub(crate) fn accounts(&self) -> u64 {
        self.inner.accounts()
    }

    pub(crate) fn position(&self) -> u64 {
        self.inner.position()
    }

    pub(crate) fn next_window(&mut self, n: u64) -> Result<Option<Window>, Error> {
        self.inner.next_window(n).map_err(|e| unreadable(&self.dir, &e))
    }
}

/// Staged locations kept open between the create batches of a long-lived writer (`ferry
/// serve`): each location's files are checked once ([`check_files`]), its reader stays where it
/// was, and what was made of its last windows (`T`: read back and checked) is kept, so that
/// accounts created in about their staged order (as clients send them) are read and checked
/// once, not once per batch. An account behind what is kept reopens its location and reads it
/// from the start.
pub(crate) struct OpenLocations<T> {
    /// Most recently used last.
    open: Vec<(String, OpenLocation<T>)>,
    checked: std::collections::HashSet<String>,
}

struct OpenLocation<T> {
    dir: PathBuf,
    reader: Reader,
    /// (first account, accounts, what was made of the window).
    kept: std::collections::VecDeque<(u64, u64, T)>,
}

/// Locations kept open at once, and windows kept per location: at most 4 × 4 windows of
/// accounts in memory.
const OPEN: usize = 4;
const KEPT: usize = 4;

impl<T> Default for OpenLocations<T> {
    fn default() -> Self {
        Self { open: Vec::new(), checked: std::collections::HashSet::new() }
    }
}

impl<T: Clone> OpenLocations<T> {
    /// What `make` made of each window of `location` that holds `selected` accounts, in order,
    /// each once, with the location's folder. Windows are `size` accounts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn windows(
        &mut self,
        store: &dyn Store,
        wd: &Workdir,
        schema: &crate::schema::Schema,
        location: &str,
        selected: &Selected,
        size: u64,
        mut make: impl FnMut(&Window) -> Result<T, Error>,
    ) -> Result<(PathBuf, Vec<T>), Error> {
        if !self.checked.contains(location) {
            check_files(store, wd, location)?;
            self.checked.insert(location.to_owned());
        }
        let at = match self.open.iter().position(|(l, _)| l == location) {
            Some(at) => at,
            None => {
                let dir = wd.staged_path(location)?;
                let reader = Reader::open(schema, &dir)?;
                if self.open.len() == OPEN {
                    self.open.remove(0);
                }
                self.open.push((location.to_owned(), OpenLocation { dir, reader, kept: Default::default() }));
                self.open.len() - 1
            }
        };
        let entry = self.open.remove(at);
        self.open.push(entry);
        let open = &mut self.open.last_mut().expect("just pushed").1;
        let mut out: Vec<T> = Vec::new();
        let mut last: Option<(u64, u64)> = None;
        let covers = |(first, n): (u64, u64), row: u64| (first..first + n).contains(&row);
        for &row in selected.keys() {
            if last.is_some_and(|w| covers(w, row)) {
                continue;
            }
            if let Some((first, n, made)) = open.kept.iter().find(|(first, n, _)| covers((*first, *n), row)) {
                out.push(made.clone());
                last = Some((*first, *n));
                continue;
            }
            if row < open.reader.position() {
                open.reader = Reader::open(schema, &open.dir)?;
                open.kept.clear();
            }
            loop {
                let Some(window) = open.reader.next_window(size)? else {
                    return Err(Error::damaged(
                        format!(
                            "{} holds {} accounts; row {row} was staged there",
                            open.dir.display(),
                            open.reader.accounts()
                        ),
                        RESTORE,
                    ));
                };
                let span = (window.first_account, window.tables[0].num_rows() as u64);
                let made = make(&window)?;
                if open.kept.len() == KEPT {
                    open.kept.pop_front();
                }
                open.kept.push_back((span.0, span.1, made.clone()));
                if covers(span, row) {
                    out.push(made);
                    last = Some(span);
                    break;
                }
            }
        }
        Ok((open.dir.clone(), out))
    }
}

fn unreadable(dir: &Path, e: &std::io::Error) -> Error {
    Error::damaged(format!("the staged files in {} cannot be read: {e}", dir.display()), RESTORE)
}

/// Compares every selected account of `window` with the rows hash its staged version recorded
/// (versions staged before ferry recorded one are not compared).
pub(crate) fn check_rows(dir: &Path, window: &Window, accounts: &Selected) -> Result<(), Error> {
    let end = window.first_account + window.tables[0].num_rows() as u64;
    let selected: Vec<bool> = (window.first_account..end).map(|r| accounts.contains_key(&r)).collect();
    let hashes = crate::stage::rows_hashes(&window.tables, &selected);
    for (row, (external, recorded)) in accounts.range(window.first_account..end) {
        check_hash(dir, *row, external, recorded.as_deref(), hashes[(row - window.first_account) as usize].as_deref())?;
    }
    Ok(())
}

/// An account's rows as read back (`read`, their hash) against what was recorded when it was
/// staged; nothing to compare for versions staged before ferry recorded a hash.
pub(crate) fn check_hash(
    dir: &Path,
    row: u64,
    external: &str,
    recorded: Option<&str>,
    read: Option<&str>,
) -> Result<(), Error> {
    match recorded {
        Some(recorded) if read != Some(recorded) => Err(Error::damaged(
            format!(
                "{} does not hold what was staged for account {} (row {row}): its rows read back differently",
                dir.display(),
                crate::text::escape(external)
            ),
            RESTORE,
        )),
        _ => Ok(()),
    }
}
