//! The create writer on PostgreSQL: a chunk's accounts claimed with a conditional transition
//! (`… WHERE status = 'STAGED'`, so that of two workers only one creates an account), their
//! records copied in, each failing account undone alone in a second pass.

use std::collections::HashSet;

use super::records::RecordWrite;
use super::store::PgStore;
use crate::store::{AccountWritten, CreateItem, StoreError, fails_on_purpose, new_account_number};

/// Why a chunk was not written.
pub(super) enum ChunkError {
    /// An account's records failed with the chunk together; the chunk is rolled back.
    AccountFailed,
    Store(StoreError),
}

impl From<StoreError> for ChunkError {
    fn from(e: StoreError) -> Self {
        ChunkError::Store(e)
    }
}

/// Draws an account number not in use for each account and marks its process IMPORTED with it
/// (rows locked in key order first, so that two workers claiming overlapping accounts never
/// deadlock); `None` for an account whose process is no longer STAGED (another worker created
/// it, or it was skipped).
fn claim(
    store: &PgStore,
    records: &RecordWrite,
    items: &[&CreateItem<'_>],
) -> Result<Vec<Option<(String, String)>>, StoreError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut numbers: Vec<String> = items.iter().map(|_| new_account_number()).collect();
    for _ in 0..8 {
        let mut seen = HashSet::new();
        let mut clash: HashSet<String> =
            store.query(&records.taken_sql, &[&numbers])?.iter().map(|r| r.get::<_, String>(0)).collect();
        clash.extend(numbers.iter().filter(|n| !seen.insert(n.as_str())).cloned());
        if clash.is_empty() {
            break;
        }
        for n in numbers.iter_mut().filter(|n| clash.contains(n.as_str())) {
            *n = new_account_number();
        }
    }
    let supplier: Vec<&str> = items.iter().map(|i| i.import_supplier).collect();
    let external: Vec<&str> = items.iter().map(|i| i.external_account_number).collect();
    store.query(
        "SELECT 1 FROM import_processes p JOIN unnest($1::text[], $2::text[]) AS u(s, e)
             ON p.import_supplier = u.s AND p.external_account_number = u.e
         ORDER BY p.import_supplier, p.external_account_number FOR UPDATE OF p",
        &[&supplier, &external],
    )?;
    let created_at = crate::clock::now();
    let claimed: HashSet<(String, String)> = store
        .query(
            "UPDATE import_processes p SET status = 'IMPORTED', kraken_account_number = u.n,
                 account_created_at = $4, updated_at = $4
             FROM unnest($1::text[], $2::text[], $3::text[]) AS u(s, e, n)
             WHERE p.import_supplier = u.s AND p.external_account_number = u.e AND p.status = 'STAGED'
             RETURNING p.import_supplier, p.external_account_number",
            &[&supplier, &external, &numbers, &created_at],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(items
        .iter()
        .zip(numbers)
        .map(|(item, number)| {
            let key = (item.import_supplier.to_owned(), item.external_account_number.to_owned());
            claimed.contains(&key).then(|| (number, created_at.clone()))
        })
        .collect())
}

/// Every account of a chunk at once; any that fails aborts the chunk (the transaction is then
/// unusable: PostgreSQL aborts it at the first error).
pub(super) fn together(
    store: &PgStore,
    records: &RecordWrite,
    items: &[CreateItem<'_>],
) -> Result<Vec<AccountWritten>, ChunkError> {
    let valid: Vec<&CreateItem<'_>> = items.iter().filter(|i| i.invalid.is_none()).collect();
    let mut valid_claims = claim(store, records, &valid).map_err(|_| ChunkError::AccountFailed)?.into_iter();
    let claimed: Vec<Option<(String, String)>> =
        items.iter().map(|item| if item.invalid.is_some() { None } else { valid_claims.next().flatten() }).collect();
    let mut start = 0;
    for group in items.chunk_by(|a, b| std::ptr::eq(a.tables, b.tables)) {
        let accounts: Vec<crate::store::records::NewAccount<'_>> = group
            .iter()
            .zip(&claimed[start..])
            .filter_map(|(item, claim)| {
                let (number, created_at) = claim.as_ref()?;
                Some(crate::store::records::NewAccount { row: item.account, kraken_account_number: number, created_at })
            })
            .collect();
        records.insert_accounts(store, group[0].tables, &accounts).map_err(|_| ChunkError::AccountFailed)?;
        start += group.len();
    }
    crate::store::written_together(items, claimed).ok_or(ChunkError::AccountFailed)
}

/// One account inside a savepoint: a failure, or a dry run, undoes this account only.
pub(super) fn alone(
    store: &PgStore,
    records: &RecordWrite,
    item: &CreateItem<'_>,
    dry_run: bool,
) -> Result<AccountWritten, ChunkError> {
    if item.invalid.is_some() {
        return Ok(AccountWritten::Invalid);
    }
    store.execute("SAVEPOINT account", &[])?;
    let written = (|| -> Result<AccountWritten, StoreError> {
        let Some((number, created_at)) = claim(store, records, &[item])?.pop().flatten() else {
            return Ok(AccountWritten::NotStaged);
        };
        let account = crate::store::records::NewAccount {
            row: item.account,
            kraken_account_number: &number,
            created_at: &created_at,
        };
        records.insert_accounts(store, item.tables, &[account])?;
        if fails_on_purpose(item) {
            return Ok(AccountWritten::Rejected { error: "failed on purpose (create-account-fails)".into() });
        }
        Ok(AccountWritten::Created { kraken_account_number: number })
    })()
    .unwrap_or_else(|e| AccountWritten::Rejected { error: e.error.to_string() });
    if dry_run || !matches!(written, AccountWritten::Created { .. }) {
        store.execute("ROLLBACK TO SAVEPOINT account", &[])?;
    }
    store.execute("RELEASE SAVEPOINT account", &[])?;
    Ok(written)
}
