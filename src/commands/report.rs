//! `ferry report`: (re)write the data-quality report of a finished pipeline run.

use crate::cli::ReportArgs;
use crate::error::{Error, ExitStatus};
use crate::pipeline::ReportFormat;
use crate::pipeline::manifest::Manifest;
use crate::report;

pub(super) fn run(args: ReportArgs) -> Result<ExitStatus, Error> {
    let wd = args.workdir.resolve()?;
    let manifest = match &args.run {
        Some(run) => {
            let path = Manifest::path(&wd, run);
            if let (false, Some(shared)) = (path.is_file(), &wd.files) {
                shared.fetch_tree(&wd.root, &format!("runs/{run}"), |p| p.ends_with("/manifest.json"))?;
            }
            if !path.is_file() {
                return Err(Error::usage(
                    format!("run {run} of {} has no manifest: it is not a finished pipeline run", wd.root.display()),
                    Some("`ferry report --latest` takes the latest finished run"),
                ));
            }
            Manifest::read(&path)?
        }
        None => Manifest::all(&wd)?.pop().ok_or_else(|| {
            Error::usage(
                format!("{} has no finished pipeline run", wd.root.display()),
                Some("run one with `ferry run PIPELINE`"),
            )
        })?,
    };
    let formats: Vec<ReportFormat> = if args.format.is_empty() {
        ReportFormat::ALL.to_vec()
    } else {
        args.format.iter().filter_map(|f| ReportFormat::parse(f)).collect()
    };
    if let Some(shared) = &wd.files {
        // The run's steps may have run on other machines: their files come from the shared storage.
        for step in manifest.steps.iter().filter(|s| !s.dir.is_empty()) {
            shared.fetch_tree(&wd.root, &step.dir, |_| true)?;
        }
    }
    let data = report::collect(&wd, &manifest)?;
    if args.stdout {
        let [format] = formats.as_slice() else {
            return Err(Error::usage("--stdout prints one format", Some("add e.g. `--format md`")));
        };
        print!("{}", report::render(&data, *format));
        return Ok(ExitStatus::Clean);
    }
    for path in report::write_all(&wd, &manifest, &data, &formats)? {
        eprintln!("wrote {}", path.display());
    }
    if let Some(shared) = &wd.files {
        shared.publish_run(&wd.root, &manifest.run_id)?;
    }
    Ok(ExitStatus::Clean)
}
