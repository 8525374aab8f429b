//! `balance_mismatch_on_ledger_balance`: a ledger's balance must follow from its transactions.
//!
//! What: `ledger_balance = last_statement_balance + Σ(PAYMENT, CREDIT) − Σ(CHARGE,
//! SUPPLY_CHARGE, REPAYMENT)` over `current_statement_transactions`, exactly, in decimal
//! arithmetic. Why: a balance that does not add up would open the customer's account on the
//! platform with money that no transaction explains. Example: the guide's gas ledger,
//! −10.00 − 10.00 (REPAYMENT) + 20.00 (PAYMENT) + 20.00 (CREDIT) = 20.00, passes; with
//! `"ledger_balance": "21.00"` it is reported at `ledgers.0`. A ledger whose balances or
//! transactions are themselves invalid is not summed (their own findings say why).

use arrow_array::Array;
use rust_decimal::Decimal;

use super::{By, Emitter, decimal, key, strings, table};
use crate::findings::Finding;

pub(super) fn check(e: &Emitter<'_>) -> Vec<Finding> {
    let (Some((ledger_id, ledgers)), Some((_, txs))) = (table(e, "ledgers"), table(e, "transactions")) else {
        return Vec::new();
    };
    let (Some(last), Some(balance), Some(amount), Some(kind)) = (
        strings(ledgers, "last_statement_balance"),
        strings(ledgers, "ledger_balance"),
        strings(txs, "amount"),
        strings(txs, "type"),
    ) else {
        return Vec::new();
    };
    // Σ per ledger row; None once a transaction of the ledger cannot be counted.
    let mut sums: Vec<Option<Decimal>> = vec![Some(Decimal::ZERO); ledgers.num_rows()];
    let parents = key(txs, By::Parent);
    for row in 0..txs.num_rows() {
        let ledger = parents.value(row) as usize;
        let signed = match (decimal(amount, row), kind.is_valid(row).then(|| kind.value(row))) {
            (Some(a), Some("PAYMENT" | "CREDIT")) => Some(a),
            (Some(a), Some("CHARGE" | "SUPPLY_CHARGE" | "REPAYMENT")) => Some(-a),
            _ => None,
        };
        sums[ledger] = match (sums[ledger], signed) {
            (Some(s), Some(v)) => Some(s + v),
            _ => None,
        };
    }
    let mut out = Vec::new();
    for (row, sum) in sums.into_iter().enumerate() {
        let (Some(sum), Some(last), Some(balance)) = (sum, decimal(last, row), decimal(balance, row)) else { continue };
        let expected = last + sum;
        if expected != balance {
            let detail = format!(
                "ledger_balance {balance} does not follow from last_statement_balance {last} and the transactions ({sum:+}): expected {expected}"
            );
            out.extend(e.finding(
                ledger_id,
                row,
                "",
                "balance_mismatch_on_ledger_balance",
                detail,
                Some(&balance.to_string()),
            ));
        }
    }
    out
}
