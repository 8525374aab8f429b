//! `ferry stage`: validate a dump and store its accepted accounts as staged versions.

use crate::cli::StageArgs;
use crate::error::{Error, ExitStatus};
use crate::settings::Settings;

pub(super) fn run(args: StageArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.ingest.schema.as_deref())?;
    let settings = Settings::new(schema, args.reference.today, args.reference.timezone)
        .with_ingest(args.ingest.threads, args.ingest.chunk_size);
    let wd = args.workdir.resolve()?;
    let mut lock = wd.lock(crate::engine::stage::COMMAND)?;
    let mut store = crate::store::open(&wd)?;
    let staged = crate::engine::stage::stage(&settings, &wd, store.as_mut(), &mut lock, &args.dump, None, &[])?;
    Ok(staged.counts.exit())
}
