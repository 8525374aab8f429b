//! The references between ledgers, payment instructions, schedules and supply points.
//!
//! - `unknown_ledger_identifiers`: each of a ledger's `identifiers` must be the identifier of a
//!   supply point of the same account (at `ledgers.N.identifiers.M`). A ledger for a meter
//!   point the account does not have would collect money nobody is billed for.
//! - `ledger_code_does_not_exist`: a payment instruction's or schedule's `ledger_code` must
//!   name a ledger of the account (at `….ledger_code`).
//! - `dd_schedule_without_payment_instruction`: a schedule with `means = DD` needs a
//!   DIRECT_DEBIT payment instruction on the same ledger (at `payment_schedules.N`); a schedule
//!   whose ledger does not exist gets only `ledger_code_does_not_exist`.
//! - `bank_account_required`: a DIRECT_DEBIT payment instruction needs its `bank_account` (at
//!   `payment_instructions.N.bank_account`).
//!
//! Example: the guide's DD schedule on GAS_LEDGER is fine because its GOCARDLESS instruction
//! is a DIRECT_DEBIT on GAS_LEDGER; renaming the instruction's ledger to GENERAL_LEDGER gives
//! `ledger_code_does_not_exist` on the instruction and `dd_schedule_without_payment_instruction`
//! on the schedule.

use arrow_array::Array;
use arrow_array::cast::AsArray;

use super::{By, Emitter, key, sets_by, strings, table, text};
use crate::findings::{Finding, quote};

pub(super) fn check(e: &Emitter<'_>) -> Vec<Finding> {
    let accounts = e.tables[0].num_rows();
    let mut out = Vec::new();
    let points = table(e, "supply_points").map(|(_, b)| sets_by(b, "identifier", By::Account, accounts));
    let ledgers = table(e, "ledgers");
    let codes = ledgers.map(|(_, b)| sets_by(b, "ledger_code", By::Account, accounts));

    if let (Some(points), Some((id, ids))) = (&points, table(e, "ledger_identifiers"))
        && let Some(values) = strings(ids, "value")
    {
        let owners = key(ids, By::Account);
        for row in 0..ids.num_rows() {
            let Some(v) = text(values, row) else { continue };
            if !points[owners.value(row) as usize].contains(v) {
                let detail = format!("{} is not the identifier of a supply point of this account", quote(v));
                out.extend(e.finding(id, row, "", "unknown_ledger_identifiers", detail, Some(v)));
            }
        }
    }

    let Some(codes) = codes else { return out };
    let mut direct_debits = vec![crate::collections::FastSet::default(); accounts];
    if let Some((id, instructions)) = table(e, "payment_instructions") {
        let (ledger, kind) = (strings(instructions, "ledger_code"), strings(instructions, "type"));
        let bank = instructions.column_by_name("bank_account").map(|c| c.as_boolean());
        let owners = key(instructions, By::Account);
        for row in 0..instructions.num_rows() {
            let account = owners.value(row) as usize;
            let code = ledger.and_then(|l| text(l, row));
            if let Some(code) = code
                && !codes[account].contains(code)
            {
                let detail = format!("{} is not the ledger_code of a ledger of this account", quote(code));
                out.extend(e.finding(id, row, "ledger_code", "ledger_code_does_not_exist", detail, Some(code)));
            }
            if kind.and_then(|k| text(k, row)) == Some("DIRECT_DEBIT") {
                if let Some(code) = code {
                    direct_debits[account].insert(code);
                }
                if !bank.is_some_and(|b| b.is_valid(row) && b.value(row)) {
                    let detail = "a DIRECT_DEBIT payment instruction needs a bank_account".to_owned();
                    out.extend(e.finding(id, row, "bank_account", "bank_account_required", detail, None));
                }
            }
        }
    }
    if let Some((id, schedules)) = table(e, "payment_schedules") {
        let (ledger, means) = (strings(schedules, "ledger_code"), strings(schedules, "means"));
        let owners = key(schedules, By::Account);
        for row in 0..schedules.num_rows() {
            let account = owners.value(row) as usize;
            let Some(code) = ledger.and_then(|l| text(l, row)) else { continue };
            if !codes[account].contains(code) {
                let detail = format!("{} is not the ledger_code of a ledger of this account", quote(code));
                out.extend(e.finding(id, row, "ledger_code", "ledger_code_does_not_exist", detail, Some(code)));
            } else if means.and_then(|m| text(m, row)) == Some("DD") && !direct_debits[account].contains(code) {
                let detail =
                    format!("a DD schedule on {} needs a DIRECT_DEBIT payment instruction on that ledger", quote(code));
                out.extend(e.finding(id, row, "", "dd_schedule_without_payment_instruction", detail, None));
            }
        }
    }
    out
}
