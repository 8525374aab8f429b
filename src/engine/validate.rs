//! Validate: every rule over a dump, findings and outcomes to Parquet and stdout and a summary on
//! stderr; or over one account, its guide outcome.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::cli::Emit;
use crate::error::Error;
use crate::findings::{self, Finding};
use crate::ingest::output::{PendingFile, writer_properties};
use crate::ingest::{Chunk, arrow_schemas, flatten_chunk, ingest};
use crate::outcome::{self, chunk_outcomes};
use crate::rules::RuleContext;
use crate::schema::Schema;
use crate::settings::Settings;
use crate::validation::{InputScope, Tally, check_chunk};

/// Validates a dump: findings and outcomes to `out` (when given) and to stdout (as `emit`
/// says), a summary on stderr; returns the tally.
pub fn validate_dump(settings: &Settings, dump: &Path, out: Option<&Path>, emit: Emit) -> Result<Tally, Error> {
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
                outcome::OutcomesKind::Validate.writer_properties(schema),
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
            |_, out| {
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

/// The validate operation on one account: its JSON text in (pretty-printed is fine), the guide's
/// outcome out (200 with the normalised account, or 400 with every error); `None` when the text
/// holds no JSON object.
pub fn validate_account(settings: &Settings, text: &str) -> Option<outcome::Outcome> {
    outcomes_of_lines(settings, one_line(text)).into_iter().next()
}

/// The outcome of every line of `lines` (NDJSON, lines numbered from 1) that holds an account or
/// a finding, as one chunk of a dump.
fn outcomes_of_lines(settings: &Settings, lines: String) -> Vec<outcome::Outcome> {
    let (schema, ctx): (&Schema, &RuleContext) = (&settings.schema, &settings.rules);
    let chunk = Chunk::Lines { first_line: 1, bytes: lines.into_bytes() };
    let mut out = flatten_chunk(schema, &arrow_schemas(schema), &chunk);
    check_chunk(schema, ctx, &mut out);
    chunk_outcomes(schema, &out)
}

/// An account's JSON text as one dump line: JSON strings cannot hold raw line breaks, so a
/// pretty-printed object stays the same object with its breaks as spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The validate operation on a request body: as [`validate_account`], and a body that is not
/// UTF-8 or holds nothing is the guide's 400 with one `invalid_json` error, like any line that
/// is not an account.
pub fn validate_request(settings: &Settings, body: &[u8]) -> outcome::Outcome {
    validate_requests(settings, &[body]).pop().expect("one outcome per body")
}

/// [`validate_request`] for many bodies at once, as one chunk of a dump (one line each), so
/// that a server validating requests that arrive together pays the rules' fixed costs once.
/// Every rule looks at one account, so each body's outcome is the one it gets alone.
pub fn validate_requests(settings: &Settings, bodies: &[&[u8]]) -> Vec<outcome::Outcome> {
    let mut outcomes: Vec<Option<outcome::Outcome>> = vec![None; bodies.len()];
    let mut lines = String::new();
    let mut body_of_line = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        match std::str::from_utf8(body) {
            Ok(text) if !text.trim().is_empty() => {
                lines.push_str(&one_line(text));
                lines.push('\n');
                body_of_line.push(i);
            }
            Ok(_) => {}
            Err(e) => {
                outcomes[i] = Some(refused(format!("the request body is not UTF-8 (byte {})", e.valid_up_to() + 1)));
            }
        }
    }
    if !body_of_line.is_empty() {
        for outcome in outcomes_of_lines(settings, lines) {
            if let Some(&i) = usize::try_from(outcome.line).ok().and_then(|l| body_of_line.get(l.wrapping_sub(1))) {
                outcomes[i] = Some(outcome::Outcome { line: 1, ..outcome });
            }
        }
    }
    // An empty body, or a line that gave nothing (whitespace): no JSON.
    outcomes.into_iter().map(|o| o.unwrap_or_else(|| refused("the request body holds no JSON".to_owned()))).collect()
}

/// The guide's 400 for a request body that is no JSON at all.
fn refused(detail: String) -> outcome::Outcome {
    let finding = Finding {
        line: 1,
        import_supplier: None,
        external_account_number: None,
        attr: findings::NON_FIELD_ERRORS.to_owned(),
        code: findings::codes::INVALID_JSON.to_owned(),
        severity: crate::schema::Severity::Error,
        detail,
        value: None,
    };
    outcome::Outcome {
        line: 1,
        import_supplier: None,
        external_account_number: None,
        status: 400,
        body: outcome::failed_validation_body(&[finding]),
    }
}

/// One JSON object per line.
fn write_json_lines(out: &mut impl Write, values: impl Iterator<Item = serde_json::Value>) -> std::io::Result<()> {
    for value in values {
        serde_json::to_writer(&mut *out, &value)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_validated_together_get_what_each_gets_alone() {
        let settings = Settings::new(crate::settings::load_schema(None).unwrap(), None, None);
        let root = env!("CARGO_MANIFEST_DIR");
        let good = std::fs::read(format!("{root}/data/examples/account.json")).unwrap();
        let guide = std::fs::read(format!("{root}/data/examples/guide-account.json")).unwrap();
        let bodies: Vec<&[u8]> = vec![&guide, b"", &good, b"\xff{}", b"[1, 2]", &good, b"{\"a\": 1}\n{\"b\": 2}"];
        let together = validate_requests(&settings, &bodies);
        assert_eq!(together.len(), bodies.len());
        for (body, outcome) in bodies.iter().zip(&together) {
            let alone = validate_requests(&settings, &[body]).pop().unwrap();
            assert_eq!((outcome.status, &outcome.body, outcome.line), (alone.status, &alone.body, 1));
        }
        assert_eq!(together.iter().map(|o| o.status).collect::<Vec<_>>(), [400, 400, 200, 400, 400, 200, 400]);
        assert!(together[1].body.contains("holds no JSON"), "{}", together[1].body);
        assert!(together[3].body.contains("not UTF-8 (byte 1)"), "{}", together[3].body);
    }
}
