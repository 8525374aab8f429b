//! One file per subcommand: orchestration only. The work is done by the library modules.

mod create;
mod flatten;
mod gc;
mod generate;
mod process;
mod report;
mod reprocess;
mod run;
mod runs;
mod schema;
mod stage;
mod supplier;
mod team;
mod validate;

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{Cli, Command};
use crate::error::{Error, ExitStatus};
use crate::settings::Settings;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<ExitStatus, Error> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Report(args) => report::run(args),
        Command::Flatten(args) => flatten::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Supplier(args) => supplier::run(args),
        Command::Team(args) => team::run(args),
        Command::Stage(args) => stage::run(args),
        Command::Create(args) => create::run(args),
        Command::Reprocess(args) => reprocess::run(args),
        Command::Skip(args) => process::skip(args),
        Command::Unskip(args) => process::unskip(args),
        Command::Status(args) => process::status(args),
        Command::List(args) => process::list(args),
        Command::Gc(args) => gc::run(args),
    }
}

/// A rayon pool with `threads` workers (all cores by default).
fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, Error> {
    if threads == Some(0) {
        return Err(Error::usage("--threads must be at least 1", None));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::usage(format!("cannot start worker threads: {e}"), None))
}

/// A dump opened for ingest: the worker pool, chunking, the reader and the file's size.
struct DumpInput {
    pool: rayon::ThreadPool,
    options: crate::ingest::IngestOptions,
    reader: crate::ingest::DumpReader,
    size: u64,
}

impl DumpInput {
    fn open(settings: &Settings, dump: &Path) -> Result<Self, Error> {
        let pool = thread_pool(settings.threads)?;
        let mut options = crate::ingest::IngestOptions::for_threads(pool.current_num_threads());
        options.chunk_size = settings.chunk_size;
        let size = fs_err::metadata(dump)?.len();
        let reader = crate::ingest::DumpReader::open(dump, options.chunk_size)?;
        Ok(Self { pool, options, reader, size })
    }
}

/// A progress bar of accounts on stderr when it is a terminal; hidden otherwise.
fn account_progress(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} accounts {per_sec} ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}

/// A byte progress bar on stderr when it is a terminal; hidden otherwise.
fn byte_progress(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg} ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}
