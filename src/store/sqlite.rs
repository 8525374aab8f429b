//! The embedded store: SQLite (bundled) in WAL mode with foreign keys on.
//!
//! The schema is created and upgraded by [`MIGRATIONS`], applied in order, each in its own
//! transaction, and counted in SQLite's `user_version`; opening a store written by a newer
//! ferry fails instead of guessing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{MigrationStatus, Store, StoreError, Supplier, Team};

/// The store's schema, one step per version. Never edit a step that has shipped: add one.
pub const MIGRATIONS: &[&str] = &[
    // 1: suppliers, teams, import processes, staged versions, runs and the audit table.
    "
    CREATE TABLE import_suppliers (
        code        TEXT PRIMARY KEY,
        status      TEXT NOT NULL CHECK (status IN ('ONGOING', 'PAUSED', 'COMPLETE')),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE operations_teams (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        command     TEXT NOT NULL,
        pid         INTEGER NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        status      TEXT
    );
    CREATE TABLE import_processes (
        import_supplier         TEXT NOT NULL REFERENCES import_suppliers(code),
        external_account_number TEXT NOT NULL,
        status                  TEXT NOT NULL CHECK (status IN ('STAGED', 'SKIPPED', 'IMPORTED')),
        current_version         INTEGER,
        skip_reason             TEXT,
        kraken_account_number   TEXT UNIQUE,
        account_created_at      TEXT,
        created_at              TEXT NOT NULL,
        updated_at              TEXT NOT NULL,
        PRIMARY KEY (import_supplier, external_account_number)
    );
    CREATE TABLE staged_versions (
        id                      INTEGER PRIMARY KEY,
        import_supplier         TEXT NOT NULL,
        external_account_number TEXT NOT NULL,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        location                TEXT NOT NULL,
        payload_hash            TEXT NOT NULL,
        created_at              TEXT NOT NULL,
        FOREIGN KEY (import_supplier, external_account_number)
            REFERENCES import_processes(import_supplier, external_account_number)
    );
    CREATE TABLE audit (
        id                      INTEGER PRIMARY KEY,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        operation               TEXT NOT NULL CHECK (operation IN ('validate', 'stage', 'create')),
        attempt                 INTEGER NOT NULL,
        import_supplier         TEXT,
        external_account_number TEXT,
        line                    INTEGER,
        status_code             INTEGER NOT NULL,
        error_code              TEXT,
        body                    TEXT NOT NULL,
        kraken_account_number   TEXT,
        started_at              TEXT NOT NULL,
        finished_at             TEXT NOT NULL
    );
    CREATE INDEX audit_by_process ON audit (import_supplier, external_account_number, operation);
    ",
];

/// The embedded store of one work directory.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens `<workdir>/ferry.db`, creating the directory and the store on first use and
    /// applying any pending migrations.
    pub fn open(workdir: &Path) -> Result<Self, crate::error::Error> {
        fs_err::create_dir_all(workdir)?;
        let path = workdir.join("ferry.db");
        let err = |source| StoreError { path: path.display().to_string(), source };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        let mut store = Self { conn, path };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError { path: self.path.display().to_string(), source }
    }

    fn migrate(&mut self) -> Result<(), crate::error::Error> {
        let version = self.version()?;
        if version > MIGRATIONS.len() {
            return Err(crate::error::Error::usage(
                format!(
                    "{} was written by a newer ferry (schema version {version}; this one knows {})",
                    self.path.display(),
                    MIGRATIONS.len()
                ),
                Some("upgrade ferry, or use another --workdir"),
            ));
        }
        let path = self.path.display().to_string();
        let err = |source| StoreError { path: path.clone(), source };
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction().map_err(err)?;
            tx.execute_batch(step).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    /// The schema version of the open store.
    pub fn version(&self) -> Result<usize, StoreError> {
        let v: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.err(e))?;
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store for SqliteStore {
    fn suppliers(&self) -> Result<Vec<Supplier>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT code, status, updated_at FROM import_suppliers ORDER BY code")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let status: String = r.get(1)?;
                Ok(Supplier {
                    code: r.get(0)?,
                    status: MigrationStatus::parse(&status).unwrap_or(MigrationStatus::Ongoing),
                    updated_at: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn set_supplier_status(
        &mut self,
        code: &str,
        status: MigrationStatus,
    ) -> Result<Option<MigrationStatus>, StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let before: Option<String> = tx
            .query_row("SELECT status FROM import_suppliers WHERE code = ?1", params![code], |r| r.get(0))
            .optional()
            .map_err(err)?;
        let t = now();
        tx.execute(
            "INSERT INTO import_suppliers (code, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (code) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
            params![code, status.as_str(), t],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(before.as_deref().and_then(MigrationStatus::parse))
    }

    fn teams(&self) -> Result<Vec<Team>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, created_at FROM operations_teams ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok(Team { name: r.get(0)?, created_at: r.get(1)? })).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn add_team(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT INTO operations_teams (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_migrated_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.version().unwrap(), MIGRATIONS.len());
        assert_eq!(store.set_supplier_status("TENTACLE_ENERGY", MigrationStatus::Paused).unwrap(), None);
        assert_eq!(
            store.set_supplier_status("TENTACLE_ENERGY", MigrationStatus::Ongoing).unwrap(),
            Some(MigrationStatus::Paused)
        );
        assert!(store.add_team("A").unwrap());
        assert!(!store.add_team("A").unwrap(), "adding a team twice is a no-op");
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.suppliers().unwrap()[0].status, MigrationStatus::Ongoing);
        assert_eq!(store.teams().unwrap().len(), 1);
    }

    #[test]
    fn a_store_from_a_newer_ferry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("ferry.db")).unwrap();
        conn.pragma_update(None, "user_version", (MIGRATIONS.len() + 1) as i64).unwrap();
        drop(conn);
        assert!(SqliteStore::open(dir.path()).is_err());
    }
}
