//! `ferry run PIPELINE`: the nightly job (validate, stage, create, report, manifest).

use crate::cli::RunArgs;
use crate::engine::pipeline::{RunOptions, run as run_pipeline};
use crate::error::{Error, ExitStatus};

pub(super) fn run(args: RunArgs) -> Result<ExitStatus, Error> {
    run_pipeline(&RunOptions {
        pipeline: args.pipeline,
        only_failed_from: args.only_failed_from,
        shard: args.shard,
        today: args.today,
        threads: args.threads,
    })
}
