//! `ferry validate`: every rule over a dump; findings to Parquet and stdout, a summary.

use std::io::Write;
use std::time::Instant;

use crate::cli::{Emit, ValidateArgs};
use crate::error::{Error, Outcome};
use crate::findings::{self, Finding};
use crate::ingest::output::{PendingFile, writer_properties};
use crate::ingest::{DumpReader, IngestOptions, ingest};
use crate::rules::RuleContext;
use crate::validation::{InputScope, Tally, check_chunk};

pub fn run(args: ValidateArgs) -> Result<Outcome, Error> {
    let schema = super::load_schema(args.ingest.schema.as_deref())?;
    let pool = super::thread_pool(args.ingest.threads)?;
    let mut options = IngestOptions::for_threads(pool.current_num_threads());
    options.chunk_size = args.ingest.chunk_size.max(1);
    let size = fs_err::metadata(&args.dump)?.len();
    let reader = DumpReader::open(&args.dump, options.chunk_size)?;
    let consumed = reader.progress();
    let mut file = match &args.out {
        Some(dir) => {
            fs_err::create_dir_all(dir)?;
            let props = writer_properties(&schema, "findings");
            Some(PendingFile::create(dir.join("findings.parquet"), findings::arrow_schema(), props)?)
        }
        None => None,
    };
    let ctx = RuleContext::new(args.today, chrono_tz::Europe::Berlin);
    let mut scope = InputScope::new(&schema);
    let mut tally = Tally::default();
    let bar = super::byte_progress(size);
    let started = Instant::now();
    let stdout = std::io::stdout();
    pool.install(|| {
        ingest(
            &schema,
            reader,
            options,
            |out| check_chunk(&schema, &ctx, out),
            |wave| {
                let mut lock = stdout.lock();
                for mut out in wave {
                    scope.check(&schema, &mut out);
                    tally.add(&out);
                    if let Some(file) = file.as_mut().filter(|_| !out.findings.is_empty()) {
                        file.write(&findings::to_batch(&out.findings))?;
                    }
                    if args.emit == Emit::Findings {
                        emit(&mut lock, &out.findings)?;
                    }
                }
                bar.set_position(consumed.load(std::sync::atomic::Ordering::Relaxed));
                Ok(())
            },
        )
    })?;
    bar.finish_and_clear();
    if let Some(file) = file {
        file.commit()?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut summary = format!(
        "validated {} in {elapsed:.2} s ({:.1} MB/s): {}",
        args.dump.display(),
        size as f64 / 1e6 / elapsed.max(1e-9),
        tally.render(10)
    );
    if let Some(dir) = &args.out {
        summary.push_str(&format!("wrote {}\n", dir.join("findings.parquet").display()));
    }
    eprint!("{summary}");
    Ok(if tally.rejected_lines > 0 { Outcome::Rejected } else { Outcome::Clean })
}

/// One JSON object per finding, in line order.
fn emit(out: &mut impl Write, findings: &[Finding]) -> std::io::Result<()> {
    for f in findings {
        let value = serde_json::json!({
            "line": f.line,
            "import_supplier": f.import_supplier,
            "external_account_number": f.external_account_number,
            "attr": f.attr,
            "code": f.code,
            "severity": f.severity.as_str(),
            "detail": f.detail,
            "value": f.value,
        });
        serde_json::to_writer(&mut *out, &value)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
