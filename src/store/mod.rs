//! The store: the one mutable thing in a work directory (`<workdir>/ferry.db`).
//!
//! It holds import suppliers and their migration status, operations teams, import processes
//! and their staged versions, runs, and the audit table (spec/operations.md). Everything else
//! ferry writes is immutable files. The [`Store`] trait is what the commands use, so that
//! another database (PostgreSQL) can serve it when a migration outgrows one machine;
//! [`sqlite::SqliteStore`] is the embedded default, created on first use.

pub mod sqlite;

use std::fmt;

/// An import supplier's migration status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationStatus {
    Ongoing,
    Paused,
    Complete,
}

impl MigrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Ongoing => "ONGOING",
            MigrationStatus::Paused => "PAUSED",
            MigrationStatus::Complete => "COMPLETE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ONGOING" => Some(MigrationStatus::Ongoing),
            "PAUSED" => Some(MigrationStatus::Paused),
            "COMPLETE" => Some(MigrationStatus::Complete),
            _ => None,
        }
    }
}

impl fmt::Display for MigrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An import supplier as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supplier {
    pub code: String,
    pub status: MigrationStatus,
    pub updated_at: String,
}

/// An operations team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub name: String,
    pub created_at: String,
}

/// What the store failed at, with the database's path.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("store {path}: {source}")]
#[diagnostic(
    code(ferry::store),
    help("is another ferry process using this work directory, or is the file not a ferry store?")
)]
pub struct StoreError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

/// The operations of the store, for every backend.
pub trait Store {
    /// Every import supplier, by code.
    fn suppliers(&self) -> Result<Vec<Supplier>, StoreError>;
    /// Sets a supplier's migration status (the supplier is created if it is new); returns
    /// its previous status.
    fn set_supplier_status(
        &mut self,
        code: &str,
        status: MigrationStatus,
    ) -> Result<Option<MigrationStatus>, StoreError>;
    /// Every operations team, by name.
    fn teams(&self) -> Result<Vec<Team>, StoreError>;
    /// Adds a team; false when it already exists.
    fn add_team(&mut self, name: &str) -> Result<bool, StoreError>;
}
