//! Uniqueness: a field's value may not repeat within its scope.
//!
//! `unique = "parent"` compares siblings (the registers of one meter, the ledgers of one
//! account); `unique = "account"` compares every row of the table within one account (supply
//! point identifiers across addresses, transaction ids across ledgers). `unique_with` adds
//! sibling fields to the key (a reference's namespace and value). Every repeat after the
//! first is a finding at the repeated field, naming where the value first appeared. Rows of
//! one account, and of one parent, are contiguous in a table, so one pass with a set per
//! group suffices. `unique = "input"` (across accounts) needs the whole dump and is checked
//! where chunks are merged, in input order.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{Array, StringArray};

use super::Emitter;
use crate::collections::FastMap;
use crate::findings::{Finding, quote};
use crate::ingest::{ACCOUNT, KEY_COLUMNS, PARENT};
use crate::schema::{Field, FieldType, TableBody, TableId, UniqueScope};

pub fn check_table(e: &Emitter<'_>, table: TableId) -> Vec<Finding> {
    let TableBody::Record(object) = &e.schema.table(table).body else { return Vec::new() };
    let object = e.schema.object(*object);
    let mut out = Vec::new();
    for field in &object.fields {
        let Some(unique) = &field.unique else { continue };
        let group_column = match unique.scope {
            UniqueScope::Parent if e.schema.table(table).parent.is_some() => PARENT,
            UniqueScope::Parent | UniqueScope::Account => ACCOUNT,
            UniqueScope::Input => continue,
        };
        let with: Vec<&Field> =
            unique.with.iter().filter_map(|w| object.field_index(w).map(|i| &object.fields[i])).collect();
        check_field(e, table, field, &with, group_column, &mut out);
    }
    out
}

fn check_field(e: &Emitter<'_>, table: TableId, field: &Field, with: &[&Field], group: &str, out: &mut Vec<Finding>) {
    if !matches!(field.ty, FieldType::String { .. } | FieldType::Enum(_) | FieldType::Code(_)) {
        return;
    }
    let batch = &e.tables[table.0];
    let values = batch.column(KEY_COLUMNS + field.column).as_string::<i32>();
    let others: Vec<&StringArray> =
        with.iter().map(|w| batch.column(KEY_COLUMNS + w.column).as_string::<i32>()).collect();
    let groups = batch.column_by_name(group).expect("key column").as_primitive::<UInt32Type>();
    let code = field.codes.unique.as_deref().unwrap_or("duplicate");
    let name = &e.schema.table(table).columns[field.column].name;
    // A value with control characters has its `invalid_characters` finding and no other.
    let refused = super::may_refuse_characters(e.schema, values);
    let dirty = |v: &str| refused && crate::text::first_forbidden(v, field.multiline).is_some();
    // Keys borrow from the column; only composite keys (`unique_with`) are built.
    let mut seen: FastMap<Cow<'_, str>, usize> = FastMap::default();
    let mut current = None;
    for row in 0..values.len() {
        if current != Some(groups.value(row)) {
            current = Some(groups.value(row));
            seen.clear();
        }
        if !values.is_valid(row) || others.iter().any(|o| !o.is_valid(row)) || dirty(values.value(row)) {
            continue;
        }
        let key: Cow<'_, str> = if others.is_empty() {
            Cow::Borrowed(values.value(row))
        } else {
            let mut k = values.value(row).to_owned();
            for o in &others {
                k.push('\u{1f}');
                k.push_str(o.value(row));
            }
            Cow::Owned(k)
        };
        match seen.get(&key) {
            Some(&first) => {
                let v = values.value(row);
                let detail = format!("{} is repeated; it first appears at {}", quote(v), e.attr(table, first, name));
                out.extend(e.finding(table, row, name, code, detail, Some(v)));
            }
            None => {
                seen.insert(key, row);
            }
        }
    }
}
