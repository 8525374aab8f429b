//! The engine: the guide's operations as library calls, for every front end (the CLI today, the
//! HTTP server next).
//!
//! A front end resolves [`crate::settings::Settings`] once, opens the work directory's store as
//! the [`crate::store::Store`] trait and calls one operation:
//!
//! | operation | what it does |
//! |---|---|
//! | [`flatten::flatten_dump`] | a dump into Parquet tables and type-level findings |
//! | [`validate::validate_account`] | one account: the guide's 200 or 400 |
//! | [`validate::validate_dump`] | every account of a dump: findings, outcomes, a summary |
//! | [`stage::stage`] | a dump as one resumable run: 201/200/400 per account, staged Parquet |
//! | [`create::create`] | staged accounts into records, chunks of at most 40, exactly once |
//! | [`reprocess::reprocess`] | what failed in a create run, again, as a linked run |
//! | [`pipeline::run`] | a pipeline file's stages, thresholds, report and manifest |
//! | [`status::status`], [`status::list`] | an account's import status (200 or 404), a supplier's processes |
//! | [`outbound::Selection`] | staged accounts read back as the JSON `ferry push` sends |
//! | [`gc::select`] | staged folders no committed version references, temporary files |
//! | [`check::check`] | everything wrong with a work directory: the store, its invariants, staged files |
//!
//! Every guide status, code and body comes from [`crate::guide`]; every run that writes the store
//! ends in [`runs`] (its audit rows exported to `outcomes.parquet`, counted for the exit code).

pub mod api;
pub mod check;
pub mod create;
pub mod flatten;
pub mod gc;
pub mod outbound;
pub mod pipeline;
pub mod reprocess;
pub mod runs;
pub mod stage;
mod staged;
pub mod status;
pub mod tokens;
pub mod validate;

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::settings::Settings;

/// A rayon pool with `threads` workers (all cores by default).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, Error> {
    if threads == Some(0) {
        return Err(Error::usage("--threads must be at least 1", None));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::usage(format!("cannot start worker threads: {e}"), None))
}

/// A dump opened for ingest: the worker pool, chunking, the reader and the file's size.
pub(crate) struct DumpInput {
    pub pool: rayon::ThreadPool,
    pub options: crate::ingest::IngestOptions,
    pub reader: crate::ingest::DumpReader,
    pub size: u64,
}

impl DumpInput {
    pub(crate) fn open(settings: &Settings, dump: &Path) -> Result<Self, Error> {
        let pool = thread_pool(settings.threads)?;
        let mut options = crate::ingest::IngestOptions::for_threads(pool.current_num_threads());
        options.chunk_size = settings.chunk_size;
        let size = fs_err::metadata(dump)?.len();
        let reader = crate::ingest::DumpReader::open(dump, options.chunk_size)?;
        Ok(Self { pool, options, reader, size })
    }
}

/// A progress bar of accounts on stderr when it is a terminal; hidden otherwise.
pub fn account_progress(total: u64) -> ProgressBar {
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
pub fn byte_progress(total: u64) -> ProgressBar {
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
