//! `ferry generate`: deterministic synthetic dumps of the guide's account shape.
//!
//! Account `i` of seed `s` is built from its own random stream (ChaCha8 seeded from `s` and
//! `i`), so accounts are generated in parallel and the file is the same for any thread count.
//! A share of accounts gets injected errors ([`inject`]); each expected finding goes to the
//! manifest with its line, attr, code, severity and the stage that reports it.

pub mod account;
pub mod inject;
mod supply;

use std::io::{self, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::findings::NON_FIELD_ERRORS;
use crate::schema::Schema;
pub use inject::Stage;

/// A finding the generated dump must produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    pub line: u64,
    pub attr: String,
    pub code: String,
    pub severity: String,
    pub stage: String,
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    pub accounts: u64,
    pub seed: u64,
    /// Share of accounts with injected errors, 0 to 1.
    pub error_rate: f64,
}

/// Totals of a generated dump.
#[derive(Debug, Default, Clone, Copy)]
pub struct Generated {
    pub accounts: u64,
    pub bytes: u64,
    pub with_errors: u64,
    pub expected: u64,
}

/// Accounts generated per parallel block.
const BLOCK: u64 = 2048;

fn stream(seed: u64, index: u64) -> ChaCha8Rng {
    // splitmix64 of the pair, so that neighbouring seeds and indices give unrelated streams.
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

/// Line `index + 1` of the dump and the findings it must produce.
pub fn account_line(schema: &Schema, options: &GenerateOptions, index: u64) -> (Vec<u8>, Vec<Expected>) {
    let mut rng = stream(options.seed, index);
    let mut built = account::build(&mut rng, index);
    let line = index + 1;
    let expected = |attr: String, code: &str, stage: Stage| Expected {
        line,
        attr,
        code: code.to_owned(),
        severity: schema.severity(code).as_str().to_owned(),
        stage: stage.as_str().to_owned(),
    };
    let faulty = options.error_rate > 0.0 && rng.random_bool(options.error_rate.min(1.0));
    if !faulty {
        return (serde_json::to_vec(&built.account).expect("a Value serialises"), Vec::new());
    }
    match inject::inject(&mut rng, &mut built) {
        inject::Injection::Changed(found) => {
            let bytes = serde_json::to_vec(&built.account).expect("a Value serialises");
            (bytes, found.into_iter().map(|f| expected(f.attr, f.code, f.stage)).collect())
        }
        inject::Injection::Truncate(at) => {
            let mut bytes = serde_json::to_vec(&built.account).expect("a Value serialises");
            bytes.truncate(((bytes.len() as f64 * at) as usize).clamp(1, bytes.len() - 1));
            (bytes, vec![expected(NON_FIELD_ERRORS.to_owned(), "invalid_json", Stage::Flatten)])
        }
    }
}

/// Generates the dump into `out` and the expected findings into `manifest`, in line order.
pub fn generate(
    schema: &Schema,
    options: &GenerateOptions,
    out: &mut (dyn Write + Send),
    mut manifest: Option<&mut (dyn Write + Send)>,
) -> io::Result<Generated> {
    let mut totals = Generated::default();
    let make = |start: u64| -> Vec<(Vec<u8>, Vec<Expected>)> {
        let end = (start + BLOCK).min(options.accounts);
        (start..end).into_par_iter().map(|i| account_line(schema, options, i)).collect()
    };
    let mut write = |block: Vec<(Vec<u8>, Vec<Expected>)>| -> io::Result<()> {
        for (line, expected) in block {
            out.write_all(&line)?;
            out.write_all(b"\n")?;
            totals.accounts += 1;
            totals.bytes += line.len() as u64 + 1;
            if !expected.is_empty() {
                totals.with_errors += 1;
                totals.expected += expected.len() as u64;
            }
            if let Some(m) = manifest.as_mut() {
                for e in &expected {
                    serde_json::to_writer(&mut *m, e)?;
                    m.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    };
    let mut start = 0;
    let mut pending = make(start);
    while !pending.is_empty() {
        start += BLOCK;
        let next_start = start;
        let (written, next) = rayon::join(
            || write(pending),
            || if next_start < options.accounts { make(next_start) } else { Vec::new() },
        );
        written?;
        pending = next;
    }
    Ok(totals)
}

/// Generates into the files `out` and `manifest` (by extension: plain, .gz or .zst) on a pool of
/// `threads` workers (all cores when `None`), and finishes the files.
pub fn generate_files(
    schema: &Schema,
    options: &GenerateOptions,
    threads: Option<usize>,
    out: &Path,
    manifest: Option<&Path>,
) -> Result<Generated, crate::error::Error> {
    let pool = crate::engine::thread_pool(threads)?;
    let mut out = create_output(out)?;
    let mut manifest = manifest.map(create_output).transpose()?;
    let totals = pool.install(|| match manifest.as_mut() {
        Some(m) => generate(schema, options, &mut *out, Some(&mut **m)),
        None => generate(schema, options, &mut *out, None),
    })?;
    out.flush()?;
    drop(out);
    if let Some(mut m) = manifest {
        m.flush()?;
    }
    Ok(totals)
}

/// A writer for `path`, compressed by extension (.gz, .zst).
pub fn create_output(path: &Path) -> io::Result<Box<dyn Write + Send>> {
    let file = io::BufWriter::with_capacity(1 << 20, fs_err::File::create(path)?);
    Ok(match crate::ingest::reader::Compression::from_path(path) {
        crate::ingest::reader::Compression::None => Box::new(file),
        crate::ingest::reader::Compression::Gzip => {
            Box::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()))
        }
        crate::ingest::reader::Compression::Zstd => Box::new(zstd::stream::write::Encoder::new(file, 3)?.auto_finish()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_line_and_different_seeds_differ() {
        let schema = Schema::builtin();
        let o = GenerateOptions { accounts: 10, seed: 7, error_rate: 0.5 };
        assert_eq!(account_line(&schema, &o, 3), account_line(&schema, &o, 3));
        let other = GenerateOptions { seed: 8, ..o };
        assert_ne!(account_line(&schema, &o, 3).0, account_line(&schema, &other, 3).0);
    }
}
