//! `ferry push`: send staged accounts to a Kraken-compatible API, exactly once across kills.

use std::time::Duration;

use crate::cli::{PushArgs, PushOperation};
use crate::error::{Error, ExitStatus};
use crate::push::classify::Operation;
use crate::push::run::{COMMAND, Job, Pushed, push};
use crate::settings::Settings;
use crate::workdir::Workdir;

pub(super) fn run(args: PushArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.schema.as_deref())?;
    let settings = Settings::new(schema, None, None);
    let key = api_key(args.token_file.as_deref())?;
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(Error::usage(format!("--timeout {} is not a positive number of seconds", args.timeout), None));
    }
    let client = crate::push::client::Client::new(
        &args.base_url,
        key.as_deref(),
        args.insecure_http,
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
    let wd = Workdir::new(&args.workdir.workdir);
    let _lock = wd.lock(COMMAND)?;
    let mut store = crate::store::open(&wd.root)?;
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
    eprint!("{}", render(&pushed, client.target()));
    match &pushed.stopped {
        Some(why) => Err(Error::stopped(
            format!("the push stopped: {why}"),
            "what was sent is recorded; fix the cause and run the same command again to go on",
        )),
        None => Ok(pushed.exit()),
    }
}

/// The API key: the first line of --token-file, else FERRY_API_TOKEN; none when neither is set.
fn api_key(file: Option<&std::path::Path>) -> Result<Option<String>, Error> {
    let key = match file {
        Some(path) => {
            let text = fs_err::read_to_string(path)?;
            Some(text.lines().next().unwrap_or_default().trim().to_owned())
        }
        None => std::env::var("FERRY_API_TOKEN").ok().map(|k| k.trim().to_owned()),
    };
    match key {
        Some(k) if k.is_empty() => Err(Error::usage(
            "the API key is empty",
            Some("put the key from `ferry token add` (or the platform) in --token-file or FERRY_API_TOKEN"),
        )),
        other => Ok(other),
    }
}

/// The summary on stderr.
fn render(pushed: &Pushed, target: &str) -> String {
    use std::fmt::Write;
    let s = &pushed.summary;
    let mut out = String::new();
    let _ = writeln!(out, "run {} (ferry push to {target})", pushed.run_id);
    let _ = writeln!(
        out,
        "  {} accounts selected: {} done, {} wait for a fix, {} not staged here, {} created on the target before",
        s.selected, s.done, s.terminal, s.not_staged, s.already_pushed
    );
    for ((operation, status, outcome), n) in &s.by_outcome {
        let _ = writeln!(out, "  {n:>8}  {operation} {status} {outcome}");
    }
    let mut latencies = s.latencies.clone();
    latencies.sort_unstable();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
    let rate = s.done as f64 / s.elapsed.as_secs_f64().max(1e-3);
    let _ = writeln!(
        out,
        "  {} requests in {:.1} s ({rate:.0} accounts/s); latency p50 {} ms, p95 {} ms, p99 {} ms",
        latencies.len(),
        s.elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.95),
        pct(0.99)
    );
    let _ = writeln!(
        out,
        "  429s {}, retries {}, looked up through the status endpoint {}, at most {} in flight, window at the end {}",
        s.refused,
        s.retries,
        s.reconciled,
        s.most_in_flight,
        s.windows.last().map(|(_, w)| *w).unwrap_or_default()
    );
    out
}
