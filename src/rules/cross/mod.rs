//! Cross-field rules: one file per rule, each with what it checks, why, and an example.
//!
//! A rule reads the chunk's tables through the keys (`_account`, `_parent`) and reports
//! findings through the [`Emitter`]; it names the tables and columns it needs and does nothing
//! when a schema lacks them. The codes are named in the schema's `[rules]`, which sets their
//! severity (or turns them off).

mod agreements;
mod ledger_balance;
mod ledger_references;
mod meter_references;
mod periods;
mod plausibility;
mod supply_type_fields;
mod transfer_balance;
mod unknown_occupier;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{Array, RecordBatch, StringArray, UInt32Array};
use rust_decimal::Decimal;

use super::Emitter;
use crate::collections::FastSet;
use crate::findings::Finding;
use crate::ingest::{ACCOUNT, PARENT};
use crate::schema::TableId;

/// A cross-field rule: its name (the code it reports, the first where it reports several;
/// a test holds each to the schema) and its check over one chunk.
pub struct CrossRule {
    pub code: &'static str,
    pub check: fn(&Emitter<'_>) -> Vec<Finding>,
}

/// Every code the cross-field rules report (a rule may report several).
pub const CODES: &[&str] = &[
    "agreement_start_date_before_supply_start_date",
    "balance_mismatch_on_ledger_balance",
    "bank_account_required",
    "current_statement_transaction_before_last_statement_closing_date",
    "customer_with_unknown_occupier",
    "dd_schedule_without_payment_instruction",
    "field_not_allowed_for_supply_type",
    "gaps_in_periods",
    "gaps_or_overlaps_in_agreement_dates",
    "ledger_balances_not_equal_to_transfer_balance",
    "ledger_code_does_not_exist",
    "net_price_above_gross_price",
    "obis_medium_mismatch",
    "overlapping_periods",
    "reading_value_exceeds_register_digits",
    "statement_supply_type_not_on_account",
    "transfer_reading_meter_not_found",
    "unknown_ledger_identifiers",
];

/// Every cross-field rule, in the order their findings are listed.
pub const RULES: &[CrossRule] = &[
    CrossRule { code: "balance_mismatch_on_ledger_balance", check: ledger_balance::check },
    CrossRule { code: "ledger_balances_not_equal_to_transfer_balance", check: transfer_balance::check },
    CrossRule { code: "field_not_allowed_for_supply_type", check: supply_type_fields::check },
    CrossRule { code: "unknown_ledger_identifiers", check: ledger_references::check },
    CrossRule { code: "transfer_reading_meter_not_found", check: meter_references::check },
    CrossRule { code: "customer_with_unknown_occupier", check: unknown_occupier::check },
    CrossRule { code: "gaps_or_overlaps_in_agreement_dates", check: agreements::check },
    CrossRule { code: "overlapping_periods", check: periods::check },
    CrossRule { code: "net_price_above_gross_price", check: plausibility::check },
];

/// A table of the chunk by name, with its id.
fn table<'a>(e: &Emitter<'a>, name: &str) -> Option<(TableId, &'a RecordBatch)> {
    let id = e.schema.table_by_name(name)?.id;
    Some((id, &e.tables[id.0]))
}

fn strings<'a>(batch: &'a RecordBatch, column: &str) -> Option<&'a StringArray> {
    batch.column_by_name(column).map(|c| c.as_string::<i32>())
}

/// Which key column relates a row to another table.
#[derive(Clone, Copy)]
enum By {
    Account,
    Parent,
}

fn key(batch: &RecordBatch, by: By) -> &UInt32Array {
    let name = match by {
        By::Account => ACCOUNT,
        By::Parent => PARENT,
    };
    batch.column_by_name(name).expect("key columns exist").as_primitive::<UInt32Type>()
}

/// The exact decimal in row `row`, if the value is there and is a decimal.
fn decimal(values: &StringArray, row: usize) -> Option<Decimal> {
    if values.is_valid(row) { Decimal::from_str_exact(values.value(row)).ok() } else { None }
}

/// The values of `column` in `batch`, as one set per row of the `by` key,
/// for `groups` groups.
fn sets_by<'a>(batch: &'a RecordBatch, column: &str, by: By, groups: usize) -> Vec<FastSet<&'a str>> {
    let mut sets = vec![FastSet::default(); groups];
    if let Some(values) = strings(batch, column) {
        let keys = key(batch, by);
        for row in (0..values.len()).filter(|r| values.is_valid(*r)) {
            sets[keys.value(row) as usize].insert(values.value(row));
        }
    }
    sets
}

/// The string in row `row`, if valid.
fn text(values: &StringArray, row: usize) -> Option<&str> {
    values.is_valid(row).then(|| values.value(row))
}

/// For each row of `table`, the row of its supply point: the row itself in supply_points, the
/// ancestor's otherwise; `None` when the table is not under supply_points.
fn supply_point_rows(e: &Emitter<'_>, table: TableId, points: TableId) -> Option<Vec<usize>> {
    let n = e.tables[table.0].num_rows();
    let mut rows: Vec<usize> = (0..n).collect();
    let mut t = table;
    while t != points {
        let (parent, _) = e.schema.table(t).parent.as_ref()?;
        let parents = key(&e.tables[t.0], By::Parent);
        for r in rows.iter_mut() {
            *r = parents.value(*r) as usize;
        }
        t = *parent;
    }
    Some(rows)
}

/// Rows of `batch` grouped by their parent row, in row order.
fn children_by_parent(batch: &RecordBatch, parents: usize) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); parents];
    let keys = key(batch, By::Parent);
    for row in 0..batch.num_rows() {
        groups[keys.value(row) as usize].push(row);
    }
    groups
}

#[cfg(test)]
mod tests {
    /// A rule's name is the code it reports (the first, where it reports several): each is a
    /// rule code of the built-in schema, with a severity.
    #[test]
    fn every_cross_rule_is_named_by_a_code_of_the_schema() {
        let schema = crate::schema::Schema::builtin();
        for rule in super::RULES {
            assert!(schema.rules.contains_key(rule.code), "{} is not a rule code of the schema", rule.code);
        }
    }
}
