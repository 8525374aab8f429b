//! The guide's vocabulary, built in one place: the status of every outcome, the guide-level
//! codes, and one function per response body (docs of the operations: the account-import guide
//! and `docs/identifiers.md` for the validation codes).
//!
//! A front end (the CLI today, the HTTP server next) never writes a guide code or body of its
//! own: it takes them from here, so that `ferry stage` and `ferry create` answer an
//! already-imported account with the same body, and a code is compared as a value, not as text.
//! The validate 400 body, which carries the findings, is [`crate::outcome::failed_validation_body`].

use serde_json::json;

/// The HTTP status of an outcome, as the guide gives them (500 is ferry's: a creation that a
/// kill interrupted, recorded when the next run starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Created,
    BadRequest,
    NotFound,
    TooManyRequests,
    Interrupted,
}

impl Status {
    pub const fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::Created => 201,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::TooManyRequests => 429,
            Status::Interrupted => 500,
        }
    }

    /// The status line's text (`400 Bad Request`).
    pub const fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::Created => "201 Created",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::TooManyRequests => "429 Too Many Requests",
            Status::Interrupted => "500 Internal Server Error",
        }
    }
}

/// Every guide-level code: the ones an operation answers with, beside the rule codes of the
/// schema that a validation 400 lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    AccountFailedValidation,
    AlreadyImported,
    Skipped,
    SupplierNotOngoing,
    TeamUnknown,
    NotStaged,
    RecordRejected,
    DryRunRolledBack,
    ConcurrencyLimitExceeded,
    CreationInterrupted,
}

impl Code {
    /// The code as the guide writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::AccountFailedValidation => "account_failed_validation",
            Code::AlreadyImported => "account_import_process_already_imported",
            Code::Skipped => "account_import_process_skipped",
            Code::SupplierNotOngoing => "import_supplier_migration_not_ongoing",
            Code::TeamUnknown => "operations_team_name_does_not_exist",
            Code::NotStaged => "import_process_does_not_exist",
            Code::RecordRejected => "account_record_rejected",
            Code::DryRunRolledBack => "dry_run_rolled_back",
            Code::ConcurrencyLimitExceeded => "concurrency_limit_exceeded",
            Code::CreationInterrupted => "creation_interrupted",
        }
    }

    /// The status an outcome with this code has.
    pub const fn status(self) -> Status {
        match self {
            Code::ConcurrencyLimitExceeded => Status::TooManyRequests,
            Code::CreationInterrupted => Status::Interrupted,
            _ => Status::BadRequest,
        }
    }
}

/// `{"detail", "code"}`: the body of every guide-level 400, 429 and 500.
fn detail(code: Code, detail: &str) -> String {
    json!({ "detail": detail, "code": code.as_str() }).to_string()
}

/// 400: the account was imported before (stage and create alike).
pub fn already_imported(external: &str, kraken_account_number: Option<&str>) -> String {
    json!({
        "detail": format!("Account {external} has already been imported."),
        "code": Code::AlreadyImported.as_str(),
        "external_account_number": external,
        "kraken_account_number": kraken_account_number,
    })
    .to_string()
}

/// 400: an operator marked the account's import process to be skipped.
pub fn skipped(external: &str) -> String {
    detail(Code::Skipped, &format!("Account {external} is marked to be skipped."))
}

/// 400: the supplier's migration is paused or complete (`status` in lower case).
pub fn supplier_not_ongoing(supplier: &str, status: &str) -> String {
    detail(Code::SupplierNotOngoing, &format!("Migration for import supplier {supplier} is {status}."))
}

/// 400: create names an operations team that does not exist.
pub fn team_unknown(team: &str) -> String {
    detail(Code::TeamUnknown, &format!("Operations team {team:?} does not exist."))
}

/// 400: create names an account that has no staged data.
pub fn not_staged(external: &str, supplier: &str) -> String {
    detail(Code::NotStaged, &format!("No staged data for account {external} of import supplier {supplier}."))
}

/// 400: the account's staged data went away between selection and creation.
pub fn no_longer_staged(external: &str) -> String {
    detail(Code::NotStaged, &format!("Account {external} is no longer staged."))
}

/// 400: the store refused the account's records.
pub fn record_rejected(error: &str) -> String {
    detail(Code::RecordRejected, &format!("The account record could not be written: {error}"))
}

/// 400: a dry run created the account and rolled it back.
pub fn dry_run_rolled_back() -> String {
    detail(Code::DryRunRolledBack, "Account would successfully import. Rolled back due to Dry Run.")
}

/// 429: another create run holds the limit of accounts in flight.
pub fn concurrency_limit(holder: &str) -> String {
    detail(
        Code::ConcurrencyLimitExceeded,
        &format!("The concurrency limit is reached: {holder} Retry once it has finished."),
    )
}

/// 500: a kill interrupted the account's creation; nothing of it was kept.
pub fn creation_interrupted() -> String {
    detail(
        Code::CreationInterrupted,
        "The creation was interrupted before it committed (the process was killed or the machine stopped); \
         nothing of the account was kept and it is created again.",
    )
}

/// 200: the import status of an account's process (`COMPLETED` with its Kraken account number,
/// `IN_PROGRESS` while a create run holds it, `UNKNOWN` otherwise).
pub fn import_status(process: &crate::store::Process) -> String {
    use crate::store::ProcessStatus;
    let (status, number) = match process.status {
        ProcessStatus::Imported => ("COMPLETED", process.kraken_account_number.clone().unwrap_or_default()),
        ProcessStatus::Staged if process.in_progress => ("IN_PROGRESS", String::new()),
        ProcessStatus::Staged | ProcessStatus::Skipped => ("UNKNOWN", String::new()),
    };
    json!({ "status": status, "kraken_account_number": number }).to_string()
}

/// One entry of a supplier's list of import processes.
pub fn list_entry(process: &crate::store::Process) -> String {
    json!({
        "external_account_number": process.external_account_number,
        "kraken_account_number": process.kraken_account_number,
        "account_created_at": process.account_created_at,
    })
    .to_string()
}

/// 404: no import process for the account.
pub fn no_import_process(external: &str, supplier: &str) -> String {
    json!({ "detail": format!("No import process for account {external} of import supplier {supplier}.") }).to_string()
}

/// 201: the account was created with its Kraken account number.
pub fn created(kraken_account_number: &str) -> String {
    json!({ "kraken_account_number": kraken_account_number }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_carry_their_status() {
        assert_eq!(Code::ConcurrencyLimitExceeded.status().code(), 429);
        assert_eq!(Code::CreationInterrupted.status().code(), 500);
        assert_eq!(Code::DryRunRolledBack.status(), Status::BadRequest);
    }

    #[test]
    fn bodies_are_the_guides() {
        let v: serde_json::Value = serde_json::from_str(&already_imported("EXT-1", Some("A-0000002A"))).unwrap();
        assert_eq!(
            v,
            json!({
                "detail": "Account EXT-1 has already been imported.",
                "code": "account_import_process_already_imported",
                "external_account_number": "EXT-1",
                "kraken_account_number": "A-0000002A",
            })
        );
        let v: serde_json::Value = serde_json::from_str(&dry_run_rolled_back()).unwrap();
        assert_eq!(v["detail"], "Account would successfully import. Rolled back due to Dry Run.");
        assert_eq!(v["code"], "dry_run_rolled_back");
        let v: serde_json::Value = serde_json::from_str(&skipped("EXT-2")).unwrap();
        assert_eq!(
            v,
            json!({ "detail": "Account EXT-2 is marked to be skipped.", "code": "account_import_process_skipped" })
        );
        let v: serde_json::Value = serde_json::from_str(&created("A-1234ABCD")).unwrap();
        assert_eq!(v, json!({ "kraken_account_number": "A-1234ABCD" }));
    }
}
