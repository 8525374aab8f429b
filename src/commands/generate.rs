//! `ferry generate`: write a synthetic dump and, optionally, its manifest of expected findings.

use std::time::Instant;

use crate::cli::GenerateArgs;
use crate::error::{Error, ExitStatus};
use crate::generate::{GenerateOptions, generate_files};
use crate::schema::Schema;

pub(super) fn run(args: GenerateArgs) -> Result<ExitStatus, Error> {
    if !(0.0..=1.0).contains(&args.error_rate) {
        return Err(Error::usage(format!("--error-rate must be between 0 and 1, not {}", args.error_rate), None));
    }
    let options = GenerateOptions { accounts: args.accounts, seed: args.seed, error_rate: args.error_rate };
    let started = Instant::now();
    let totals = generate_files(&Schema::builtin(), &options, args.threads, &args.out, args.manifest.as_deref())?;
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
