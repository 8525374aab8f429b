//! `ferry push`: send staged accounts to a Kraken-compatible API, exactly once across kills.

use std::time::Duration;

use crate::cli::{PushArgs, PushOperation};
use crate::error::{Error, ExitStatus};
use crate::push::classify::Operation;
use crate::push::run::{COMMAND, Job, PushFile, push};
use crate::settings::Settings;

pub(super) fn run(args: PushArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.schema.as_deref())?;
    let settings = Settings::new(schema, None, None);
    let key = crate::push::client::api_key(args.token_file.as_deref())?;
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(Error::usage(format!("--timeout {} is not a positive number of seconds", args.timeout), None));
    }
    let client = crate::push::client::Client::new(
        &args.base_url,
        key.as_deref(),
        args.insecure_http,
        args.ca_cert.as_deref(),
        Duration::from_secs_f64(args.timeout),
    )?;
    let mut operations: Vec<Operation> = Vec::new();
    for op in [PushOperation::Validate, PushOperation::Stage, PushOperation::Create] {
        if args.operations.contains(&op) {
            operations.push(match op {
                PushOperation::Validate => Operation::Validate,
                PushOperation::Stage => Operation::Stage,
                PushOperation::Create => Operation::Create,
            });
        }
    }
    let wd = args.workdir.resolve()?;
    let _lock = wd.lock(COMMAND)?;
    let mut store = crate::store::open(&wd)?;
    let accounts = match &args.accounts {
        Some(path) => Some(super::create::read_accounts(path)?),
        None => None,
    };
    let job = Job {
        supplier: &args.supplier,
        team: args.team.as_deref(),
        operations,
        dry_run: args.dry_run,
        concurrency: args.concurrency as usize,
        accounts,
        give_up_after: Duration::from_secs(args.give_up_after),
    };
    let pushed = push(&settings, &wd, store.as_mut(), &client, &job)?;
    eprint!("{}", render(&pushed));
    match &pushed.stopped {
        Some(why) => Err(Error::stopped(
            format!("the push stopped: {why}"),
            "what was sent is recorded; fix the cause and run the same command again to go on",
        )),
        None => Ok(pushed.exit()),
    }
}

/// The summary on stderr.
fn render(f: &PushFile) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "run {} (ferry push to {})", f.run_id, f.target);
    let _ = writeln!(
        out,
        "  {} accounts selected: {} done, {} wait for a fix, {} not staged here, {} created on the target before",
        f.selected, f.done, f.terminal, f.not_staged, f.already_pushed
    );
    for (operation, status, outcome, n) in &f.outcomes {
        let _ = writeln!(out, "  {n:>8}  {operation} {status} {outcome}");
    }
    let [p50, _, p95, p99, _] = f.latency_ms;
    let _ = writeln!(
        out,
        "  {} requests in {:.1} s ({:.0} accounts/s); latency p50 {p50} ms, p95 {p95} ms, p99 {p99} ms",
        f.requests, f.seconds, f.accounts_per_second
    );
    let _ = writeln!(
        out,
        "  429s {}, retries {}, looked up through the status endpoint {}, at most {} in flight, window at the end {}",
        f.refused,
        f.retries,
        f.reconciled,
        f.most_in_flight,
        f.window.last().map(|(_, w)| *w).unwrap_or_default()
    );
    out
}
