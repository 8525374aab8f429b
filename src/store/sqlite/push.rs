//! What `ferry push` keeps in the store: the intents of the creates it is sending, the answers
//! (audit rows), and the account numbers target APIs gave.

use rusqlite::{Connection, params};

use super::create::insert_audit;
use crate::store::{PushDetail, PushIntent, PushRecord, RemoteAccount};

/// A push detail from its four audit columns (none for rows that are not push attempts).
pub(super) fn detail(
    staged_version: Option<i64>,
    payload_hash: Option<String>,
    latency_ms: Option<i64>,
    class: Option<String>,
) -> Option<PushDetail> {
    Some(PushDetail {
        staged_version,
        payload_hash: payload_hash?,
        latency_ms: latency_ms.unwrap_or_default().max(0) as u64,
        class: class.unwrap_or_default(),
    })
}

pub(super) fn add_intents(conn: &mut Connection, intents: &[PushIntent]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for i in intents {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO push_intents (target, import_supplier, external_account_number, run_id, attempt,
                 request_id, staged_version, payload_hash, line, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            i.target,
            i.import_supplier,
            i.external_account_number,
            i.run_id,
            i.attempt,
            i.request_id,
            i.staged_version,
            i.payload_hash,
            i.line.map(|l| l as i64),
            i.started_at,
        ])?;
    }
    tx.commit()
}

pub(super) fn intents(conn: &Connection, target: &str) -> rusqlite::Result<Vec<PushIntent>> {
    let mut stmt = conn.prepare(
        "SELECT target, import_supplier, external_account_number, run_id, attempt, request_id, staged_version,
             payload_hash, line, started_at
         FROM push_intents WHERE target = ?1 ORDER BY import_supplier, external_account_number",
    )?;
    let rows = stmt.query_map(params![target], |r| {
        Ok(PushIntent {
            target: r.get(0)?,
            import_supplier: r.get(1)?,
            external_account_number: r.get(2)?,
            run_id: r.get(3)?,
            attempt: r.get(4)?,
            request_id: r.get(5)?,
            staged_version: r.get(6)?,
            payload_hash: r.get(7)?,
            line: r.get::<_, Option<i64>>(8)?.map(|l| l as u64),
            started_at: r.get(9)?,
        })
    })?;
    rows.collect()
}

pub(super) fn record(conn: &mut Connection, target: &str, records: &[PushRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for r in records {
        insert_audit(&tx, &r.audit)?;
        let (supplier, external) = (&r.audit.import_supplier, &r.audit.external_account_number);
        if let Some(number) = &r.remote_number {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO remote_accounts (target, import_supplier, external_account_number,
                     kraken_account_number, run_id, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![target, supplier, external, number, r.audit.run_id, r.audit.finished_at])?;
        }
        if r.settles_intent {
            tx.prepare_cached(
                "DELETE FROM push_intents WHERE target = ?1 AND import_supplier = ?2 AND external_account_number = ?3",
            )?
            .execute(params![target, supplier, external])?;
        }
    }
    tx.commit()
}

pub(super) fn remote_accounts(
    conn: &Connection,
    target: Option<&str>,
    supplier: &str,
    between: Option<(&str, &str)>,
) -> rusqlite::Result<Vec<RemoteAccount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT target, import_supplier, external_account_number, kraken_account_number, run_id, recorded_at
         FROM remote_accounts WHERE import_supplier = ?1 AND (?2 IS NULL OR target = ?2)
             AND (?3 IS NULL OR external_account_number BETWEEN ?3 AND ?4)
         ORDER BY external_account_number, target",
    )?;
    let (first, last) = between.unzip();
    let rows = stmt.query_map(params![supplier, target, first, last], |r| {
        Ok(RemoteAccount {
            target: r.get(0)?,
            import_supplier: r.get(1)?,
            external_account_number: r.get(2)?,
            kraken_account_number: r.get(3)?,
            run_id: r.get(4)?,
            recorded_at: r.get(5)?,
        })
    })?;
    rows.collect()
}
