//! The guide's per-account operations for a front end that receives accounts one request at a
//! time (`ferry serve`): a batch of requests becomes one stage run, or one create run per
//! supplier and team, through the same [`super::stage::stage`] and [`super::create::create`] as
//! the CLI, and each request gets its own outcome back. Nothing here decides an outcome: the
//! runs do, and their audit rows are the answers.
//!
//! A batch never holds the same account twice (the front end's writer puts a repeat into the
//! next batch), so a second request for an account is an update, as the guide has it, not a
//! duplicate within one input.

use crate::error::Error;
use crate::settings::Settings;
use crate::store::{AuditRecord, RequestTag, Store};
use crate::workdir::{Workdir, WorkdirLock};

/// A request's outcome: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl From<&AuditRecord> for Answer {
    fn from(row: &AuditRecord) -> Self {
        Answer { status: row.status_code, body: row.body.clone() }
    }
}

/// The account a request body names, when it can be read: `(import_supplier,
/// external_account_number)`. The front end uses it to keep repeats out of one batch.
pub fn account_of(body: &[u8]) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Keys {
        import_supplier: Option<String>,
        external_account_number: Option<String>,
    }
    let keys: Keys = serde_json::from_slice(body).ok()?;
    Some((keys.import_supplier?, keys.external_account_number?))
}

/// Stages the accounts of `requests` as one run: 201 first time, 200 update, 400 as the guide
/// says, per request in order, each audit row tagged with its request. A body that is not UTF-8
/// or holds nothing gets the validate 400 (and, being no line of the run, no audit row).
pub fn stage_requests(
    settings: &Settings,
    wd: &Workdir,
    store: &mut dyn Store,
    lock: &mut WorkdirLock,
    requests: &[(&[u8], RequestTag)],
) -> Result<Vec<Answer>, Error> {
    let mut answers: Vec<Option<Answer>> = vec![None; requests.len()];
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, (body, _)) in requests.iter().enumerate() {
        match std::str::from_utf8(body) {
            Ok(text) if !text.trim().is_empty() => lines.push((i, super::validate::one_line(text))),
            _ => {
                let refused = super::validate::validate_request(settings, body);
                answers[i] = Some(Answer { status: refused.status, body: refused.body });
            }
        }
    }
    if !lines.is_empty() {
        // The batch is a dump of one line per request, under a temporary name that `ferry gc`
        // removes if a kill leaves it.
        let runs = wd.root.join("runs");
        fs_err::create_dir_all(&runs)?;
        let path = runs.join(format!(".requests-{}.ndjson.tmp", crate::clock::new_run_id()));
        let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        fs_err::write(&path, text)?;
        let tags: Vec<RequestTag> = lines.iter().map(|(i, _)| requests[*i].1.clone()).collect();
        let staged = super::stage::stage(settings, wd, store, lock, &path, None, &tags);
        let _ = fs_err::remove_file(&path);
        let rows = store.run_audit(&staged?.run_id)?;
        for row in &rows {
            let Some(line) = row.line else { continue };
            if let Some((i, _)) = usize::try_from(line).ok().and_then(|l| lines.get(l.wrapping_sub(1))) {
                answers[*i] = Some(Answer::from(row));
            }
        }
    }
    answers
        .into_iter()
        .map(|a| a.ok_or_else(|| Error::usage("a staged request got no outcome from its run", None)))
        .collect()
}

/// Create requests of one supplier, for one team, all dry runs or none: one create run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateBatch {
    pub supplier: String,
    pub team: String,
    pub dry_run: bool,
    /// External account numbers, none twice, with the request that asked for each.
    pub accounts: Vec<(String, RequestTag)>,
}

/// Creates a batch within the session's run for its supplier and team (a dry run rolls each
/// account back): per account, in order, its outcome as the guide says (201, or 400 not
/// staged, team unknown, invalid now, already imported, the dry-run sentence).
pub fn create_requests(
    settings: &Settings,
    wd: &Workdir,
    store: &mut dyn Store,
    session: &mut super::create::Session,
    batch: &CreateBatch,
) -> Result<Vec<Answer>, Error> {
    let accounts: Vec<String> = batch.accounts.iter().map(|(a, _)| a.clone()).collect();
    let requests: super::create::Requests = batch.accounts.iter().cloned().collect();
    let job = super::create::Job {
        command: super::create::COMMAND,
        supplier: &batch.supplier,
        team: &batch.team,
        accounts: Some(accounts.clone()),
        dry_run: batch.dry_run,
        concurrency: crate::settings::CREATE_LIMIT,
        parent: None,
    };
    let rows = session.create(settings, wd, store, &job, &requests)?;
    accounts
        .iter()
        .map(|account| {
            rows.iter()
                .find(|r| r.external_account_number.as_deref() == Some(account.as_str()))
                .map(Answer::from)
                .ok_or_else(|| Error::usage(format!("account {account} got no outcome from its batch"), None))
        })
        .collect()
}
