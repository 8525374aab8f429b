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

/// The import processes of a supplier: all, pending (staged, not imported) or imported.
pub fn list(store: &dyn Store, supplier: &str, which: ProcessFilter) -> Result<Vec<Process>, Error> {
    Ok(store.processes(supplier, which)?)
}
