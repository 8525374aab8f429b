//! The command line, as clap derive structs only; resolution happens in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `ferry --version`: the version and the references the identifier checks agree with.
static VERSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{} ({})", env!("CARGO_PKG_VERSION"), *crate::identifiers::REFERENCES));

/// ferry moves a legacy energy supplier's customer accounts onto a Kraken-style platform.
///
/// It reads NDJSON dumps of accounts (one JSON object per line, plain, .gz or .zst),
/// flattens them into Arrow tables and Parquet files, and reports every problem in the data
/// as a finding with its line, account and attr path.
///
/// Exit codes: 0 all good; 1 the command completed but the data has errors; 2 usage,
/// configuration or I/O error.
#[derive(Debug, Parser)]
#[command(name = "ferry", version = VERSION.as_str(), max_term_width = 100)]
#[command(
    after_help = "Example:\n  ferry generate --accounts 1000 --out dump.ndjson\n  ferry flatten dump.ndjson --out ferry-data/dump"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(RunArgs),
    Report(ReportArgs),
    Flatten(FlattenArgs),
    Validate(ValidateArgs),
    Generate(GenerateArgs),
    Schema(SchemaArgs),
    Stage(StageArgs),
    Create(CreateArgs),
    Reprocess(ReprocessArgs),
    Supplier(SupplierArgs),
    Team(TeamArgs),
    Token(TokenArgs),
    Skip(SkipArgs),
    Unskip(UnskipArgs),
    Status(StatusArgs),
    List(ListArgs),
    Gc(GcArgs),
    Check(CheckArgs),
    Backup(BackupArgs),
    Serve(ServeArgs),
    Push(PushArgs),
}

/// Run a pipeline file: its stages over its sources, then the manifest and the report.
///
/// The pipeline (pipelines/*.toml) names the source files (globs, .gz/.zst), the schema and
/// timezone, severity overrides, the stages (validate, stage, create), the create options,
/// the thresholds that decide the exit code, the work directory and the report formats.
/// Relative paths in it are relative to the file.
///
/// Each stage runs as its own run in the store (stage per source file, create per supplier)
/// and is resumed when the pipeline is run again after a kill: nothing is staged or created
/// twice. The report (WORKDIR/runs/RUN/report.html, .json, .md) is written at the end, and the
/// run's manifest (manifest.json: inputs with size and sha256, hashes, version, counts,
/// timings, exit status) last: a run without a manifest did not finish.
///
/// Exits 0 when every account went through, 1 when accounts were rejected or a threshold was
/// crossed (named on stderr), 2 on usage, config or I/O errors.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ferry run pipelines/example.toml\n  \
                        ferry run pipelines/nightly.toml --shard 2/3\n  \
                        ferry run pipelines/nightly.toml --only-failed-from 20261127T021500Z-3f9a")]
pub struct RunArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Process only the accounts that failed in this earlier pipeline run (rejected at stage,
    /// or not created): the fix-the-source-and-retry loop.
    #[arg(long, value_name = "RUN")]
    pub only_failed_from: Option<String>,
    /// Process only shard I of N (1-based): the accounts whose external account number hashes
    /// to I, so that N machines split one dump; shards 1..N cover every account exactly once.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// The reference date for "in the future" (YYYY-MM-DD); defaults to today in the
    /// pipeline's timezone.
    #[arg(long, value_name = "DATE")]
    pub today: Option<chrono::NaiveDate>,
    /// Worker threads for parsing and validation (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not I/N with 1 <= I <= N (e.g. 2/3)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if i == 0 || n == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Write the data-quality report of a pipeline run.
///
/// The report has the funnel (read, valid, staged, created), findings by code, table and attr
/// pattern, the most frequent offending values (personal data masked), sample accounts per
/// code, create outcomes and timings, the trend over the pipeline's last runs, and what is new
/// and what was fixed since its previous run. `ferry run` writes it at the end of every run;
/// this command writes it again (e.g. in another format) into WORKDIR/runs/RUN/.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ferry report --latest\n  ferry report 20261127T021500Z-3f9a --format md --stdout")]
pub struct ReportArgs {
    /// The pipeline run (its id, as `ferry run` printed it).
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub run: Option<String>,
    /// The latest pipeline run with a manifest.
    #[arg(long)]
    pub latest: bool,
    /// Formats to write (repeatable); default: html, json and md.
    #[arg(long, value_name = "FORMAT", value_parser = ["html", "json", "md"])]
    pub format: Vec<String>,
    /// Print the report to stdout instead of writing files (one format).
    #[arg(long)]
    pub stdout: bool,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// Validate a dump and stage its accepted accounts in the work directory's store.
///
/// Every account is validated by exactly the validate rules, then gets the guide's stage
/// outcome: 201 staged for the first time; 200 staged again (a new version when the data
/// changed, none when it is identical); 400 invalid (the validate body), already imported,
/// marked to be skipped, or its supplier's migration paused or complete.
///
/// Staged rows go to WORKDIR/staging/SUPPLIER/RUN/TABLE.parquet with typed columns
/// (decimals exact, dates, datetimes as UTC instants). The run's findings, outcomes (its
/// audit rows) and the rows of invalid accounts (quarantine/TABLE.parquet, joinable with
/// findings.parquet on _line = line) go to WORKDIR/runs/RUN/.
///
/// Safe to kill: nothing is current until its files are durable and one store transaction
/// commits; running the same command again finishes an interrupted run. One process writes
/// to a work directory at a time; a second fails at once (exit 2) naming the holder.
///
/// Exits 0 when every account was staged (201 or 200), 1 when any got a 400.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry stage data/sample.ndjson\n  ferry stage nightly.ndjson.zst --workdir /srv/ferry"
)]
pub struct StageArgs {
    /// The NDJSON dump: .ndjson, .ndjson.gz or .ndjson.zst.
    pub dump: PathBuf,
    #[command(flatten)]
    pub reference: ReferenceArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// Create accounts from their current staged data, at most 40 in flight.
///
/// For each selected import process of the supplier, its staged rows are read back, checked
/// again by the rules (they can change between stage and create) and written as an account
/// record with a new Kraken account number (A- and 8 random hex digits). Outcomes: 201 with
/// the account number; 400 not staged, team unknown, invalid now (the validate body), already
/// imported, or, with --dry-run, "would successfully import" (everything is done and rolled
/// back: the store is left as it was).
///
/// Accounts are created in chunks of --concurrency (at most 40), one transaction per chunk:
/// one failing account never undoes another (its chunk is written again account by account,
/// and only the failing one is undone), and a killed run leaves no half-created account.
/// Running it again creates what is still pending, never twice.
///
/// Exits 0 when every selected account was created, 1 when any got a 400.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry team add Migration\n  ferry create --supplier TENTACLE_ENERGY --team Migration --all-pending\n  ferry create --supplier TENTACLE_ENERGY --team Migration --accounts failed.txt --dry-run"
)]
pub struct CreateArgs {
    /// The import supplier whose accounts are created.
    #[arg(long)]
    pub supplier: String,
    /// The operations team the accounts belong to (it must exist: `ferry team add`).
    #[arg(long)]
    pub team: String,
    /// Do all the work, then roll it back: nothing in the store changes.
    #[arg(long)]
    pub dry_run: bool,
    /// Every STAGED process of the supplier.
    #[arg(long, conflicts_with = "accounts", required_unless_present = "accounts")]
    pub all_pending: bool,
    /// The external account numbers to create, one per line (# starts a comment).
    #[arg(long, value_name = "FILE")]
    pub accounts: Option<PathBuf>,
    #[command(flatten)]
    pub create: CreateOptions,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// Options of every command that creates accounts.
#[derive(Debug, Args)]
pub struct CreateOptions {
    /// Accounts in flight at once (1 to 40, the platform's limit).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=40))]
    pub concurrency: u32,
    #[command(flatten)]
    pub reference: ReferenceArgs,
    /// Schema file; defaults to the built-in schemas/account.toml.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
}

/// The reference date and timezone of the rules, for every command that reads dates.
#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// The reference date for "in the future" (YYYY-MM-DD); defaults to today in the timezone.
    /// Fix it for reproducible runs.
    #[arg(long, value_name = "DATE")]
    pub today: Option<chrono::NaiveDate>,
    /// The timezone naive datetimes are read in and "today" is taken in (an IANA name);
    /// defaults to Europe/Berlin (for `ferry reprocess`: the timezone of the run it re-runs).
    #[arg(long, value_name = "TZ", value_parser = crate::settings::parse_timezone)]
    pub timezone: Option<chrono_tz::Tz>,
}

/// Create again exactly the accounts whose creation failed in an earlier run.
///
/// Selects every account whose latest create outcome in RUN was a 400 (optionally only with
/// one of --codes, and only while it has had fewer than --max-attempts create attempts), and
/// runs create for them as a new run linked to RUN, with the team RUN used unless --team is
/// given. Accounts created since are reported as already imported, never created twice.
/// Attempt numbers count every create of the account, in the audit.
///
/// Exits 0 when every reprocessed account was created, 1 when any got a 400.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry team add Migration\n  ferry reprocess --run 20261127T021500Z-3f9a\n  ferry reprocess --run 20261127T021500Z-3f9a --codes operations_team_name_does_not_exist --max-attempts 3"
)]
pub struct ReprocessArgs {
    /// The create (or reprocess) run whose failures are created again.
    #[arg(long, value_name = "RUN")]
    pub run: String,
    /// Only the accounts whose latest outcome has one of these error codes.
    #[arg(long, value_delimiter = ',', value_name = "CODE,...")]
    pub codes: Option<Vec<String>>,
    /// Skip accounts that have already had this many create attempts.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: Option<u32>,
    /// The operations team; defaults to the one RUN used.
    #[arg(long)]
    pub team: Option<String>,
    /// A newer dump to stage those accounts from first (every other account in it is
    /// ignored): fix the source, re-export, reprocess.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    #[command(flatten)]
    pub create: CreateOptions,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// Mark staged import processes to be skipped: staging them is refused until unskipped.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry skip --supplier TENTACLE_ENERGY EXTERNAL-1234 --reason \"customer moved out\""
)]
pub struct SkipArgs {
    /// The import supplier of the accounts.
    #[arg(long)]
    pub supplier: String,
    /// External account numbers.
    #[arg(required = true, value_name = "ACCOUNT")]
    pub accounts: Vec<String>,
    /// Why they are skipped (kept with the process).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// Return skipped import processes to STAGED, with their current staged data.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry unskip --supplier TENTACLE_ENERGY EXTERNAL-1234")]
pub struct UnskipArgs {
    /// The import supplier of the accounts.
    #[arg(long)]
    pub supplier: String,
    /// External account numbers.
    #[arg(required = true, value_name = "ACCOUNT")]
    pub accounts: Vec<String>,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// The guide's status of one import process.
///
/// Prints {"status": "UNKNOWN" | "IN_PROGRESS" | "COMPLETED", "kraken_account_number": ...}
/// and exits 0; for a process that does not exist prints the 404 body {"detail": ...} and
/// exits 1. UNKNOWN means staged but no account yet. The numbers target APIs gave the account
/// (`ferry push`) follow on stderr.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry status --supplier TENTACLE_ENERGY EXTERNAL-1234")]
pub struct StatusArgs {
    /// The import supplier of the account.
    #[arg(long)]
    pub supplier: String,
    /// The external account number.
    #[arg(value_name = "ACCOUNT")]
    pub account: String,
    /// Also print the process's state, staged version and skip reason on stderr.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// List a supplier's import processes: all, pending (staged, not imported) or imported.
///
/// Each entry has external_account_number, kraken_account_number and account_created_at
/// (null until imported); the table shows the process status too. Accounts `ferry push` created
/// on a target API count as imported, and show the target's number ("remote_accounts" in
/// --json: target and kraken_account_number).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry list pending --supplier TENTACLE_ENERGY\n  ferry list all --supplier TENTACLE_ENERGY --json | jq ."
)]
pub struct ListArgs {
    /// Which processes.
    #[arg(value_enum)]
    pub which: ListWhich,
    /// The import supplier.
    #[arg(long)]
    pub supplier: String,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListWhich {
    All,
    Pending,
    Imported,
}

/// Serve the guide's HTTP API on a work directory's store.
///
/// Endpoints (the platform's paths, trailing slash included): POST
/// /v1/data-import/validate-account/ (200 or the 400 envelope, as `ferry validate --account`);
/// POST /v1/data-import/account-import-process/create-or-update/ (stage one account: 201, 200
/// update, 400 as `ferry stage` answers); POST /v1/data-import/account-import-process/process/
/// with {"external_account_number", "import_supplier_code", "operations_team_name", "dry_run"}
/// (create: 201 with the Kraken account number, 400 as `ferry create` answers, 429 at once
/// past --create-limit creates in flight, with Retry-After: 1); GET
/// /v1/data-import/account-transfer-status/SUPPLIER/ACCOUNT/ (the status, or 404); GET
/// /v1/data-import/{all,pending,imported}-account-import-processes/SUPPLIER/ (JSON arrays); GET
/// /healthz, /readyz and /metrics (Prometheus). Every error is JSON. Every endpoint but
/// /healthz wants `Authorization: Token <key>` (`ferry token add`).
///
/// Stages and creates go to one writer that batches them (one run, one commit for what is
/// waiting). The server holds the work directory's lock while it runs (CLI readers keep working
/// beside it). It prints `listening on http://ADDR` on stderr once it accepts connections (port
/// 0 picks a free one), and a line per request. SIGINT or SIGTERM: /readyz answers 503,
/// requests in flight finish (at most --drain-timeout), the lock is released. TLS belongs to a
/// reverse proxy in front of it.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry serve --workdir ferry-data --listen 127.0.0.1:8080\n  \
curl -s -X POST -H 'Content-Type: application/json' --data @data/examples/account.json \\\n    \
http://127.0.0.1:8080/v1/data-import/validate-account/")]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The largest request body, in bytes; larger is 413.
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body: usize,
    /// Seconds that requests in flight get to finish after SIGINT or SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub drain_timeout: u64,
    /// Creates in flight at most; the next one gets 429 at once (1 to 40, the platform's limit).
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=40))]
    pub create_limit: u32,
    /// The request log on stderr: `text` (request id, method, path, status, milliseconds,
    /// token) or `json` (one object per request, for a log shipper).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Schema file; defaults to the built-in schemas/account.toml.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    #[command(flatten)]
    pub reference: ReferenceArgs,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// Send staged accounts to a Kraken-compatible API: validate, stage and create, at most 40 in
/// flight, each account created exactly once even when the push is killed.
///
/// For each selected account (STAGED here, and not yet created on the target), the body is
/// rebuilt from its current staged version and sent through the operations in order: POST
/// validate-account/, POST account-import-process/create-or-update/ (stage), POST
/// account-import-process/process/ (create, with --team and --dry-run). An account that fails
/// one operation waits for a fix and is not sent further.
///
/// At most --concurrency requests are in flight. A 429 halves that window (it grows back by one
/// after a window's worth of successes) and the account is sent again after Retry-After, or after
/// one of ours completes. Refused connections and gateway errors (502, 503, 504) are retried with
/// backoff; a retry budget stops the push when the target is down, naming what failed. A 401,
/// 403 or a supplier whose migration is paused or complete stops it at once.
///
/// Exactly once: each create's intent is committed in the store before it is sent. A create
/// whose answer is lost (a timeout or a dropped connection after sending, a 500), and every
/// create a killed push left, is looked up through the transfer-status endpoint before
/// anything is sent again. Running the same command again finishes the job.
///
/// Every attempt is an audit row (push_validate, push_stage, push_create: attempt, request id,
/// staged version, payload hash, status, the body received, latency, class), exported to
/// WORKDIR/runs/RUN/outcomes.parquet. The API key comes from --token-file or FERRY_API_TOKEN and
/// is never printed. Exit 0 when every account is done, 1 when some wait for a fix, 2 when the
/// push stopped (authentication, supplier not ongoing, retry budget, unreachable).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  FERRY_API_TOKEN=... ferry push --workdir ferry-data --base-url https://api.example.com \\\n    \
--supplier TENTACLE_ENERGY --team Migration --all-pending\n  \
ferry push --base-url http://127.0.0.1:8080 --supplier TENTACLE_ENERGY \\\n    \
--operations validate --all-pending --token-file key.txt"
)]
pub struct PushArgs {
    /// The target API's base URL (https://; plain http:// only to this machine unless
    /// --insecure-http).
    #[arg(long, value_name = "URL")]
    pub base_url: String,
    /// The import supplier whose accounts are sent.
    #[arg(long)]
    pub supplier: String,
    /// The operations team of the created accounts (needed when create is among --operations).
    #[arg(long)]
    pub team: Option<String>,
    /// The operations to send each account through (always in the guide's order: validate,
    /// stage, create).
    #[arg(long, value_name = "OPS", value_delimiter = ',', default_value = "validate,stage,create")]
    pub operations: Vec<PushOperation>,
    /// Send creates with dry_run: the target does everything and rolls it back. Validate and
    /// stage are sent as usual (a dry-run create needs the account staged on the target).
    #[arg(long)]
    pub dry_run: bool,
    /// Requests in flight at most (1 to 40, the platform's limit); the window starts here.
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=40))]
    pub concurrency: u32,
    /// Every STAGED account of the supplier not yet created on the target.
    #[arg(long, conflicts_with = "accounts", required_unless_present = "accounts")]
    pub all_pending: bool,
    /// The external account numbers to send, one per line (# starts a comment).
    #[arg(long, value_name = "FILE")]
    pub accounts: Option<PathBuf>,
    /// A file whose first line is the API key (else FERRY_API_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Allow plain http:// to a host that is not this machine.
    #[arg(long)]
    pub insecure_http: bool,
    /// Also trust the certificates of this PEM file for HTTPS (a company's own CA); the
    /// system's roots are trusted either way.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Seconds a request may take, from sending to the whole answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Stop when requests keep failing and nothing has gone through for this many seconds
    /// (an outage; the retry budget stops a large push sooner).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub give_up_after: u64,
    /// Schema file; defaults to the built-in schemas/account.toml.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// An operation `ferry push` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PushOperation {
    Validate,
    Stage,
    Create,
}

/// How `ferry serve` writes its request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Check a work directory for damage, changing nothing.
///
/// Runs the store's full integrity check and its foreign keys, checks the state machine's
/// invariants (an IMPORTED process has its Kraken account number and its create 201, no other
/// process has one, every current staged version exists), whether the store is older than what
/// ferry committed to it (a copy without its WAL, an older backup put back), and reads back
/// every staged file a STAGED process still needs: its length and CRC-32 as written, and each
/// account's rows as staged. Prints one line per problem; exit 0 when there is none, 2 otherwise.
///
/// Every command checks the store when it opens it, but the full check only when ferry.db was
/// changed behind ferry's back (after a crash, a copy, a restore); run this after a disk or
/// file-system problem, or before a backup you mean to rely on.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry check --workdir ferry-data")]
pub struct CheckArgs {
    /// Schema file the staged files were written with; defaults to the built-in one.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// Copy the store to DEST, consistently, even while ferry runs.
///
/// Uses SQLite's online backup: DEST is one file holding one consistent state of the store
/// (never copy ferry.db alone: without its ferry.db-wal it can miss committed work, and ferry
/// refuses such a copy). The copy is checked before it is given its name; DEST must not exist.
/// Staged files and runs are not copied: back up the whole work directory with the store's copy
/// in place of ferry.db.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry backup /backups/ferry-$(date +%F).db --workdir ferry-data")]
pub struct BackupArgs {
    /// Where the copy goes (a new file).
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// Remove staged files that no committed staged version references.
///
/// Such files are left by runs killed before their store transaction committed. Files of
/// older versions stay: they are the audit trail. Half-written temporary files go too.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry gc --dry-run\n  ferry gc")]
pub struct GcArgs {
    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

/// The work directory of the store (`<DIR>/ferry.db`, created on first use).
#[derive(Debug, Args)]
pub struct WorkdirArgs {
    /// Work directory holding the store and every run's files.
    #[arg(long, value_name = "DIR", default_value = "ferry-data", global = true)]
    pub workdir: PathBuf,
    /// The store, when it is not the work directory's own ferry.db: a PostgreSQL database that
    /// several machines share (postgres://USER:PASSWORD@HOST:PORT/DATABASE). The password is
    /// never printed; prefer FERRY_STORE to a command line others can read.
    #[arg(long, value_name = "URL", env = "FERRY_STORE", hide_env_values = true, global = true)]
    pub store: Option<String>,
    /// Where staged and run files are also published, so that every machine on a shared store
    /// reads them: s3://BUCKET/PREFIX (credentials, region and endpoint from AWS_* variables)
    /// or file:///DIR (a shared mount). Without it, the work directory is their only place.
    #[arg(long, value_name = "URL", env = "FERRY_STAGING", hide_env_values = true, global = true)]
    pub staging: Option<String>,
}

impl WorkdirArgs {
    /// The work directory, its store and where its files are shared.
    pub fn resolve(&self) -> Result<crate::workdir::Workdir, crate::error::Error> {
        crate::workdir::Workdir::open(&self.workdir, self.store.as_deref(), self.staging.as_deref())
    }
}

/// List import suppliers, or pause, resume or complete a supplier's migration.
///
/// A supplier is ONGOING when first seen. While it is PAUSED or COMPLETE, staging its accounts
/// is refused (import_supplier_migration_not_ongoing).
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry supplier pause TENTACLE_ENERGY\n  ferry supplier list --json")]
pub struct SupplierArgs {
    #[command(subcommand)]
    pub command: SupplierCommand,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

#[derive(Debug, Subcommand)]
pub enum SupplierCommand {
    /// Every supplier with its migration status (a table; JSON lines with --json).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Pause a supplier's migration: staging is refused until it is resumed.
    Pause { code: String },
    /// Resume a paused (or completed) supplier's migration.
    Resume { code: String },
    /// Mark a supplier's migration complete: staging is refused from now on.
    Complete { code: String },
}

/// Add or list operations teams (accounts are created for a team that exists).
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry team add \"Migration A\"\n  ferry team list")]
pub struct TeamArgs {
    #[command(subcommand)]
    pub command: TeamCommand,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Add a team; adding one that exists changes nothing.
    Add { name: String },
    /// Every team (a table; JSON lines with --json).
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Manage the API tokens of `ferry serve`.
///
/// A token has a name and a role: viewer (validate, status, lists) or importer (also stage and
/// create). `add` prints the key once, on stdout: the store keeps only its SHA-256. Requests
/// send it as `Authorization: Token <key>`. A revoked token is refused at once, also by a
/// running server.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry token add nightly-push --role importer > push.key\n  ferry token list\n  \
ferry token revoke nightly-push")]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
    #[command(flatten)]
    pub workdir: WorkdirArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; its key goes to stdout, once.
    Add {
        /// Letters, digits, '-', '_' or '.', 1 to 64 (it is printed in logs).
        name: String,
        /// viewer: validate and read; importer: also stage and create.
        #[arg(long, value_parser = ["viewer", "importer"])]
        role: String,
    },
    /// Every token: name, role, created, revoked (JSON lines with --json; never the key).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: requests with its key get 401 from then on.
    Revoke { name: String },
}

/// Flatten a dump into one Parquet file per table, plus findings.parquet.
///
/// Each nested list of the account payload becomes a table (accounts, customers,
/// supply_points, readings, ...). Every row carries _line, _account, _parent and _index,
/// from which the attr path of any value is rebuilt. Values of the wrong JSON type, missing
/// or null required keys, unknown keys and lines that are not JSON become findings; the run
/// goes on. A summary goes to stderr; a progress bar too when stderr is a terminal.
///
/// Exits 1 when any finding has severity error.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry flatten data/sample.ndjson --out ferry-data/sample")]
pub struct FlattenArgs {
    /// The NDJSON dump: .ndjson, .ndjson.gz or .ndjson.zst.
    pub dump: PathBuf,
    /// Directory for the Parquet files (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub ingest: IngestArgs,
}

/// Check every account of a dump against every field rule of the schema.
///
/// Runs the flattener's checks (JSON types, required and unknown keys) and the field rules:
/// lengths, blank values, value lists, dates and datetimes, decimals, integer ranges, empty
/// lists, identifiers (MaLo, MeLo, market partner, EIC, OBIS, IBAN), phone numbers, e-mail,
/// postcodes, and repeats within a parent, an account or the whole dump. Each problem is a
/// finding with its line, account and attr path. A summary goes to stderr: accounts accepted
/// and rejected, the most frequent codes and attr patterns (indices folded).
///
/// Each account gets the guide's validate outcome: 200 with the validated data, or 400 with
/// {"detail", "code": "account_failed_validation", "errors": [...]}; warnings ride along in a
/// "warnings" array.
///
/// Exits 0 when no line has an error, 1 otherwise.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry validate data/sample.ndjson --out ferry-data/validate\n  ferry validate dump.ndjson --emit findings | jq -r .code | sort | uniq -c\n  ferry validate --account data/examples/guide-account.json"
)]
pub struct ValidateArgs {
    /// The NDJSON dump: .ndjson, .ndjson.gz or .ndjson.zst.
    #[arg(required_unless_present = "account")]
    pub dump: Option<PathBuf>,
    /// Validate one account: a JSON file holding one object (pretty-printed is fine). Prints
    /// the guide's response body on stdout and its status on stderr; exits 0 for 200, 1 for 400.
    #[arg(long, value_name = "FILE.json", conflicts_with_all = ["dump", "out", "emit"])]
    pub account: Option<PathBuf>,
    /// Directory for findings.parquet and outcomes.parquet (created if missing).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What to print on stdout, one JSON object per line.
    #[arg(long, value_enum, default_value_t = Emit::None)]
    pub emit: Emit,
    #[command(flatten)]
    pub reference: ReferenceArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
}

/// What `ferry validate` prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// Every account's outcome: line, import_supplier, external_account_number, status, body.
    Outcomes,
    /// Every finding: line, import_supplier, external_account_number, attr, code, severity, detail, value.
    Findings,
    /// Nothing; the summary still goes to stderr.
    None,
}

/// Options shared by the commands that read dumps.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Schema file; defaults to the built-in schemas/account.toml.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Worker threads; defaults to the number of cores.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Bytes of input per parallel chunk (cut at the next newline).
    #[arg(long, value_name = "BYTES", default_value_t = crate::settings::DEFAULT_CHUNK_SIZE, hide_short_help = true)]
    pub chunk_size: usize,
}

/// Generate a deterministic synthetic dump of the guide's account shape.
///
/// Accounts have 1-3 customers, 1-2 supply addresses with 1-2 gas or electricity supply
/// points each, meters, registers and readings, ledgers with up to 40 transactions, payment
/// instructions and schedules, statements, notes and metadata. With --error-rate 0 every
/// account is valid; otherwise that share of accounts carries injected errors, each listed
/// with its line, attr, code and severity in the --manifest file (NDJSON).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry generate --accounts 100000 --seed 7 --error-rate 0.05 --out dump.ndjson --manifest expected.ndjson"
)]
pub struct GenerateArgs {
    /// Number of accounts (lines).
    #[arg(long, default_value_t = 1000)]
    pub accounts: u64,
    /// Seed: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of accounts with injected errors, from 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Output file; .gz or .zst compresses.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write the expected findings, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Worker threads; defaults to the number of cores.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Inspect a schema file: the tables, fields and rules that drive every stage.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry schema check\n  ferry schema check my-schema.toml")]
pub struct SchemaArgs {
    #[command(subcommand)]
    pub command: SchemaCommand,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Check a schema file and list its tables; reports every problem at once.
    #[command(after_help = "Example:\n  ferry schema check schemas/account.toml")]
    Check {
        /// The schema file; defaults to the built-in one.
        file: Option<PathBuf>,
    },
    /// Print the field reference as Markdown: every table and field with its type, presence
    /// and rules, then every rule code with its severity (docs/fields.md is this output).
    #[command(after_help = "Example:\n  ferry schema docs > docs/fields.md")]
    Docs {
        /// The schema file; defaults to the built-in one.
        file: Option<PathBuf>,
    },
}
