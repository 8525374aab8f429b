//! `ferry reprocess`: create again exactly the accounts whose creation failed in a run.

use crate::cli::ReprocessArgs;
use crate::engine::reprocess::{Request, reprocess};
use crate::error::{Error, ExitStatus};

pub(super) fn run(args: ReprocessArgs) -> Result<ExitStatus, Error> {
    let request = Request {
        run: args.run,
        codes: args.codes,
        max_attempts: args.max_attempts,
        team: args.team,
        dump: args.dump,
        today: args.create.reference.today,
        timezone: args.create.reference.timezone,
        schema: args.create.schema,
        concurrency: args.create.concurrency as usize,
    };
    reprocess(&args.workdir.resolve()?, &request)
}
