//! The create writer on PostgreSQL: a chunk's accounts claimed with a conditional transition
//! (`… WHERE status = 'STAGED'`, so that of two workers only one creates an account), their
//! records copied in, each failing account undone alone in a second pass.

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

/// Draws an account number not in use and marks the process IMPORTED with it; `None` if the
/// process is no longer STAGED (another worker created it, or it was skipped).
fn claim(
    store: &PgStore,
    records: &RecordWrite,
    item: &CreateItem<'_>,
) -> Result<Option<(String, String)>, StoreError> {
    let mut number = new_account_number();
    for _ in 0..8 {
        let taken = store.select(&records.taken_sql, &[&number])?;
        if !taken.first().is_some_and(|r| r.get::<_, bool>(0)) {
            break;
        }
        number = new_account_number();
    }
    let created_at = crate::clock::now();
    let claimed = store.exec(
        "UPDATE import_processes SET status = 'IMPORTED', kraken_account_number = $3,
             account_created_at = $4, updated_at = $4
         WHERE import_supplier = $1 AND external_account_number = $2 AND status = 'STAGED'",
        &[&item.import_supplier, &item.external_account_number, &number, &created_at],
    )?;
    Ok((claimed == 1).then_some((number, created_at)))
}

/// Every account of a chunk at once; any that fails aborts the chunk (the transaction is then
/// unusable: PostgreSQL aborts it at the first error).
pub(super) fn together(
    store: &PgStore,
    records: &RecordWrite,
    items: &[CreateItem<'_>],
) -> Result<Vec<AccountWritten>, ChunkError> {
    let mut claimed = Vec::with_capacity(items.len());
    for item in items {
        claimed.push(match &item.invalid {
            Some(_) => None,
            None => claim(store, records, item).map_err(|_| ChunkError::AccountFailed)?,
        });
    }
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
    store.exec("SAVEPOINT account", &[])?;
    let written = (|| -> Result<AccountWritten, StoreError> {
        let Some((number, created_at)) = claim(store, records, item)? else {
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
        store.exec("ROLLBACK TO SAVEPOINT account", &[])?;
    }
    store.exec("RELEASE SAVEPOINT account", &[])?;
    Ok(written)
}
