//! `ferry create`: create accounts from their current staged data, at most 40 in flight.

use std::io::BufRead;

use crate::cli::CreateArgs;
use crate::engine::create::{COMMAND, Job, create, lock_for_creating};
use crate::error::{Error, ExitStatus};
use crate::settings::Settings;

pub(super) fn run(args: CreateArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.create.schema.as_deref())?;
    let settings = Settings::new(schema, args.create.reference.today, args.create.reference.timezone);
    let wd = args.workdir.resolve()?;
    let mut lock = lock_for_creating(&wd, COMMAND)?;
    let mut store = crate::store::open(&wd)?;
    let accounts = match &args.accounts {
        Some(path) => Some(read_accounts(path)?),
        None => None,
    };
    let job = Job {
        command: COMMAND,
        supplier: &args.supplier,
        team: &args.team,
        accounts,
        dry_run: args.dry_run,
        concurrency: args.create.concurrency as usize,
        parent: None,
    };
    Ok(create(&settings, &wd, store.as_mut(), &mut lock, &job)?.counts.exit())
}

/// The external account numbers of a file: one per line, `#` starts a comment.
pub(super) fn read_accounts(path: &std::path::Path) -> Result<Vec<String>, Error> {
    let file = std::io::BufReader::new(fs_err::File::open(path)?);
    let mut out = Vec::new();
    for line in file.lines() {
        let line = line?;
        let ext = line.split('#').next().unwrap_or_default().trim();
        if !ext.is_empty() {
            out.push(ext.to_owned());
        }
    }
    Ok(out)
}
