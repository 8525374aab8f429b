//! `ferry serve`: the guide's HTTP API on the work directory's store.

use crate::cli::ServeArgs;
use crate::error::{Error, ExitStatus};
use crate::settings::Settings;

pub(super) fn run(args: ServeArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.schema.as_deref())?;
    let settings = Settings::new(schema, args.reference.today, args.reference.timezone);
    let options = crate::serve::Options {
        listen: args.listen,
        max_body: args.max_body,
        drain_timeout: std::time::Duration::from_secs(args.drain_timeout),
        create_limit: args.create_limit as usize,
        log_format: args.log_format,
    };
    crate::serve::serve(settings, &args.workdir.resolve()?, &options)
}
