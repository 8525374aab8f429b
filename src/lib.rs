//! ferry: bulk account migration onto a Kraken-style platform.
//!
//! The data flow, as far as it is built:
//!
//! ```text
//! dump.ndjson[.gz|.zst]
//!   → ingest::reader   chunks of whole lines, with line numbers
//!   → ingest::flatten  schema-driven streaming deserialiser, chunks in parallel (rayon):
//!                      one Arrow RecordBatch per table, type problems as findings
//!   → ingest::output   one Parquet file per table, plus findings.parquet
//! ```
//!
//! [`schema`] drives everything: `schemas/account.toml` declares every table, field and rule.
//! [`generate`] makes synthetic dumps of realistic shape, with a manifest of the findings
//! its injected errors must produce. [`identifiers`] holds the German market's check-digit
//! algorithms.
//!
//! Failures come in three kinds: bad data is a [`findings::Finding`], never an `Err`; config
//! and usage mistakes are [`error::Error`] diagnostics (exit 2); I/O errors name their path.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod diagnostics;
pub mod engine;
pub mod error;
pub mod findings;
pub mod generate;
pub mod guide;
pub mod identifiers;
pub mod ingest;
pub mod outcome;
pub mod pipeline;
pub mod report;
pub mod rules;
pub mod schema;
pub mod settings;
pub mod stage;
pub mod store;
pub mod validation;
pub mod workdir;
