//! The stage transaction: a run's staged versions and audit rows, written while the dump is
//! read and committed once its files are durable.

use super::*;

impl SqliteStore {
    pub(super) fn stage_in(
        tx: &Connection,
        last_version: &mut i64,
        run_id: &str,
        StageRows { versions, seen, audit }: &StageRows,
    ) -> rusqlite::Result<()> {
        let t = now();
        let mut supplier = tx.prepare_cached(
            "INSERT INTO import_suppliers (code, status, created_at, updated_at) VALUES (?1, 'ONGOING', ?2, ?2)
             ON CONFLICT (code) DO NOTHING",
        )?;
        // One upsert per process, pointing at the version inserted next (its id chosen here,
        // inside the write transaction). Updating a SKIPPED or IMPORTED process would be
        // refused by the state machine's triggers.
        let mut process = tx.prepare_cached(
            "INSERT INTO import_processes (import_supplier, external_account_number, status, current_version,
                 created_at, updated_at)
             VALUES (?1, ?2, 'STAGED', ?3, ?4, ?4)
             ON CONFLICT (import_supplier, external_account_number) DO UPDATE
             SET status = 'STAGED', current_version = excluded.current_version, updated_at = excluded.updated_at",
        )?;
        let mut version = tx.prepare_cached(
            "INSERT INTO staged_versions (id, import_supplier, external_account_number, run_id, location, account_row,
                 payload_hash, created_at, rows_hash, line_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut suppliers_seen = std::collections::HashSet::new();
        for v in versions {
            if suppliers_seen.insert(v.import_supplier.as_str()) {
                supplier.execute(params![v.import_supplier, t])?;
            }
            *last_version += 1;
            process.execute(params![v.import_supplier, v.external_account_number, *last_version, t])?;
            version.execute(params![
                *last_version,
                v.import_supplier,
                v.external_account_number,
                run_id,
                v.location,
                v.account_row as i64,
                v.payload_hash,
                t,
                v.rows_hash,
                v.line_hash
            ])?;
        }
        if !seen.is_empty() {
            let mut line = tx.prepare_cached(
                "UPDATE staged_versions SET line_hash = ?3
                 WHERE id = (SELECT current_version FROM import_processes
                             WHERE import_supplier = ?1 AND external_account_number = ?2)
                   AND payload_hash = ?4",
            )?;
            for s in seen {
                line.execute(params![s.import_supplier, s.external_account_number, s.line_hash, s.payload_hash])?;
            }
        }
        for a in audit {
            insert_audit(tx, a)?;
        }
        Ok(())
    }
}
