//! `ferry validate`: every rule over a dump (or one account); findings and outcomes to Parquet
//! and stdout, a summary on stderr.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::cli::{Emit, ValidateArgs};
use crate::error::{Error, ExitStatus};
use crate::findings::{self, Finding};
use crate::ingest::output::{PendingFile, writer_properties};
use crate::ingest::{Chunk, arrow_schemas, flatten_chunk, ingest};
use crate::outcome::{self, chunk_outcomes};
use crate::rules::RuleContext;
use crate::schema::Schema;
use crate::settings::Settings;
use crate::validation::{InputScope, Tally, check_chunk};

pub fn run(args: ValidateArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.ingest.schema.as_deref())?;
    let settings = Settings::new(schema, args.reference.today, args.reference.timezone)
        .with_ingest(args.ingest.threads, args.ingest.chunk_size);
    if let Some(account) = &args.account {
        return one_account(&settings.schema, &settings.rules, account);
    }
    let dump = args.dump.as_deref().expect("clap requires a dump without --account");
    let tally = validate_dump(&settings, dump, args.out.as_deref(), args.emit)?;
    Ok(if tally.rejected_lines > 0 { ExitStatus::Rejected } else { ExitStatus::Clean })
}

/// Validates a dump: findings and outcomes to `out` (when given) and to stdout (as `emit`
/// says), a summary on stderr; returns the tally.
pub(super) fn validate_dump(settings: &Settings, dump: &Path, out: Option<&Path>, emit: Emit) -> Result<Tally, Error> {
    let (schema, ctx) = (&settings.schema, &settings.rules);
    let super::DumpInput { pool, options, reader, size } = super::DumpInput::open(settings, dump)?;
    let consumed = reader.progress();
    let mut files = match out {
        Some(dir) => {
            fs_err::create_dir_all(dir)?;
            let f = PendingFile::create(
                dir.join("findings.parquet"),
                findings::arrow_schema(),
                writer_properties(schema, "findings"),
            )?;
            let o = PendingFile::create(
                dir.join("outcomes.parquet"),
                outcome::arrow_schema(),
                writer_properties(schema, "outcomes"),
            )?;
            Some((f, o))
        }
        None => None,
    };
    let want_outcomes = files.is_some() || emit == Emit::Outcomes;
    let mut scope = InputScope::new(schema);
    let mut tally = Tally::default();
    let bar = super::byte_progress(size);
    let started = Instant::now();
    let stdout = std::io::stdout();
    pool.install(|| {
        ingest(
            schema,
            reader,
            options,
            |out| {
                check_chunk(schema, ctx, out);
                if want_outcomes { chunk_outcomes(schema, out) } else { Vec::new() }
            },
            |wave| {
                let mut lock = stdout.lock();
                for (mut out, mut outcomes) in wave {
                    if scope.check(schema, &mut out) && want_outcomes {
                        outcomes = chunk_outcomes(schema, &out);
                    }
                    tally.add(&out);
                    if let Some((f, o)) = files.as_mut() {
                        if !out.findings.is_empty() {
                            f.write(&findings::to_batch(&out.findings))?;
                        }
                        if !outcomes.is_empty() {
                            o.write(&outcome::to_batch(&outcomes))?;
                        }
                    }
                    match emit {
                        Emit::Findings => write_json_lines(&mut lock, out.findings.iter().map(Finding::to_json))?,
                        Emit::Outcomes => write_json_lines(&mut lock, outcomes.iter().map(outcome::Outcome::to_json))?,
                        Emit::None => {}
                    }
                }
                bar.set_position(consumed.load(std::sync::atomic::Ordering::Relaxed));
                Ok(())
            },
        )
    })?;
    bar.finish_and_clear();
    if let Some((f, o)) = files {
        f.commit()?;
        o.commit()?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut summary = format!(
        "validated {} in {elapsed:.2} s ({:.1} MB/s): {}",
        dump.display(),
        size as f64 / 1e6 / elapsed.max(1e-9),
        tally.render(10)
    );
    if let Some(dir) = out {
        summary.push_str(&format!("wrote {} and outcomes.parquet\n", dir.join("findings.parquet").display()));
    }
    eprint!("{summary}");
    Ok(tally)
}

/// The validate endpoint on the command line: one JSON object in, the guide's body out.
fn one_account(schema: &Schema, ctx: &RuleContext, path: &Path) -> Result<ExitStatus, Error> {
    let text = fs_err::read_to_string(path)?;
    // JSON strings cannot hold raw newlines, so a pretty-printed object becomes one line.
    let line: String = text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
    let chunk = Chunk::Lines { first_line: 1, bytes: line.into_bytes() };
    let mut out = flatten_chunk(schema, &arrow_schemas(schema), &chunk);
    check_chunk(schema, ctx, &mut out);
    let Some(result) = chunk_outcomes(schema, &out).into_iter().next() else {
        return Err(Error::usage(
            format!("{} holds no JSON object", path.display()),
            Some("the file must hold one account object"),
        ));
    };
    let status = if result.status == 200 { crate::guide::Status::Ok } else { crate::guide::Status::BadRequest };
    let value: serde_json::Value = serde_json::from_str(&result.body).expect("bodies are JSON");
    let body = serde_json::to_string_pretty(&value).expect("a Value serialises");
    println!("{body}");
    eprintln!("{}", status.line());
    Ok(if result.status == 200 { ExitStatus::Clean } else { ExitStatus::Rejected })
}

/// One JSON object per line.
fn write_json_lines(out: &mut impl Write, values: impl Iterator<Item = serde_json::Value>) -> std::io::Result<()> {
    for value in values {
        serde_json::to_writer(&mut *out, &value)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
