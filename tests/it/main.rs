//! The integration tests: the real `ferry` binary run on fixtures, outputs read back and
//! compared with snapshots. Run with `cargo test`.

mod cli;
mod create;
mod files;
mod flatten;
mod fuzz;
mod harness;
mod hostile;
mod invariance;
mod pg;
mod push;
mod rules;
mod run;
mod schema;
mod serve;
mod settings;
mod stage;
mod store;
mod validate;
