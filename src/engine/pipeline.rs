//! Run a pipeline: the nightly job. Runs the pipeline's stages in order (each as its own
//! resumable store run), checks the thresholds, writes the report and, last, the manifest.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::cli::Emit;
use crate::clock::{new_run_id, now};
use crate::error::{Error, ExitStatus};
use crate::outcome::FAILED_VALIDATION;
use crate::pipeline::manifest::{Funnel, Input, Manifest, Named, OutcomeCount, Step, ThresholdCheck};
use crate::pipeline::{Pipeline, Stage};
use crate::report;
use crate::settings::Settings;
use crate::stage::AccountFilter;
use crate::store::Store;
use crate::workdir::Workdir;

use super::create::{Job, create};

/// The stage outcome of an account that was imported before: not a rejection of the data.
const ALREADY_IMPORTED: &str = crate::guide::Code::AlreadyImported.as_str();

/// What `ferry run` was asked for, besides the pipeline file.
pub struct RunOptions {
    pub pipeline: std::path::PathBuf,
    /// Only the accounts that failed in this earlier pipeline run.
    pub only_failed_from: Option<String>,
    /// Only shard I of N.
    pub shard: Option<(u32, u32)>,
    pub today: Option<chrono::NaiveDate>,
    pub threads: Option<usize>,
}

pub fn run(args: &RunOptions) -> Result<ExitStatus, Error> {
    let started = Instant::now();
    let pipeline = Pipeline::load(&args.pipeline)?;
    let settings = Settings::new(pipeline.load_schema()?, args.today, Some(pipeline.timezone))
        .with_ingest(args.threads, crate::settings::DEFAULT_CHUNK_SIZE);
    let (schema, ctx) = (&settings.schema, &settings.rules);
    let setting = |var: &str, file: &Option<String>| std::env::var(var).ok().filter(|s| !s.is_empty()).or(file.clone());
    let store = setting("FERRY_STORE", &pipeline.store);
    let staging = setting("FERRY_STAGING", &pipeline.staging);
    let wd = Workdir::open(&pipeline.workdir, store.as_deref(), staging.as_deref())?;
    let mut lock = wd.lock("run")?;
    let mut store = crate::store::open(&wd)?;
    let run_id = new_run_id();
    lock.describe(Some(&run_id))?;
    let started_at = now();
    let files = pipeline.source_files()?;
    let filter = filter(args, &pipeline, &wd, store.as_ref())?;
    fs_err::create_dir_all(wd.run_dir(&run_id))?;
    eprintln!(
        "run {run_id} of pipeline {:?}: {} source files, stages {}",
        pipeline.name,
        files.len(),
        stages(&pipeline)
    );
    // The inputs are hashed for the manifest while the stages read them.
    let hashing = {
        let files = files.clone();
        std::thread::spawn(move || files.iter().map(|f| input(f)).collect::<Result<Vec<Input>, Error>>())
    };
    let mut steps = Vec::new();
    if pipeline.runs(Stage::Stage) {
        for file in &files {
            eprintln!("run {run_id}: stage {}", file.display());
            let t = Instant::now();
            let staged = super::stage::stage(&settings, &wd, store.as_mut(), &mut lock, file, filter.as_ref(), &[])?;
            steps.push(Step {
                stage: Stage::Stage,
                input: Some(file.display().to_string()),
                supplier: None,
                dir: format!("runs/{}", staged.run_id),
                run_id: Some(staged.run_id),
                seconds: t.elapsed().as_secs_f64(),
                outcomes: staged.counts.outcomes(),
            });
        }
    } else if pipeline.runs(Stage::Validate) {
        for (i, file) in files.iter().enumerate() {
            eprintln!("run {run_id}: validate {}", file.display());
            let t = Instant::now();
            let dir = format!("runs/{run_id}/validate-{}", i + 1);
            let tally = super::validate::validate_dump(&settings, file, Some(&wd.root.join(&dir)), Emit::None)?;
            let mut outcomes = vec![OutcomeCount {
                status: 200,
                outcome: "valid".to_owned(),
                count: tally.lines - tally.rejected_lines,
            }];
            if tally.rejected_lines > 0 {
                outcomes.push(OutcomeCount {
                    status: 400,
                    outcome: FAILED_VALIDATION.to_owned(),
                    count: tally.rejected_lines,
                });
            }
            steps.push(Step {
                stage: Stage::Validate,
                input: Some(file.display().to_string()),
                supplier: None,
                run_id: None,
                dir,
                seconds: t.elapsed().as_secs_f64(),
                outcomes,
            });
        }
    }
    if pipeline.runs(Stage::Create) {
        create_all(&pipeline, &settings, &wd, store.as_mut(), &mut lock, filter.as_ref(), &run_id, &mut steps)?;
    }
    if pipeline.runs(Stage::Push) {
        push_all(&pipeline, &settings, &wd, store.as_mut(), filter.as_ref(), &run_id, &mut steps)?;
    }
    let inputs = hashing.join().expect("hashing does not panic")?;
    let funnel = funnel(&steps, pipeline.create.dry_run);
    let mut manifest = Manifest {
        run_id: run_id.clone(),
        pipeline: Named {
            name: pipeline.name.clone(),
            path: pipeline.path.display().to_string(),
            sha256: pipeline.hash.clone(),
        },
        schema: Named {
            name: schema.name.clone(),
            path: pipeline.schema.as_ref().map_or_else(|| "(built in)".to_owned(), |p| p.display().to_string()),
            sha256: schema.hash.clone(),
        },
        ferry_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        finished_at: String::new(),
        options: crate::pipeline::manifest::Options {
            stages: pipeline.stages.iter().map(|s| s.as_str().to_owned()).collect(),
            today: ctx.today.to_string(),
            timezone: pipeline.timezone.name().to_owned(),
            dry_run: pipeline.create.dry_run,
            shard: args.shard.map(|(i, n)| format!("{i}/{n}")),
            only_failed_from: args.only_failed_from.clone(),
        },
        inputs,
        steps,
        funnel,
        thresholds: Vec::new(),
        exit: 0,
        status: String::new(),
    };
    let mut data = report::collect(&wd, &manifest)?;
    manifest.thresholds = thresholds(&pipeline, &manifest.funnel, &data);
    let crossed: Vec<&ThresholdCheck> = manifest.thresholds.iter().filter(|t| t.crossed).collect();
    let rejected = manifest.funnel.rejected > 0 || manifest.funnel.create_failed > 0;
    (manifest.exit, manifest.status) = match (crossed.is_empty(), rejected) {
        (false, _) => (1, "threshold crossed".to_owned()),
        (true, true) => (1, "rejected".to_owned()),
        (true, false) => (0, "clean".to_owned()),
    };
    manifest.finished_at = now();
    // The report was collected before the outcome was known: it takes the outcome over.
    data.thresholds.clone_from(&manifest.thresholds);
    (data.exit, data.status, data.finished_at) = (manifest.exit, manifest.status.clone(), manifest.finished_at.clone());
    let written = report::write_all(&wd, &manifest, &data, &pipeline.report)?;
    manifest.write(&wd)?;
    if let Some(shared) = &wd.files {
        shared.publish_run(&wd.root, &run_id)?;
    }
    eprint!("{}", summary(&manifest, started.elapsed().as_secs_f64()));
    eprintln!("manifest: {}", Manifest::path(&wd, &run_id).display());
    for path in written {
        eprintln!("report: {}", path.display());
    }
    for t in &crossed {
        eprintln!("threshold crossed: {} is {} (limit {})", t.name, show(t.actual), show(t.limit));
    }
    Ok(if manifest.exit == 0 { ExitStatus::Clean } else { ExitStatus::Rejected })
}

fn stages(pipeline: &Pipeline) -> String {
    pipeline.stages.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" → ")
}

/// The accounts the run is limited to, from `--shard` or `--only-failed-from`.
fn filter(
    args: &RunOptions,
    pipeline: &Pipeline,
    wd: &Workdir,
    store: &dyn Store,
) -> Result<Option<AccountFilter>, Error> {
    let filter = match (args.shard, &args.only_failed_from) {
        (Some(_), Some(_)) => {
            return Err(Error::usage(
                "--shard and --only-failed-from cannot be combined",
                Some("run the shard's failures from its own run"),
            ));
        }
        (Some((index, count)), None) => Some(AccountFilter::Shard { index, count }),
        (None, Some(previous)) => Some(AccountFilter::keys(failed_in(wd, store, previous)?)),
        (None, None) => None,
    };
    if filter.is_some() && !pipeline.runs(Stage::Stage) && !pipeline.runs(Stage::Create) && !pipeline.runs(Stage::Push)
    {
        return Err(Error::usage(
            "--shard and --only-failed-from select accounts to stage or create; this pipeline only validates",
            None,
        ));
    }
    Ok(filter)
}

/// The accounts that failed in an earlier pipeline run: rejected at stage (other than
/// already imported), or whose latest create outcome failed.
fn failed_in(wd: &Workdir, store: &dyn Store, run_id: &str) -> Result<HashSet<(String, String)>, Error> {
    let path = Manifest::path(wd, run_id);
    if !path.is_file() {
        return Err(Error::usage(
            format!("{run_id} is not a finished pipeline run of {} (no {})", wd.root.display(), path.display()),
            Some("give a run id that `ferry run` printed, from the same work directory"),
        ));
    }
    let manifest = Manifest::read(&path)?;
    let mut keys = HashSet::new();
    let mut keyless = 0;
    for step in &manifest.steps {
        match (step.stage, &step.run_id) {
            (Stage::Create, Some(id)) => {
                keys.extend(store.failed_in_run(id, None)?.into_iter().map(|(s, e, _)| (s, e)));
            }
            // A push's failures are the accounts whose last answer was terminal (429s and
            // retried failures along the way are not).
            (Stage::Push, _) => {
                let mut last: std::collections::HashMap<(String, String), bool> = std::collections::HashMap::new();
                for row in report::read::outcomes(&wd.root.join(&step.dir).join("outcomes.parquet"))? {
                    if let (Some(s), Some(e)) = (row.supplier, row.external) {
                        last.insert((s, e), row.class.as_deref() == Some("terminal"));
                    }
                }
                keys.extend(last.into_iter().filter(|(_, terminal)| *terminal).map(|(k, _)| k));
            }
            _ => {
                for row in report::read::outcomes(&wd.root.join(&step.dir).join("outcomes.parquet"))? {
                    if row.status < 400 || row.code.as_deref() == Some(ALREADY_IMPORTED) {
                        continue;
                    }
                    match (row.supplier, row.external) {
                        (Some(s), Some(e)) => {
                            keys.insert((s, e));
                        }
                        _ => keyless += 1,
                    }
                }
            }
        }
    }
    eprintln!("{} accounts failed in run {run_id}: only they are processed", keys.len());
    if keyless > 0 {
        eprintln!(
            "{keyless} failed lines of run {run_id} have no import supplier and account number to select them \
             by: fix them in the source (the run's findings give their lines)"
        );
    }
    Ok(keys)
}

/// Creates the pending accounts of each supplier (those the filter admits), one create run
/// per supplier.
#[allow(
    clippy::too_many_arguments,
    reason = "the run's parts are handed down once here; bundling them is the session type's job"
)]
fn create_all(
    pipeline: &Pipeline,
    settings: &Settings,
    wd: &Workdir,
    store: &mut dyn Store,
    lock: &mut crate::workdir::WorkdirLock,
    filter: Option<&AccountFilter>,
    run_id: &str,
    steps: &mut Vec<Step>,
) -> Result<(), Error> {
    let options = &pipeline.create;
    let team = options.team.as_deref().expect("a pipeline with a create stage names its team");
    if options.create_team && !store.teams()?.iter().any(|t| t.name == team) {
        store.add_team(team)?;
        eprintln!("run {run_id}: added operations team {team:?} (create.create_team)");
    }
    for (supplier, count, accounts) in pending_by_supplier(store, options.suppliers.as_deref(), filter)? {
        if count == 0 {
            continue;
        }
        eprintln!("run {run_id}: create {count} pending accounts of {}", crate::text::escape(&supplier));
        let t = Instant::now();
        let job = Job {
            command: "create",
            supplier: &supplier,
            team,
            accounts,
            dry_run: options.dry_run,
            concurrency: options.concurrency as usize,
            parent: None,
        };
        let created = create(settings, wd, store, lock, &job)?;
        steps.push(Step {
            stage: Stage::Create,
            input: None,
            supplier: Some(supplier.clone()),
            dir: format!("runs/{}", created.run_id),
            run_id: Some(created.run_id),
            seconds: t.elapsed().as_secs_f64(),
            outcomes: created.counts.outcomes(),
        });
    }
    Ok(())
}

/// A supplier, how many of its accounts are pending, and which when the run's filter selects
/// some (`None`: every pending one).
type Pending = (String, usize, Option<Vec<String>>);

/// Per supplier (the listed ones, or every one): its pending accounts.
fn pending_by_supplier(
    store: &dyn Store,
    suppliers: Option<&[String]>,
    filter: Option<&AccountFilter>,
) -> Result<Vec<Pending>, Error> {
    let suppliers: Vec<String> = match suppliers {
        Some(list) => list.to_vec(),
        None => store.suppliers()?.into_iter().map(|s| s.code).collect(),
    };
    let mut out = Vec::with_capacity(suppliers.len());
    for supplier in suppliers {
        let pending = store.pending_versions(&supplier)?;
        let accounts: Option<Vec<String>> = filter.map(|f| {
            pending
                .iter()
                .filter(|p| f.admits(Some(&supplier), Some(&p.external_account_number), 0))
                .map(|p| p.external_account_number.clone())
                .collect()
        });
        let count = accounts.as_ref().map_or(pending.len(), Vec::len);
        out.push((supplier, count, accounts));
    }
    Ok(out)
}

/// The push stage: each supplier's pending accounts (of the filter) to the target API, one push
/// run each (`ferry push`). A push that stops (credentials, supplier not ongoing, outage) stops
/// the pipeline with its reason; what it sent is recorded, and running the pipeline again goes on.
fn push_all(
    pipeline: &Pipeline,
    settings: &Settings,
    wd: &Workdir,
    store: &mut dyn Store,
    filter: Option<&AccountFilter>,
    run_id: &str,
    steps: &mut Vec<Step>,
) -> Result<(), Error> {
    let options = &pipeline.push;
    let base_url = options.base_url.as_deref().expect("a pipeline with a push stage names its base_url");
    let key = crate::push::client::api_key(options.token_file.as_deref())?;
    let timeout = std::time::Duration::from_secs_f64(options.timeout);
    let client = crate::push::client::Client::new(
        base_url,
        key.as_deref(),
        options.insecure_http,
        options.ca_cert.as_deref(),
        timeout,
    )?;
    let operations: Vec<crate::push::classify::Operation> =
        options.operations.iter().filter_map(|o| crate::push::classify::Operation::parse(o)).collect();
    for (supplier, count, accounts) in pending_by_supplier(store, options.suppliers.as_deref(), filter)? {
        if count == 0 {
            continue;
        }
        eprintln!(
            "run {run_id}: push the pending accounts of {} to {}",
            crate::text::escape(&supplier),
            client.target()
        );
        let job = crate::push::run::Job {
            supplier: &supplier,
            team: options.team.as_deref(),
            operations: operations.clone(),
            dry_run: options.dry_run,
            concurrency: options.concurrency as usize,
            accounts,
            give_up_after: std::time::Duration::from_secs(options.give_up_after),
        };
        let t = Instant::now();
        let pushed = crate::push::run::push(settings, wd, store, &client, &job)?;
        let outcomes = pushed
            .outcomes
            .iter()
            .map(|(operation, status, outcome, n)| OutcomeCount {
                status: *status,
                outcome: format!("{operation} {outcome}"),
                count: *n as u64,
            })
            .collect();
        steps.push(Step {
            stage: Stage::Push,
            input: None,
            supplier: Some(supplier.clone()),
            dir: format!("runs/{}", pushed.run_id),
            run_id: Some(pushed.run_id.clone()),
            seconds: t.elapsed().as_secs_f64(),
            outcomes,
        });
        if let Some(why) = pushed.stopped {
            return Err(Error::stopped(
                format!("run {run_id}: the push of {} stopped: {why}", crate::text::escape(&supplier)),
                "what was sent is recorded; fix the cause and run the pipeline again to go on",
            ));
        }
    }
    Ok(())
}

fn input(path: &Path) -> Result<Input, Error> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    Ok(Input { path: path.display().to_string(), size, sha256: format!("{:x}", hasher.finalize()) })
}

/// The funnel from the steps' outcome counts.
pub fn funnel(steps: &[Step], dry_run: bool) -> Funnel {
    let mut f = Funnel::default();
    let mut invalid = 0;
    let mut already = 0;
    for step in steps {
        for o in &step.outcomes {
            match step.stage {
                Stage::Stage | Stage::Validate => {
                    f.read += o.count;
                    if o.outcome == FAILED_VALIDATION {
                        invalid += o.count;
                    }
                    if o.outcome == ALREADY_IMPORTED {
                        already += o.count;
                    }
                    if step.stage == Stage::Stage && (o.status == 200 || o.status == 201) {
                        f.staged += o.count;
                    }
                    if o.status >= 400 && o.outcome != ALREADY_IMPORTED {
                        f.rejected += o.count;
                    }
                }
                Stage::Create => {
                    let would = dry_run && o.outcome == crate::guide::Code::DryRunRolledBack.as_str();
                    if o.status == 201 || would {
                        f.created += o.count;
                    } else if o.status >= 400 {
                        f.create_failed += o.count;
                    }
                }
                // Outcomes named `<operation> <outcome>` (`create created`, `stage <code>`).
                Stage::Push => {
                    let create = o.outcome.starts_with("create ");
                    if o.outcome.ends_with(crate::push::run::ALREADY_IMPORTED) {
                        already += o.count;
                    } else if create && (o.outcome.contains("created") || o.outcome.contains("would import")) {
                        f.created += o.count;
                    } else if o.status >= 400 || o.status == 0 {
                        f.create_failed += o.count;
                    }
                }
            }
        }
    }
    f.valid = f.read - invalid;
    f.already_imported = already;
    f
}

fn thresholds(pipeline: &Pipeline, funnel: &Funnel, data: &report::Report) -> Vec<ThresholdCheck> {
    let mut out = Vec::new();
    if let Some(limit) = pipeline.thresholds.max_rejected_share {
        let actual = if funnel.read == 0 { 0.0 } else { funnel.rejected as f64 / funnel.read as f64 };
        out.push(ThresholdCheck { name: "max_rejected_share".to_owned(), limit, actual, crossed: actual > limit });
    }
    for (code, limit) in &pipeline.thresholds.max_count {
        let actual = data.findings.by_code.iter().find(|c| &c.code == code).map_or(0, |c| c.count);
        out.push(ThresholdCheck {
            name: format!("max_count.{code}"),
            limit: *limit as f64,
            actual: actual as f64,
            crossed: actual > *limit,
        });
    }
    out
}

fn show(x: f64) -> String {
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.4}") }
}

fn summary(m: &Manifest, seconds: f64) -> String {
    let f = &m.funnel;
    let mut out = format!(
        "run {} of pipeline {:?}: {} in {seconds:.2} s (exit {})\n",
        m.run_id, m.pipeline.name, m.status, m.exit
    );
    out.push_str(&format!(
        "  read {}  valid {}  staged {}  {} {}  rejected {}  already imported {}  create failed {}\n",
        f.read,
        f.valid,
        f.staged,
        if m.options.dry_run { "would create" } else { "created" },
        f.created,
        f.rejected,
        f.already_imported,
        f.create_failed
    ));
    for step in &m.steps {
        let what = step.input.as_deref().or(step.supplier.as_deref()).unwrap_or_default();
        out.push_str(&format!("  {:<8} {:>8.2} s  {what}\n", step.stage.as_str(), step.seconds));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(stage: Stage, outcomes: &[(u16, &str, u64)]) -> Step {
        Step {
            stage,
            input: None,
            supplier: None,
            run_id: None,
            dir: String::new(),
            seconds: 0.0,
            outcomes: outcomes
                .iter()
                .map(|(status, outcome, count)| OutcomeCount {
                    status: *status,
                    outcome: (*outcome).to_owned(),
                    count: *count,
                })
                .collect(),
        }
    }

    /// Read → valid → staged → created: an already imported account is read but neither rejected
    /// nor staged; a failed validation is rejected; a dry run's rolled-back accounts count as
    /// created (would have been), other create failures as failed.
    #[test]
    fn the_funnel_counts_each_account_once() {
        let steps = [
            step(
                Stage::Stage,
                &[
                    (201, "created", 90),
                    (200, "identical", 5),
                    (400, FAILED_VALIDATION, 3),
                    (400, ALREADY_IMPORTED, 2),
                    (400, crate::guide::Code::Skipped.as_str(), 1),
                ],
            ),
            step(Stage::Create, &[(201, "created", 80), (400, crate::guide::Code::TeamUnknown.as_str(), 15)]),
        ];
        let f = funnel(&steps, false);
        assert_eq!(
            (f.read, f.valid, f.staged, f.rejected, f.already_imported, f.created, f.create_failed),
            (101, 98, 95, 4, 2, 80, 15)
        );
        let dry = [step(
            Stage::Create,
            &[(400, crate::guide::Code::DryRunRolledBack.as_str(), 7), (400, "account_record_rejected", 1)],
        )];
        let f = funnel(&dry, true);
        assert_eq!((f.created, f.create_failed), (7, 1));
        let f = funnel(&dry, false);
        assert_eq!((f.created, f.create_failed), (0, 8), "without a dry run, a rolled-back code is a failure");
    }
}
