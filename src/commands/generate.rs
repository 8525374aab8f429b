//! `ferry generate`: write a synthetic dump and, optionally, its manifest of expected findings.

use std::io::Write;
use std::time::Instant;

use crate::cli::GenerateArgs;
use crate::error::{Error, ExitStatus};
use crate::generate::{GenerateOptions, create_output, generate};
use crate::schema::Schema;

pub(super) fn run(args: GenerateArgs) -> Result<ExitStatus, Error> {
    if !(0.0..=1.0).contains(&args.error_rate) {
        return Err(Error::usage(format!("--error-rate must be between 0 and 1, not {}", args.error_rate), None));
    }
    let pool = crate::engine::thread_pool(args.threads)?;
    let schema = Schema::builtin();
    let options = GenerateOptions { accounts: args.accounts, seed: args.seed, error_rate: args.error_rate };
    let started = Instant::now();
    let mut out = create_output(&args.out)?;
    let mut manifest = args.manifest.as_deref().map(create_output).transpose()?;
    let totals = pool.install(|| match manifest.as_mut() {
        Some(m) => generate(&schema, &options, &mut *out, Some(&mut **m)),
        None => generate(&schema, &options, &mut *out, None),
    })?;
    out.flush()?;
    drop(out);
    if let Some(mut m) = manifest {
        m.flush()?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {} accounts ({:.1} MB, {} with injected errors, {} expected findings) into {} in {secs:.2} s",
        totals.accounts,
        totals.bytes as f64 / 1e6,
        totals.with_errors,
        totals.expected,
        args.out.display()
    );
    Ok(ExitStatus::Clean)
}
