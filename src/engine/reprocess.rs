//! Reprocess: create again exactly the accounts whose creation failed in a run, as a new run
//! linked to it, in the timezone that run recorded.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, ExitStatus};
use crate::settings::Settings;
use crate::workdir::Workdir;

use super::create::{Job, create};

/// What to reprocess, and how.
pub struct Request {
    /// The create (or reprocess) run whose failures are created again.
    pub run: String,
    /// Only the accounts whose latest outcome has one of these error codes.
    pub codes: Option<Vec<String>>,
    /// Skip accounts that have had this many create attempts.
    pub max_attempts: Option<u32>,
    /// The operations team; the one the run used when `None`.
    pub team: Option<String>,
    /// A newer dump to stage those accounts from first.
    pub dump: Option<PathBuf>,
    pub today: Option<chrono::NaiveDate>,
    /// The timezone; the one the run recorded when `None`.
    pub timezone: Option<chrono_tz::Tz>,
    pub schema: Option<PathBuf>,
    pub concurrency: usize,
}

pub fn reprocess(wd: &Workdir, args: &Request) -> Result<ExitStatus, Error> {
    let mut lock = super::create::lock_for_creating(wd, "reprocess")?;
    let mut store = crate::store::open(wd)?;
    let Some(parent) = store.run(&args.run)? else {
        return Err(Error::usage(
            format!("no run {} in {}", args.run, wd.root.display()),
            Some("run ids are the names under <workdir>/runs/; a dry run is not recorded in the store"),
        ));
    };
    if !matches!(parent.command.as_str(), "create" | "reprocess") {
        return Err(Error::usage(
            format!(
                "run {} is a `ferry {}` run; reprocess re-runs the failures of create runs",
                parent.id, parent.command
            ),
            None,
        ));
    }
    let recorded: serde_json::Value =
        parent.args.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or_default();
    // The rules run in the timezone the parent run used, unless --timezone says otherwise.
    let timezone = match (args.timezone, recorded["timezone"].as_str()) {
        (Some(tz), _) => Some(tz),
        (None, Some(name)) => Some(
            crate::settings::parse_timezone(name)
                .map_err(|e| Error::usage(format!("run {} recorded {e}", parent.id), Some("pass --timezone")))?,
        ),
        (None, None) => None,
    };
    let schema = crate::settings::load_schema(args.schema.as_deref())?;
    let settings = Settings::new(schema, args.today, timezone);
    let team = match (&args.team, recorded["team"].as_str()) {
        (Some(team), _) => team.clone(),
        (None, Some(team)) => team.to_owned(),
        (None, None) => {
            return Err(Error::usage(format!("run {} has no recorded team", parent.id), Some("pass --team")));
        }
    };
    let mut by_supplier: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut over_limit = 0;
    for (supplier, ext, attempts) in store.failed_in_run(&parent.id, args.codes.as_deref())? {
        if args.max_attempts.is_some_and(|max| attempts >= max) {
            over_limit += 1;
            continue;
        }
        by_supplier.entry(supplier).or_default().push(ext);
    }
    if over_limit > 0 {
        eprintln!("{over_limit} failed accounts left out: they have had --max-attempts create attempts");
    }
    if by_supplier.is_empty() {
        eprintln!("nothing to reprocess: no account's latest outcome in run {} failed (as selected)", parent.id);
        return Ok(if over_limit > 0 { ExitStatus::Rejected } else { ExitStatus::Clean });
    }
    let mut outcome = ExitStatus::Clean;
    if let Some(dump) = &args.dump {
        let keys: std::collections::HashSet<(String, String)> =
            by_supplier.iter().flat_map(|(s, accounts)| accounts.iter().map(|a| (s.clone(), a.clone()))).collect();
        eprintln!("staging {} failed accounts again from {}", keys.len(), dump.display());
        let only = crate::stage::AccountFilter::keys(keys);
        if super::stage::stage(&settings, wd, store.as_mut(), &mut lock, dump, Some(&only), &[])?.counts.exit()
            == ExitStatus::Rejected
        {
            outcome = ExitStatus::Rejected;
        }
    }
    for (supplier, accounts) in by_supplier {
        eprintln!(
            "reprocessing {} accounts of {} from run {}",
            accounts.len(),
            crate::text::escape(&supplier),
            parent.id
        );
        let job = Job {
            command: "reprocess",
            supplier: &supplier,
            team: &team,
            accounts: Some(accounts),
            dry_run: false,
            concurrency: args.concurrency,
            parent: Some(&parent.id),
        };
        if create(&settings, wd, store.as_mut(), &mut lock, &job)?.counts.exit() == ExitStatus::Rejected {
            outcome = ExitStatus::Rejected;
        }
    }
    Ok(outcome)
}
