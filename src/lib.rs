//! ferry: bulk account migration onto a Kraken-style platform.
//!
//! The data flow, top to bottom:
//!
//! ```text
//! front ends      cli + commands/   parse arguments, resolve settings::Settings once, call the engine, print
//!                 serve/ the HTTP front end (one writer thread batches stages and creates);
//!                 push: next
//! engine/         the guide's operations: validate (one account, a dump), stage, create,
//!                 reprocess, status, list, and pipeline runs (pipeline/: the file, manifest)
//!   dump.ndjson[.gz|.zst]
//!   → ingest::reader    chunks of whole lines, with line numbers (a read-ahead thread)
//!   → ingest::flatten   schema-driven streaming deserialiser, chunks in parallel (rayon):
//!                       one Arrow RecordBatch per table, type problems as findings
//!   → validation, rules field rules column-wise, identifiers/ checks, cross-field rules,
//!                       uniqueness across the dump
//!   → outcome           the guide's 200/400 per account (validate)
//!   → stage/            stage decisions against the store, typed staged Parquet, payload hashes
//!   → store/            the Store trait; sqlite/ the embedded backend (runs, processes, the
//!                       stage transaction, the create writer); pg/ the shared PostgreSQL one
//!                       (schema, slots); records/ the account records
//!   → engine::runs      every run ends with its audit rows in runs/<id>/outcomes.parquet
//!   → report/           the data-quality report of a pipeline run (html, json, md)
//! ```
//!
//! [`schema`] drives everything: `schemas/account.toml` declares every table, field and rule.
//! [`guide`] builds every status, guide-level code and body. [`settings`] holds the defaults
//! (timezone, chunk size); [`clock`] the time; [`text`] control characters (refused, escaped);
//! [`workdir`] the work directory, its confined paths, its lock and the failpoints of the crash
//! tests. [`generate`] makes synthetic dumps of realistic shape, with a manifest of the findings
//! its injected errors must produce. [`identifiers`] holds the identifier checks, each agreeing
//! with its reference implementation (docs/identifiers.md).
//!
//! Failures come in four kinds: bad data is a [`findings::Finding`], never an `Err`; config
//! and usage mistakes are [`error::Error`] diagnostics (exit 2); I/O errors name their path;
//! damage to what ferry wrote (the store, staged files) is `Error::Damaged` (exit 2), never a
//! finding and never trusted.

pub mod cli;
pub mod clock;
pub mod collections;
pub mod commands;
pub mod diagnostics;
pub mod engine;
pub mod error;
pub mod files;
pub mod findings;
pub mod generate;
pub mod guide;
pub mod identifiers;
pub mod ingest;
pub mod outcome;
pub mod pipeline;
pub mod push;
pub mod report;
pub mod rules;
pub mod schema;
pub mod serve;
pub mod settings;
pub mod stage;
pub mod store;
pub mod text;
pub mod validation;
pub mod workdir;
