//! `ledger_balances_not_equal_to_transfer_balance` (warning): the account's transfer balance
//! should be the sum of its ledgers' balances.
//!
//! What: `transfer_balance = Σ ledgers[].ledger_balance`, exactly. Why: the balance carried
//! over from the legacy system should be what the ledgers hold; a difference is worth a look
//! but does not block the account. Example: the guide's account has `"transfer_balance":
//! "0.00"` and ledgers of 20.00 and 45.00, so it is reported at `transfer_balance` (0.00 vs
//! 65.00). Accounts without a transfer balance, or with a ledger balance that is not a valid
//! decimal, are not compared.

use rust_decimal::Decimal;

use super::{By, Emitter, decimal, key, strings, table};
use crate::findings::Finding;
use crate::schema::TableId;

pub(super) fn check(e: &Emitter<'_>) -> Vec<Finding> {
    let root = &e.tables[0];
    let (Some(transfer), Some((_, ledgers))) = (strings(root, "transfer_balance"), table(e, "ledgers")) else {
        return Vec::new();
    };
    let Some(balances) = strings(ledgers, "ledger_balance") else { return Vec::new() };
    let mut sums: Vec<Option<Decimal>> = vec![Some(Decimal::ZERO); root.num_rows()];
    let accounts = key(ledgers, By::Account);
    for row in 0..ledgers.num_rows() {
        let account = accounts.value(row) as usize;
        sums[account] = match (sums[account], decimal(balances, row)) {
            (Some(s), Some(b)) => Some(s + b),
            _ => None,
        };
    }
    let mut out = Vec::new();
    for (row, sum) in sums.into_iter().enumerate() {
        let (Some(sum), Some(transfer)) = (sum, decimal(transfer, row)) else { continue };
        if sum != transfer {
            let detail = format!("transfer_balance {transfer} is not the sum of the ledger balances, {sum}");
            out.extend(e.finding(
                TableId(0),
                row,
                "transfer_balance",
                "ledger_balances_not_equal_to_transfer_balance",
                detail,
                Some(&transfer.to_string()),
            ));
        }
    }
    out
}
