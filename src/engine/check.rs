//! `ferry check`: everything that can be wrong with a work directory, in one pass, without
//! changing anything. The store's own problems ([`crate::store::Store::problems`]: integrity,
//! foreign keys, the state machine's invariants, a store older than its work directory), then
//! every staged location that a STAGED process still needs: each file present with the length
//! and CRC-32 it was written with, each account's row there, and each account's rows as staged.
//! With shared files (`--staging`), a staged file the work directory lacks, or whose copy there
//! is wrong, is fetched into it first: the local copy is a cache, the shared one is checked.

use crate::error::Error;
use crate::store::Store;
use crate::workdir::Workdir;

/// What `ferry check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// One sentence per problem; none for a sound work directory.
    pub problems: Vec<String>,
    pub locations: usize,
    pub accounts: u64,
}

/// Accounts read back per window.
const WINDOW: u64 = 1024;

pub fn check(schema: &crate::schema::Schema, wd: &Workdir, store: &dyn Store) -> Result<CheckReport, Error> {
    let mut report = CheckReport { problems: store.problems()?, ..CheckReport::default() };
    let pending = || -> Result<Vec<_>, crate::store::StoreError> {
        let mut selected = Vec::new();
        for supplier in store.suppliers()? {
            selected.extend(store.pending_versions(&supplier.code)?);
        }
        Ok(selected)
    };
    let selected = match pending() {
        Ok(selected) => selected,
        Err(e) => {
            report.problems.push(format!("the staged files were not checked: {e}"));
            return Ok(report);
        }
    };
    for (location, accounts) in super::create::group_by_location(selected) {
        report.locations += 1;
        if let Err(e) = check_location(schema, wd, store, &location, &accounts, &mut report.accounts) {
            report.problems.push(e.to_string());
        }
    }
    Ok(report)
}

fn check_location(
    schema: &crate::schema::Schema,
    wd: &Workdir,
    store: &dyn Store,
    location: &str,
    accounts: &super::staged::Selected,
    checked: &mut u64,
) -> Result<(), Error> {
    super::staged::check_files(store, wd, location)?;
    let dir = wd.staged_path(location)?;
    let mut reader = super::staged::Reader::open(schema, &dir)?;
    if let Some((row, (external, _))) = accounts.range(reader.accounts()..).next() {
        return Err(Error::damaged(
            format!(
                "{} has {} accounts; account {} is recorded at row {row}",
                dir.display(),
                reader.accounts(),
                crate::text::escape(external)
            ),
            "the staged files are incomplete; stage the account again",
        ));
    }
    while let Some(window) = reader.next_window(WINDOW)? {
        super::staged::check_rows(&dir, &window, accounts)?;
    }
    *checked += accounts.len() as u64;
    Ok(())
}
