//! Status and list: what the store knows of an account's import process, as the guide answers.

use crate::error::Error;
use crate::guide::{self, Status};
use crate::store::{Process, ProcessFilter, Store};

/// The status operation: 200 with the import status, or 404; the process itself when there is
/// one (for a front end that shows more).
pub fn status(store: &dyn Store, supplier: &str, account: &str) -> Result<(Status, String, Option<Process>), Error> {
    Ok(match store.process(supplier, account)? {
        Some(process) => (Status::Ok, guide::import_status(&process), Some(process)),
        None => (Status::NotFound, guide::no_import_process(account, supplier), None),
    })
}

/// Processes per page of a list.
pub const PAGE: usize = 1000;

/// One page of a supplier's import processes (all, pending, imported): at most [`PAGE`], by
/// external account number, after `after`. A list is read page by page, so that a supplier
/// with a million accounts never sits in memory; a short page is the last.
pub fn list_page(
    store: &dyn Store,
    supplier: &str,
    which: ProcessFilter,
    after: Option<&str>,
) -> Result<Vec<Process>, Error> {
    Ok(store.processes_after(supplier, which, after, PAGE)?)
}

/// Every page of a list, in order, to `each`; returns how many processes there were.
pub fn list(
    store: &dyn Store,
    supplier: &str,
    which: ProcessFilter,
    mut each: impl FnMut(&[Process]) -> Result<(), Error>,
) -> Result<usize, Error> {
    let mut after: Option<String> = None;
    let mut total = 0;
    loop {
        let page = list_page(store, supplier, which, after.as_deref())?;
        total += page.len();
        each(&page)?;
        if page.len() < PAGE {
            return Ok(total);
        }
        after = page.last().map(|p| p.external_account_number.clone());
    }
}
