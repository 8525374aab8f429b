//! One `ferry push` run: the selected staged accounts sent through the target's validate, stage
//! and create endpoints, each account's operations in order, within the window and the retry
//! budget ([`super::window`]), every answer classified ([`super::classify`]) and recorded.
//!
//! **Exactly once.** Before a create goes out, its intent is committed in the store (one
//! transaction for every create sent in the same round); the transaction that records its
//! answer removes it. An intent found when a push starts belongs to a push that was killed: its
//! attempt is recorded as interrupted, and the account is looked up through the target's status
//! endpoint before anything is sent again: `COMPLETED` records the number and the account is
//! done, `IN_PROGRESS` is polled with backoff, `UNKNOWN` leaves it to be sent again (safe: a
//! create of an account the target already has answers "already imported", with its number). A
//! create whose answer is lost while the push runs (a timeout or a reset after sending, a 500)
//! is looked up the same way. An account whose number the target gave is never sent again to
//! that target.
//!
//! **What is recorded.** Every attempt is an audit row (`push_validate`, `push_stage`,
//! `push_create`) with its attempt number, request id, staged version, the SHA-256 of the body
//! sent, the status, the body received verbatim, the latency and the class. Status lookups are
//! recorded as rows of the create attempt they resolve (class `reconciled_*`). Answers are
//! written in batches at least every 100 ms; a kill loses at most the validate and stage answers
//! of that moment (they are sent again, and both are idempotent), never a create's.

use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use sha2::{Digest, Sha256};

use super::classify::{Answer, Class, Fields, Operation, classify_fields};
use super::client::Client;
use super::window::{Budget, Retry, Window};
use crate::clock::now;
use crate::engine::outbound::{Outbound, Selection};
use crate::error::{Error, ExitStatus};
use crate::settings::Settings;
use crate::store::{AuditRecord, PushDetail, PushIntent, PushRecord, RequestTag, Store};
use crate::workdir::Workdir;

/// The run's command in the store.
pub const COMMAND: &str = "push";
/// The outcome of an account the target had created before.
pub const ALREADY_IMPORTED: &str = "already imported";
/// The retry budget's size (tokens): 100 retries after failures, as AWS's standard retry mode.
const BUDGET: u32 = 500;
/// How long an account may stay `IN_PROGRESS` on the target before the push gives up on it.
const MOST_IN_PROGRESS: Duration = Duration::from_secs(120);
/// Answers recorded together, at the latest after [`FLUSH_EVERY`].
const FLUSH_ROWS: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// What one push does.
pub struct Job<'a> {
    pub supplier: &'a str,
    /// The operations team of the creates (required when `create` is among the operations).
    pub team: Option<&'a str>,
    /// Each account's operations, in the guide's order.
    pub operations: Vec<Operation>,
    pub dry_run: bool,
    /// The window's start and most (1 to 40).
    pub concurrency: usize,
    /// The external account numbers to push; every pending one when `None`.
    pub accounts: Option<Vec<String>>,
    /// Stop when nothing has gone through for this long while requests keep failing (the retry
    /// budget stops a large push sooner; this stops a small one).
    pub give_up_after: Duration,
}

/// What a push run came to, as `runs/<run>/push.json` and as [`push`] returns it: the summary
/// the CLI prints and the pipeline report's push section reads (with the window over time for
/// its chart).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PushFile {
    pub run_id: String,
    pub target: String,
    pub supplier: String,
    pub operations: Vec<String>,
    pub dry_run: bool,
    pub selected: usize,
    pub done: usize,
    pub terminal: usize,
    pub not_staged: usize,
    pub already_pushed: usize,
    /// Final outcomes of accounts: (operation, status, outcome, accounts).
    pub outcomes: Vec<(String, u16, String, usize)>,
    /// Attempts by class (`done`, `window`, `transient`, `ambiguous`, `reconciled_*`, ...).
    pub classes: Vec<(String, usize)>,
    pub requests: usize,
    pub refused: usize,
    pub retries: usize,
    pub reconciled: usize,
    pub most_in_flight: usize,
    pub seconds: f64,
    pub accounts_per_second: f64,
    /// Milliseconds: p50, p90, p95, p99, max.
    pub latency_ms: [u32; 5],
    /// (seconds since the start, window) at the start and at every change.
    pub window: Vec<(f64, usize)>,
    /// Why the run stopped before the end, when it did.
    pub stopped: Option<String>,
}

impl PushFile {
    fn new(run_id: String, s: &Summary, stopped: Option<String>, target: &str, job: &Job<'_>) -> Self {
        let mut latencies = s.latencies.clone();
        latencies.sort_unstable();
        let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
        let mut window = s.windows.clone();
        if let Some(&(_, last)) = window.last() {
            window.push((s.elapsed.as_secs_f64(), last));
        }
        Self {
            run_id,
            target: target.to_owned(),
            supplier: job.supplier.to_owned(),
            operations: job.operations.iter().map(|o| o.name().to_owned()).collect(),
            dry_run: job.dry_run,
            selected: s.selected,
            done: s.done,
            terminal: s.terminal,
            not_staged: s.not_staged,
            already_pushed: s.already_pushed,
            outcomes: s
                .by_outcome
                .iter()
                .map(|((o, status, outcome), n)| (o.clone(), *status, outcome.clone(), *n))
                .collect(),
            classes: s.by_class.iter().map(|(c, n)| (c.clone(), *n)).collect(),
            requests: latencies.len(),
            refused: s.refused,
            retries: s.retries,
            reconciled: s.reconciled,
            most_in_flight: s.most_in_flight,
            seconds: s.elapsed.as_secs_f64(),
            accounts_per_second: s.done as f64 / s.elapsed.as_secs_f64().max(1e-3),
            latency_ms: [pct(0.5), pct(0.9), pct(0.95), pct(0.99), latencies.last().copied().unwrap_or(0)],
            window,
            stopped,
        }
    }

    /// What happened, in one paragraph (the reports' words).
    pub fn sentence(&self) -> String {
        format!(
            "{} accounts selected: {} done, {} wait for a fix, {} created on the target before. {} requests in \
             {:.1} s ({:.0} accounts/s); {} answered 429, {} retries, {} looked up through the status endpoint; at \
             most {} in flight.{}",
            self.selected,
            self.done,
            self.terminal,
            self.already_pushed,
            self.requests,
            self.seconds,
            self.accounts_per_second,
            self.refused,
            self.retries,
            self.reconciled,
            self.most_in_flight,
            self.stopped.as_deref().map(|w| format!(" Stopped: {w}")).unwrap_or_default()
        )
    }

    /// 0 when every account is done, 1 when some ended terminal (a run that stopped is an
    /// error of its own: exit 2).
    pub fn exit(&self) -> ExitStatus {
        if self.terminal > 0 || self.not_staged > 0 { ExitStatus::Rejected } else { ExitStatus::Clean }
    }

    /// The push file of a run, when it has one.
    pub fn read(wd: &Workdir, run_id: &str) -> Option<Self> {
        let text = std::fs::read_to_string(wd.run_dir(run_id).join(PUSH_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The name of a push run's summary file in its run folder.
pub const PUSH_FILE: &str = "push.json";

/// Counts and timings of a push as it runs, for its [`PushFile`].
#[derive(Debug, Default)]
struct Summary {
    selected: usize,
    /// Accounts whose every operation succeeded (created, already imported, or a dry run's ok).
    done: usize,
    /// Accounts that wait for a fix, by operation and code.
    terminal: usize,
    by_outcome: BTreeMap<(String, u16, String), usize>,
    /// Attempts by class.
    by_class: BTreeMap<String, usize>,
    /// Listed accounts with no staged version here.
    not_staged: usize,
    /// Accounts the target had created before (skipped, not sent).
    already_pushed: usize,
    refused: usize,
    retries: usize,
    reconciled: usize,
    /// Milliseconds per request.
    latencies: Vec<u32>,
    /// (seconds since the start, window) at every change.
    windows: Vec<(f64, usize)>,
    most_in_flight: usize,
    elapsed: Duration,
}

/// Pushes the job's accounts to the client's target as one run.
pub fn push(
    settings: &Settings,
    wd: &Workdir,
    store: &mut dyn Store,
    client: &Client,
    job: &Job<'_>,
) -> Result<PushFile, Error> {
    if job.operations.is_empty() {
        return Err(Error::usage("a push needs at least one operation", Some("validate, stage or create")));
    }
    if job.operations.contains(&Operation::Create) && job.team.is_none() {
        return Err(Error::usage("creating accounts needs --team", Some("or leave create out of --operations")));
    }
    let target = client.target().to_owned();
    let fingerprint = format!(
        "{:x}",
        Sha256::digest(format!(
            "{COMMAND}\n{target}\n{}\n{:?}\n{:?}\n{}\n{:?}",
            job.supplier, job.team, job.operations, job.dry_run, job.accounts
        ))
    );
    let args = serde_json::json!({
        "target": target, "supplier": job.supplier, "team": job.team, "dry_run": job.dry_run,
        "operations": job.operations.iter().map(|o| o.name()).collect::<Vec<_>>(),
    })
    .to_string();
    // A push writes a round of answers at a time: a small cache keeps the client small.
    store.limit_cache(8)?;
    let start = store.begin_run(COMMAND, &fingerprint, &args, None)?;
    let run_id = start.run.id;
    if start.resumed {
        eprintln!("resuming run {run_id}: accounts the target created stay created; the rest are sent now");
    }
    crate::engine::runs::recover_interrupted(store, wd, &settings.schema, &run_id)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::usage(format!("cannot start the push's runtime: {e}"), None))?;
    let mut pusher = Pusher::new(store, client, job, &run_id, &target);
    let outcome = runtime.block_on(pusher.reconcile_leftovers()).and_then(|()| {
        let (selection, not_staged, already) = select(pusher.store, wd, job, &target)?;
        pusher.summary.already_pushed = already;
        pusher.summary.selected = selection.len() + not_staged.len() + already;
        pusher.summary.not_staged = not_staged.len();
        for ext in not_staged.iter().take(10) {
            eprintln!("account {} is not staged in this work directory: not sent", crate::text::escape(ext));
        }
        if not_staged.len() > 10 {
            eprintln!("... and {} more listed accounts that are not staged here", not_staged.len() - 10);
        }
        pusher.start_progress(selection.len() as u64);
        // The staged files are read on a thread of their own, a few windows ahead.
        let (to_sender, mut windows) = tokio::sync::mpsc::channel::<Vec<Outbound>>(4);
        let schema = &settings.schema;
        std::thread::scope(|threads| {
            let reader = threads.spawn(move || selection.read(schema, wd, |w| to_sender.blocking_send(w).is_ok()));
            let sent = runtime.block_on(pusher.drive(&mut windows));
            // A run that stopped early stops the reader.
            drop(windows);
            let read = reader.join().expect("the staged reader does not panic");
            sent.and_then(|stopped| read.map(|()| stopped))
        })
    });
    pusher.bar.finish_and_clear();
    let stopped = match outcome {
        Ok(stopped) => stopped,
        Err(e) => {
            // What was answered before the error is kept; the intents stay for the next push.
            let _ = pusher.flush();
            return Err(e);
        }
    };
    pusher.flush()?;
    let mut summary = std::mem::take(&mut pusher.summary);
    summary.elapsed = pusher.started.elapsed();
    crate::engine::runs::export_paged(store, &settings.schema, wd, &run_id)?;
    let file = PushFile::new(run_id, &summary, stopped, &target, job);
    let text = serde_json::to_string_pretty(&file).expect("a push file serialises");
    crate::workdir::write_synced(&wd.run_dir(&file.run_id).join(PUSH_FILE), &text)?;
    let status = match file.exit() {
        _ if file.stopped.is_some() => "stopped",
        ExitStatus::Clean => "clean",
        ExitStatus::Rejected => "rejected",
    };
    store.finish_run(&file.run_id, status)?;
    Ok(file)
}

/// The STAGED accounts to push (every pending one, or the listed ones) that the target has not
/// created, and the listed accounts that are not staged here.
fn select(
    store: &dyn Store,
    wd: &Workdir,
    job: &Job<'_>,
    target: &str,
) -> Result<(Selection, Vec<String>, usize), Error> {
    let pushed: std::collections::HashSet<String> = store
        .remote_accounts(Some(target), job.supplier, None)?
        .into_iter()
        .map(|r| r.external_account_number)
        .collect();
    let (mut selected, mut not_staged, mut already) = (Vec::new(), Vec::new(), 0);
    match &job.accounts {
        None => selected = store.pending_versions(job.supplier)?,
        Some(list) => {
            let mut seen = std::collections::HashSet::new();
            for ext in list.iter().filter(|e| seen.insert(e.as_str())) {
                match store.pending_version(job.supplier, ext)? {
                    Some(s) => selected.push(s),
                    None if pushed.contains(ext) => already += 1,
                    None => not_staged.push(ext.clone()),
                }
            }
        }
    }
    let before = selected.len();
    selected.retain(|s| !pushed.contains(&s.external_account_number));
    already += before - selected.len();
    Ok((Selection::new(store, wd, selected)?, not_staged, already))
}

/// One account on its way through its operations.
struct Account {
    out: Outbound,
    /// The index of its current operation in the job's list.
    step: usize,
    /// Attempts so far of the current operation.
    attempts: u32,
    /// Status lookups so far (of an ambiguous create).
    polls: u32,
    /// When the first `IN_PROGRESS` answer came.
    in_progress_since: Option<Instant>,
}

impl Account {
    /// An account read from its staged version, before its first operation.
    fn new(out: Outbound) -> Self {
        Self { out, step: 0, attempts: 0, polls: 0, in_progress_since: None }
    }
}

/// What is sent for an account.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Exchange {
    Send(Operation),
    /// A status lookup of a create whose answer is not known.
    Status,
}

/// An exchange that came back.
struct Done {
    account: Account,
    exchange: Exchange,
    round: u64,
    request_id: String,
    payload_hash: String,
    started_at: String,
    answer: Answer,
    latency: Duration,
}

type InFlight<'c> = FuturesUnordered<Pin<Box<dyn Future<Output = Done> + 'c>>>;

/// A delayed exchange, soonest first.
struct Delayed {
    at: Instant,
    seq: u64,
    account: Account,
    exchange: Exchange,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Pusher<'a> {
    store: &'a mut dyn Store,
    client: &'a Client,
    job: &'a Job<'a>,
    run_id: &'a str,
    target: &'a str,
    window: Window,
    budget: Budget,
    /// Records not yet written.
    records: Vec<PushRecord>,
    last_flush: Instant,
    next_request: u64,
    next_delay: u64,
    summary: Summary,
    started: Instant,
    stopped: Option<String>,
    /// When the target last answered something other than a failure.
    last_progress: Instant,
    bar: indicatif::ProgressBar,
}

impl<'a> Pusher<'a> {
    fn new(store: &'a mut dyn Store, client: &'a Client, job: &'a Job<'a>, run_id: &'a str, target: &'a str) -> Self {
        let window = Window::new(job.concurrency);
        let summary = Summary { windows: vec![(0.0, window.size())], ..Summary::default() };
        Self {
            store,
            client,
            job,
            run_id,
            target,
            window,
            budget: Budget::new(BUDGET),
            records: Vec::new(),
            last_flush: Instant::now(),
            next_request: 0,
            next_delay: 0,
            summary,
            started: Instant::now(),
            stopped: None,
            last_progress: Instant::now(),
            bar: indicatif::ProgressBar::hidden(),
        }
    }

    fn request_id(&mut self) -> String {
        self.next_request += 1;
        format!("{}-{}", self.run_id, self.next_request)
    }

    fn flush(&mut self) -> Result<(), Error> {
        if !self.records.is_empty() {
            self.store.record_push(self.target, &self.records)?;
            self.records.clear();
        }
        self.last_flush = Instant::now();
        Ok(())
    }

    /// The intents a killed push left: each attempt recorded as interrupted, each account
    /// looked up before anything is sent.
    async fn reconcile_leftovers(&mut self) -> Result<(), Error> {
        let intents = self.store.push_intents(self.target)?;
        let intents: Vec<PushIntent> = intents.into_iter().filter(|i| i.import_supplier == self.job.supplier).collect();
        if intents.is_empty() {
            return Ok(());
        }
        eprintln!(
            "{} creates of an earlier push were sent and never answered: looking each up on {} before anything \
             is sent again",
            intents.len(),
            self.target
        );
        for intent in intents {
            let mut row = self.row(Operation::Create, &intent.external_account_number, intent.line, intent.attempt);
            row.run_id.clone_from(&intent.run_id);
            row.started_at.clone_from(&intent.started_at);
            row.request = Some(RequestTag { id: intent.request_id.clone(), token: String::new() });
            row.push = Some(PushDetail {
                staged_version: intent.staged_version,
                payload_hash: intent.payload_hash.clone(),
                latency_ms: 0,
                class: "interrupted".to_owned(),
            });
            self.records.push(PushRecord { audit: row, remote_number: None, settles_intent: false });
            let account = Account {
                attempts: intent.attempt,
                ..Account::new(Outbound {
                    external_account_number: intent.external_account_number.clone(),
                    line: intent.line.unwrap_or_default(),
                    staged_version: intent.staged_version.unwrap_or_default(),
                    body: String::new(),
                })
            };
            let mut account = Some(account);
            while let Some(a) = account.take() {
                let request_id = self.request_id();
                let (answer, latency) =
                    self.client.status(self.job.supplier, &a.out.external_account_number, &request_id).await;
                let done = Done {
                    account: a,
                    exchange: Exchange::Status,
                    round: self.window.round(),
                    request_id,
                    payload_hash: intent.payload_hash.clone(),
                    started_at: now(),
                    answer,
                    latency,
                };
                match self.status_answer(done, true) {
                    Next::After(a, _, wait) => {
                        tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
                        account = Some(a);
                    }
                    Next::Held(a, _) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        account = Some(a);
                    }
                    Next::Finished => {}
                }
                if let Some(why) = self.stopped.clone() {
                    self.flush()?;
                    return Err(Error::stopped(
                        format!("the creates of an earlier push could not be looked up: {why}"),
                        "they stay recorded and are looked up again by the next push",
                    ));
                }
            }
        }
        self.flush()
    }

    fn start_progress(&mut self, total: u64) {
        self.bar = crate::engine::account_progress(total);
        self.bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} accounts {per_sec} {msg} ETA {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
    }

    /// The exchange an account's current step sends.
    fn exchange_of(&self, account: &Account) -> Exchange {
        Exchange::Send(self.job.operations[account.step])
    }

    /// The body of a create request.
    fn create_body(&self, external: &str) -> String {
        serde_json::json!({
            "external_account_number": external,
            "import_supplier_code": self.job.supplier,
            "operations_team_name": self.job.team,
            "dry_run": self.job.dry_run,
        })
        .to_string()
    }

    /// Sends the accounts of `windows` (and their retries) until every one is finished or the
    /// run stops; returns why it stopped, if it did.
    async fn drive(
        &mut self,
        windows: &mut tokio::sync::mpsc::Receiver<Vec<Outbound>>,
    ) -> Result<Option<String>, Error> {
        let client = self.client;
        let mut ready: VecDeque<(Account, Exchange)> = VecDeque::new();
        let mut held: VecDeque<(Account, Exchange)> = VecDeque::new();
        let mut delayed: BinaryHeap<Delayed> = BinaryHeap::new();
        let mut in_flight: InFlight<'a> = FuturesUnordered::new();
        let mut source_open = true;
        // Every account starts at the job's first operation.
        let first = Exchange::Send(self.job.operations[0]);
        loop {
            if self.stopped.is_none() {
                let at = Instant::now();
                while delayed.peek().is_some_and(|d| d.at <= at) {
                    let d = delayed.pop().expect("peeked");
                    ready.push_front((d.account, d.exchange));
                }
                if in_flight.is_empty() {
                    // Nothing of ours will complete to release them.
                    ready.extend(held.drain(..));
                }
                let mut launch = Vec::new();
                while in_flight.len() + launch.len() < self.window.size() {
                    if let Some(next) = ready.pop_front() {
                        launch.push(next);
                        continue;
                    }
                    if !source_open {
                        break;
                    }
                    match windows.try_recv() {
                        Ok(w) => ready.extend(w.into_iter().map(|out| (Account::new(out), first))),
                        Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                        Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => source_open = false,
                    }
                }
                let mut intents = Vec::new();
                let mut futures = Vec::with_capacity(launch.len());
                for (mut account, exchange) in launch {
                    let request_id = self.request_id();
                    let round = self.window.round();
                    let started_at = now();
                    let external = account.out.external_account_number.clone();
                    match exchange {
                        Exchange::Send(operation) => {
                            account.attempts += 1;
                            let body = if operation == Operation::Create {
                                self.create_body(&external)
                            } else {
                                account.out.body.clone()
                            };
                            let payload_hash = format!("{:x}", Sha256::digest(body.as_bytes()));
                            if operation == Operation::Create && !self.job.dry_run {
                                intents.push(PushIntent {
                                    target: self.target.to_owned(),
                                    import_supplier: self.job.supplier.to_owned(),
                                    external_account_number: external.clone(),
                                    run_id: self.run_id.to_owned(),
                                    attempt: account.attempts,
                                    request_id: request_id.clone(),
                                    staged_version: Some(account.out.staged_version),
                                    payload_hash: payload_hash.clone(),
                                    line: Some(account.out.line),
                                    started_at: started_at.clone(),
                                });
                            }
                            futures.push(Box::pin(async move {
                                let (answer, latency) = client.send(operation, body, &request_id).await;
                                Done { account, exchange, round, request_id, payload_hash, started_at, answer, latency }
                            }) as Pin<Box<dyn Future<Output = Done> + 'a>>);
                        }
                        Exchange::Status => {
                            account.polls += 1;
                            let supplier = self.job.supplier;
                            futures.push(Box::pin(async move {
                                let (answer, latency) = client.status(supplier, &external, &request_id).await;
                                let payload_hash = String::new();
                                Done { account, exchange, round, request_id, payload_hash, started_at, answer, latency }
                            }));
                        }
                    }
                }
                // Every create's intent is committed before its request goes out.
                if !intents.is_empty() {
                    self.store.add_push_intents(&intents)?;
                }
                in_flight.extend(futures);
                self.summary.most_in_flight = self.summary.most_in_flight.max(in_flight.len());
            }
            let nothing_left = ready.is_empty() && held.is_empty() && delayed.is_empty() && !source_open;
            if in_flight.is_empty() && (self.stopped.is_some() || nothing_left) {
                break;
            }
            let wake = delayed
                .peek()
                .map(|d| d.at)
                .unwrap_or_else(|| Instant::now() + FLUSH_EVERY)
                .min(Instant::now() + FLUSH_EVERY);
            let want_more =
                source_open && ready.is_empty() && in_flight.len() < self.window.size() && self.stopped.is_none();
            let mut answered = Vec::new();
            tokio::select! {
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    answered.push(done);
                    // Everything else that has come back too, before the next round is sent.
                    while let Some(Some(done)) = in_flight.next().now_or_never() {
                        answered.push(done);
                    }
                }
                w = windows.recv(), if want_more => match w {
                    Some(w) => ready.extend(w.into_iter().map(|out| (Account::new(out), first))),
                    None => source_open = false,
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            for done in answered {
                if let Some(h) = held.pop_front() {
                    ready.push_back(h);
                }
                let next = match done.exchange {
                    Exchange::Send(_) => self.send_answer(done),
                    Exchange::Status => self.status_answer(done, false),
                };
                match next {
                    Next::Finished => self.bar.inc(1),
                    Next::After(account, exchange, wait) if wait.is_zero() => ready.push_front((account, exchange)),
                    Next::After(account, exchange, wait) => {
                        self.next_delay += 1;
                        delayed.push(Delayed { at: Instant::now() + wait, seq: self.next_delay, account, exchange });
                    }
                    Next::Held(account, exchange) => held.push_back((account, exchange)),
                }
            }
            if self.records.len() >= FLUSH_ROWS || self.last_flush.elapsed() >= FLUSH_EVERY {
                self.flush()?;
                self.bar.set_message(format!(
                    "in flight {}, window {}, 429s {}",
                    in_flight.len(),
                    self.window.size(),
                    self.summary.refused
                ));
            }
        }
        self.flush()?;
        Ok(self.stopped.clone())
    }

    /// The audit row of an attempt, before its answer is known.
    fn row(&self, operation: Operation, external: &str, line: Option<u64>, attempt: u32) -> AuditRecord {
        let t = now();
        AuditRecord {
            run_id: self.run_id.to_owned(),
            operation: format!("push_{}", operation.name()),
            attempt,
            import_supplier: Some(self.job.supplier.to_owned()),
            external_account_number: Some(external.to_owned()),
            line,
            status_code: 0,
            error_code: None,
            body: String::new(),
            kraken_account_number: None,
            started_at: t.clone(),
            finished_at: t,
            request: None,
            push: None,
        }
    }

    /// Records one exchange's answer with its class; the answer's body moves into the audit row
    /// (`code`: its `code` field).
    fn record(
        &mut self,
        done: &mut Done,
        code: Option<String>,
        operation: Operation,
        class: &str,
        remote_number: Option<String>,
        settles: bool,
    ) {
        let account = &done.account;
        let mut row =
            self.row(operation, &account.out.external_account_number, Some(account.out.line), account.attempts);
        row.started_at.clone_from(&done.started_at);
        if let Answer::Response { status, body, .. } = &mut done.answer {
            row.status_code = *status;
            row.body = std::mem::take(body);
            row.error_code = code;
        }
        row.kraken_account_number.clone_from(&remote_number);
        row.request = Some(RequestTag { id: done.request_id.clone(), token: String::new() });
        row.push = Some(PushDetail {
            staged_version: Some(account.out.staged_version).filter(|v| *v > 0),
            payload_hash: done.payload_hash.clone(),
            latency_ms: done.latency.as_millis() as u64,
            class: class.to_owned(),
        });
        self.summary.latencies.push(done.latency.as_millis().min(u32::MAX as u128) as u32);
        *self.summary.by_class.entry(class.to_owned()).or_default() += 1;
        self.records.push(PushRecord { audit: row, remote_number, settles_intent: settles });
    }

    fn stop(&mut self, why: String) {
        if self.stopped.is_none() {
            self.stopped = Some(why);
        }
    }

    /// A retry of something that failed, within the budget; stops the run when it is spent.
    fn retry_failed(&mut self, answer: &Answer) -> bool {
        let failure = match answer {
            Answer::NotSent => format!("{} cannot be reached (connection refused or no route)", self.target),
            Answer::Lost => format!("{} did not answer in time, or dropped the connection", self.target),
            Answer::Response { status, .. } => format!("{} answers {status}", self.target),
        };
        self.summary.retries += 1;
        let quiet = self.last_progress.elapsed();
        if quiet > self.job.give_up_after {
            self.stop(format!("{failure}, and nothing has gone through for {} s", quiet.as_secs()));
            false
        } else if self.budget.spend(Retry::Failed) {
            true
        } else {
            self.stop(format!("the retry budget is spent: {failure}"));
            false
        }
    }

    fn finished(&mut self, operation: Operation, status: u16, outcome: &str, terminal: bool) -> Next {
        *self.summary.by_outcome.entry((operation.name().to_owned(), status, outcome.to_owned())).or_default() += 1;
        if terminal {
            self.summary.terminal += 1;
        } else {
            self.summary.done += 1;
        }
        Next::Finished
    }

    /// What becomes of an account after the answer to one of its operations.
    fn send_answer(&mut self, mut done: Done) -> Next {
        let Exchange::Send(operation) = done.exchange else { unreachable!("a send") };
        let fields = Fields::of(&done.answer);
        let class = classify_fields(operation, &done.answer, &fields, self.job.dry_run);
        let status = match &done.answer {
            Answer::Response { status, .. } => *status,
            _ => 0,
        };
        // Only a create's answer settles its intent: a stage answer recorded after the same
        // account's create went out must leave that create's intent alone.
        let settles = operation == Operation::Create && !matches!(class, Class::Ambiguous);
        if !matches!(class, Class::Transient | Class::Ambiguous) {
            self.last_progress = Instant::now();
        }
        let (name, remote) = match &class {
            Class::Done { kraken_account_number } => {
                ("done", kraken_account_number.clone().filter(|_| operation == Operation::Create))
            }
            Class::AlreadyImported { kraken_account_number } => {
                ("already_imported", Some(kraken_account_number.clone()))
            }
            Class::DryRunOk => ("dry_run_ok", None),
            Class::Terminal { .. } => ("terminal", None),
            Class::StopRun { .. } => ("stop_run", None),
            Class::Window { .. } => ("window", None),
            Class::Transient => ("transient", None),
            Class::Ambiguous => ("ambiguous", None),
        };
        self.record(&mut done, fields.code, operation, name, remote, settles);
        let mut account = done.account;
        match class {
            Class::Done { .. } | Class::AlreadyImported { .. } | Class::DryRunOk | Class::Terminal { .. } => {
                self.window.succeeded();
                self.budget.refill();
            }
            _ => {}
        }
        match class {
            Class::Done { .. } => {
                account.step += 1;
                account.attempts = 0;
                if account.step < self.job.operations.len() {
                    let next = self.exchange_of(&account);
                    Next::After(account, next, Duration::ZERO)
                } else {
                    let outcome = if operation == Operation::Create { "created" } else { "ok" };
                    self.finished(operation, status, outcome, false)
                }
            }
            Class::AlreadyImported { .. } => self.finished(operation, status, ALREADY_IMPORTED, false),
            Class::DryRunOk => self.finished(operation, status, "would import (dry run)", false),
            Class::Terminal { code } => self.finished(operation, status, &code, true),
            Class::StopRun { why } => {
                self.stop(why);
                Next::Finished
            }
            Class::Window { retry_after } => {
                self.summary.refused += 1;
                self.summary.retries += 1;
                self.window.refused(done.round);
                self.note_window();
                if !self.budget.spend(Retry::Refused) {
                    self.stop(format!(
                        "the retry budget is spent: {} keeps answering 429 (too many requests) after {} refusals",
                        self.target, self.summary.refused
                    ));
                    return Next::Finished;
                }
                match retry_after {
                    Some(wait) => Next::After(account, done.exchange, wait),
                    None => Next::Held(account, done.exchange),
                }
            }
            Class::Transient => {
                if self.retry_failed(&done.answer) {
                    let wait = backoff(account.attempts);
                    Next::After(account, done.exchange, wait)
                } else {
                    Next::Finished
                }
            }
            Class::Ambiguous => Next::After(account, Exchange::Status, Duration::ZERO),
        }
    }

    /// What becomes of an account after a status lookup of its create. `leftover`: the create
    /// was sent by a push that was killed (an `UNKNOWN` account is sent again by selection).
    fn status_answer(&mut self, mut done: Done, leftover: bool) -> Next {
        let status = match &done.answer {
            Answer::Response { status, .. } => *status,
            _ => 0,
        };
        let Fields { code, kraken_account_number, status: remote_status, .. } = Fields::of(&done.answer);
        let remote_status = remote_status.filter(|_| status == 200);
        let number = kraken_account_number.filter(|n| !n.is_empty());
        match (status, remote_status.as_deref(), number) {
            (200, Some("COMPLETED"), Some(number)) => {
                self.record(&mut done, code, Operation::Create, "reconciled_completed", Some(number), true);
                self.summary.reconciled += 1;
                self.finished(Operation::Create, 201, "created (found by status lookup)", false)
            }
            (200, Some("IN_PROGRESS"), _) => {
                self.record(&mut done, code, Operation::Create, "reconciled_in_progress", None, false);
                let mut account = done.account;
                let since = *account.in_progress_since.get_or_insert_with(Instant::now);
                if since.elapsed() > MOST_IN_PROGRESS {
                    eprintln!(
                        "account {} has been IN_PROGRESS on {} for {} s: left for the next push to look up",
                        crate::text::escape(&account.out.external_account_number),
                        self.target,
                        MOST_IN_PROGRESS.as_secs()
                    );
                    return self.finished(Operation::Create, 200, "still in progress on the target", true);
                }
                let wait = backoff(account.polls);
                Next::After(account, Exchange::Status, wait)
            }
            (200, _, _) | (404, _, _) => {
                // The target has no creation of it: the create never arrived.
                self.record(&mut done, code, Operation::Create, "reconciled_unknown", None, true);
                self.summary.reconciled += 1;
                if leftover {
                    return Next::Finished;
                }
                let mut account = done.account;
                if self.retry_failed(&Answer::Lost) {
                    account.polls = 0;
                    Next::After(account, Exchange::Send(Operation::Create), Duration::ZERO)
                } else {
                    Next::Finished
                }
            }
            (401 | 403, _, _) => {
                let body = match &done.answer {
                    Answer::Response { body, .. } => body.clone(),
                    _ => String::new(),
                };
                self.record(&mut done, code, Operation::Create, "stop_run", None, false);
                self.stop(format!("the API refused the token ({status}) when looking up an account: {body}"));
                Next::Finished
            }
            _ => {
                self.record(&mut done, code, Operation::Create, "transient", None, false);
                if self.retry_failed(&done.answer) {
                    let polls = done.account.polls;
                    Next::After(done.account, Exchange::Status, backoff(polls))
                } else {
                    Next::Finished
                }
            }
        }
    }

    fn note_window(&mut self) {
        let size = self.window.size();
        if self.summary.windows.last().is_none_or(|(_, w)| *w != size) {
            self.summary.windows.push((self.started.elapsed().as_secs_f64(), size));
        }
    }
}

/// The wait before retry `attempt` (1-based) of something that failed: exponential from 200 ms
/// to 10 s, with jitter (backon).
fn backoff(attempt: u32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(10))
}

/// What becomes of an account after an answer.
enum Next {
    /// Nothing more to send for it (done, terminal, or the run stopped).
    Finished,
    /// Send this exchange after the wait (at once when it is zero).
    After(Account, Exchange, Duration),
    /// Send this exchange after one of ours completes (a 429 without `Retry-After`).
    Held(Account, Exchange),
}
