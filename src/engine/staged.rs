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

/// Checks every staged file recorded for `location` against its length and CRC-32.
pub(crate) fn check_files(store: &dyn Store, wd: &Workdir, location: &str) -> Result<(), Error> {
    let dir = wd.staged_path(location)?;
    for file in store.staged_files(location)? {
        let path = dir.join(&file.name);
        let problem = match crate::ingest::checksum(&path) {
            Err(e) => Some(format!("cannot be read ({e})")),
            Ok((bytes, _)) if bytes != file.bytes => Some(format!("has {bytes} bytes; {} were written", file.bytes)),
            Ok((_, crc)) if crc != file.crc32 => Some(format!("has CRC-32 {crc:08x}; {:08x} was written", file.crc32)),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            return Err(Error::damaged(format!("staged file {} is damaged: it {problem}", path.display()), RESTORE));
        }
    }
    Ok(())
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

    pub(crate) fn next_window(&mut self, n: u64) -> Result<Option<Window>, Error> {
        self.inner.next_window(n).map_err(|e| unreadable(&self.dir, &e))
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
        let read = hashes[(row - window.first_account) as usize].as_deref();
        if let Some(recorded) = recorded
            && read != Some(recorded.as_str())
        {
            return Err(Error::damaged(
                format!(
                    "{} does not hold what was staged for account {} (row {row}): its rows read back differently",
                    dir.display(),
                    crate::text::escape(external)
                ),
                RESTORE,
            ));
        }
    }
    Ok(())
}
