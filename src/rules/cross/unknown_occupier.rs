//! `customer_with_unknown_occupier`, and `empty` customers when the occupier is known.
//!
//! What: an account with `unknown_occupier: true` has no customers; any other account has at
//! least one (both at `customers`). Why: "unknown occupier" accounts are billed to "the
//! occupier" until someone registers; a named customer on one, or no customer on a normal
//! account, means the dump mixed the two up. Example: `"unknown_occupier": true` with the
//! guide's customer Johann Goethe is reported; `"customers": []` without it gets `empty`.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;

use super::Emitter;
use crate::findings::Finding;
use crate::schema::TableId;

pub(super) fn check(e: &Emitter<'_>) -> Vec<Finding> {
    let root = &e.tables[0];
    let Some(customers) = root.column_by_name("customers").map(|c| c.as_primitive::<UInt32Type>()) else {
        return Vec::new();
    };
    let unknown = root.column_by_name("unknown_occupier").map(|c| c.as_boolean());
    let mut out = Vec::new();
    for row in (0..root.num_rows()).filter(|r| customers.is_valid(*r)) {
        let is_unknown = unknown.is_some_and(|u| u.is_valid(row) && u.value(row));
        let n = customers.value(row);
        if is_unknown && n > 0 {
            let detail = format!("an account with an unknown occupier has no customers; this one has {n}");
            out.extend(e.finding(TableId(0), row, "customers", "customer_with_unknown_occupier", detail, None));
        } else if !is_unknown && n == 0 {
            let detail = "\"customers\" may not be empty unless the occupier is unknown".to_owned();
            out.extend(e.finding(TableId(0), row, "customers", "empty", detail, None));
        }
    }
    out
}
