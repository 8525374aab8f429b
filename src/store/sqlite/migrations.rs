//! The store's schema, versioned: each step in its own transaction, counted in SQLite's
//! `user_version`.

use super::*;

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
    // 2: run fingerprints and commit times, the staged row of each version, and the state
    // machine of docs/operations.md enforced by the database itself; the audit is append-only.
    "
    ALTER TABLE runs ADD COLUMN fingerprint TEXT;
    ALTER TABLE runs ADD COLUMN committed_at TEXT;
    ALTER TABLE runs ADD COLUMN args TEXT;
    ALTER TABLE runs ADD COLUMN parent TEXT REFERENCES runs(id);
    ALTER TABLE staged_versions ADD COLUMN account_row INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX staged_versions_by_run ON staged_versions (run_id);
    CREATE INDEX audit_by_run ON audit (run_id);
    CREATE TRIGGER import_process_starts_staged BEFORE INSERT ON import_processes
    WHEN NEW.status <> 'STAGED'
    BEGIN SELECT RAISE(ABORT, 'an import process starts STAGED'); END;
    CREATE TRIGGER import_process_transitions BEFORE UPDATE OF status ON import_processes
    WHEN NOT (
        (OLD.status = 'STAGED' AND NEW.status IN ('STAGED', 'SKIPPED', 'IMPORTED'))
        OR (OLD.status = 'SKIPPED' AND NEW.status = 'STAGED')
    )
    BEGIN SELECT RAISE(ABORT, 'import process transition not allowed'); END;
    CREATE TRIGGER import_process_versions BEFORE UPDATE OF current_version ON import_processes
    WHEN OLD.current_version IS NOT NEW.current_version AND (OLD.status <> 'STAGED' OR NEW.status <> 'STAGED')
    BEGIN SELECT RAISE(ABORT, 'only a STAGED import process takes a new staged version'); END;
    CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
    CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
    ",
    // 3: the creations in flight. A chunk's intents commit before its transaction begins and
    // are deleted by it; intents found later belong to an interrupted chunk, whose attempts
    // the next create records in the audit before it retries them.
    "
    CREATE TABLE create_intents (
        import_supplier         TEXT NOT NULL,
        external_account_number TEXT NOT NULL,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        attempt                 INTEGER NOT NULL,
        line                    INTEGER,
        started_at              TEXT NOT NULL,
        PRIMARY KEY (import_supplier, external_account_number)
    ) WITHOUT ROWID;
    ",
    // 4: what damage to staged files is checked against: each published file's length and
    // CRC-32, and each staged version's hash of its typed rows (as create reads them back).
    // Versions and files staged before this step have none, and are read unchecked.
    "
    ALTER TABLE staged_versions ADD COLUMN rows_hash TEXT;
    CREATE TABLE staged_files (
        location    TEXT NOT NULL,
        name        TEXT NOT NULL,
        bytes       INTEGER NOT NULL,
        crc32       INTEGER NOT NULL,
        PRIMARY KEY (location, name)
    ) WITHOUT ROWID;
    ",
    // 5: the API tokens of `ferry serve`: a name, a role, and the SHA-256 of the key (the key
    // itself is shown once, when it is made, and never stored).
    "
    CREATE TABLE api_tokens (
        name        TEXT PRIMARY KEY,
        role        TEXT NOT NULL CHECK (role IN ('viewer', 'importer')),
        key_sha256  TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    ",
    // 6: which request of `ferry serve`, under which token, an audit row answered (and a create
    // in flight was sent by); empty for the CLI's rows.
    "
    ALTER TABLE audit ADD COLUMN request_id TEXT;
    ALTER TABLE audit ADD COLUMN token_name TEXT;
    ALTER TABLE create_intents ADD COLUMN request_id TEXT;
    ALTER TABLE create_intents ADD COLUMN token_name TEXT;
    ",
    // 7: `ferry push`. The audit takes the push operations and what each attempt sent (the
    // staged version, the hash of the request body), how long it took and how it was classified;
    // SQLite cannot change a CHECK, so the table is rebuilt with its ids. The creates a push
    // has sent and not yet recorded an answer for (`push_intents`, committed before the
    // request goes out), and the account numbers a remote API gave (`remote_accounts`), both
    // per target API.
    "
    DROP TRIGGER audit_is_append_only_update;
    DROP TRIGGER audit_is_append_only_delete;
    CREATE TABLE audit_v7 (
        id                      INTEGER PRIMARY KEY,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        operation               TEXT NOT NULL CHECK (operation IN
            ('validate', 'stage', 'create', 'push_validate', 'push_stage', 'push_create')),
        attempt                 INTEGER NOT NULL,
        import_supplier         TEXT,
        external_account_number TEXT,
        line                    INTEGER,
        status_code             INTEGER NOT NULL,
        error_code              TEXT,
        body                    TEXT NOT NULL,
        kraken_account_number   TEXT,
        started_at              TEXT NOT NULL,
        finished_at             TEXT NOT NULL,
        request_id              TEXT,
        token_name              TEXT,
        staged_version          INTEGER,
        payload_hash            TEXT,
        latency_ms              INTEGER,
        class                   TEXT
    );
    INSERT INTO audit_v7 (id, run_id, operation, attempt, import_supplier, external_account_number, line,
        status_code, error_code, body, kraken_account_number, started_at, finished_at, request_id, token_name)
    SELECT id, run_id, operation, attempt, import_supplier, external_account_number, line,
        status_code, error_code, body, kraken_account_number, started_at, finished_at, request_id, token_name
    FROM audit;
    DROP TABLE audit;
    ALTER TABLE audit_v7 RENAME TO audit;
    CREATE INDEX audit_by_process ON audit (import_supplier, external_account_number, operation);
    CREATE INDEX audit_by_run ON audit (run_id);
    CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
    CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
    CREATE TABLE push_intents (
        target                  TEXT NOT NULL,
        import_supplier         TEXT NOT NULL,
        external_account_number TEXT NOT NULL,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        attempt                 INTEGER NOT NULL,
        request_id              TEXT NOT NULL,
        staged_version          INTEGER,
        payload_hash            TEXT NOT NULL,
        line                    INTEGER,
        started_at              TEXT NOT NULL,
        PRIMARY KEY (target, import_supplier, external_account_number)
    ) WITHOUT ROWID;
    CREATE TABLE remote_accounts (
        target                  TEXT NOT NULL,
        import_supplier         TEXT NOT NULL,
        external_account_number TEXT NOT NULL,
        kraken_account_number   TEXT NOT NULL,
        run_id                  TEXT NOT NULL REFERENCES runs(id),
        recorded_at             TEXT NOT NULL,
        PRIMARY KEY (target, import_supplier, external_account_number)
    ) WITHOUT ROWID;
    ",
    // 8: the digest of the line each staged version was made from, so that a re-stage of an
    // unchanged line need not hash its account again (issue 15). Older versions have none.
    "
    ALTER TABLE staged_versions ADD COLUMN line_hash TEXT;
    ",
];

impl SqliteStore {
    pub(super) fn migrate(&mut self) -> Result<(), crate::error::Error> {
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
        let err = |source: rusqlite::Error| StoreError { path: path.clone(), error: source.into() };
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction().map_err(err)?;
            tx.execute_batch(step).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(err)?;
            tx.commit().map_err(err)?;
            self.migrated = true;
        }
        Ok(())
    }

    /// The schema version of the open store.
    pub fn version(&self) -> Result<usize, StoreError> {
        let v: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.err(e))?;
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }
}
