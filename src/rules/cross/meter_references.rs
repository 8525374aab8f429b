//! Readings against their meters and registers.
//!
//! - `transfer_reading_meter_not_found`: a transfer reading's `meter_number` must be the number
//!   of a meter of the same supply point (at `…transfer_readings.K.meter_number`). A reading
//!   for a meter the supply point does not have cannot be booked.
//! - `reading_value_exceeds_register_digits`: a reading's value must fit its register: at most
//!   `digits` digits before the point and `decimal_places` after (at `…readings.G.value`). A
//!   6-digit value on a 5-digit register is a typo or a meter change the dump does not show.
//!
//! Example: the guide's reading 1234.02 fits its register of 4 digits and 2 decimal places;
//! 12345.02 would not.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};

use super::{By, Emitter, key, sets_by, strings, table, text};
use crate::findings::{Finding, quote};
use crate::rules::field::decimal_shape;

pub(super) fn check(e: &Emitter<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    transfer_readings(e, &mut out);
    readings(e, &mut out);
    out
}

fn transfer_readings(e: &Emitter<'_>, out: &mut Vec<Finding>) {
    let (Some((points_id, points)), Some((tr_id, trs)), Some((_, meters))) =
        (table(e, "supply_points"), table(e, "transfer_readings"), table(e, "meters"))
    else {
        return;
    };
    // Meter numbers per supply point: meters → melos → supply points.
    let Some(melo_table) =
        e.schema.table(e.schema.table_by_name("meters").expect("found").id).parent.as_ref().map(|p| p.0)
    else {
        return;
    };
    if e.schema.table(melo_table).parent.as_ref().map(|p| p.0) != Some(points_id) {
        return;
    }
    let melos = &e.tables[melo_table.0];
    let by_melo = sets_by(meters, "meter_number", By::Parent, melos.num_rows());
    let mut by_point = vec![crate::collections::FastSet::default(); points.num_rows()];
    let melo_points = key(melos, By::Parent);
    for (melo, set) in by_melo.into_iter().enumerate() {
        by_point[melo_points.value(melo) as usize].extend(set);
    }
    let Some(numbers) = strings(trs, "meter_number") else { return };
    let owners = key(trs, By::Parent);
    for row in 0..trs.num_rows() {
        let Some(number) = text(numbers, row) else { continue };
        if !by_point[owners.value(row) as usize].contains(number) {
            let detail = format!("{} is not the number of a meter of this supply point", quote(number));
            out.extend(e.finding(tr_id, row, "meter_number", "transfer_reading_meter_not_found", detail, Some(number)));
        }
    }
}

fn readings(e: &Emitter<'_>, out: &mut Vec<Finding>) {
    let (Some((_, registers)), Some((id, readings))) = (table(e, "registers"), table(e, "readings")) else { return };
    let (Some(values), Some(digits), Some(places)) =
        (strings(readings, "value"), ints(registers, "digits"), ints(registers, "decimal_places"))
    else {
        return;
    };
    let owners = key(readings, By::Parent);
    for row in 0..readings.num_rows() {
        let Some(v) = text(values, row) else { continue };
        let register = owners.value(row) as usize;
        let (Some(d), Some(p)) = (digits(register), places(register)) else { continue };
        let Some((_, whole, frac, _)) = decimal_shape(v) else { continue };
        if whole as i64 > d || frac as i64 > p {
            let detail = format!("{} does not fit its register of {d} digits and {p} decimal places", quote(v));
            out.extend(e.finding(id, row, "value", "reading_value_exceeds_register_digits", detail, Some(v)));
        }
    }
}

/// An integer column as a lookup by row (None where null).
fn ints<'a>(batch: &'a RecordBatch, column: &str) -> Option<impl Fn(usize) -> Option<i64> + 'a> {
    let array = batch.column_by_name(column)?.as_primitive::<Int64Type>();
    Some(move |row: usize| array.is_valid(row).then(|| array.value(row)))
}
