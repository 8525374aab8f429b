//! The staged tables: the flattened text columns converted to their schema types, and the
//! rows of chosen accounts cut out of a chunk with their keys renumbered.
//!
//! A decimal becomes `Decimal128(whole + scale, scale)` (exact: the text's digits, never a
//! float), a date `Date32`, a datetime `Timestamp(µs, "UTC")` holding the same instant (a naive
//! one read in the run's timezone), booleans, integers and list lengths keep their Arrow
//! types, and everything else stays `Utf8`. A value that cannot be represented in its typed
//! column (possible only when the rule that rejects it is not an error in this schema) is a
//! [`Unrepresentable`], and its account is not staged.

use std::sync::Arc;

use arrow_array::builder::{Date32Builder, Decimal128Builder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field as ArrowField, Schema as ArrowSchema, SchemaRef, TimeUnit};
use chrono::NaiveDate;

use crate::ingest::{ACCOUNT, KEY_COLUMNS, PARENT, arrow_schemas};
use crate::rules::field::{decimal_shape, instant, parse_date};
use crate::schema::{FieldType, Object, Schema, TableBody};

/// The timezone name of every staged timestamp column.
pub const UTC: &str = "UTC";

/// How one flattened column is staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    /// Kept as it is (text, booleans, integers, list lengths, object presence).
    Keep,
    Decimal {
        whole: u8,
        scale: u8,
    },
    Date,
    DateTime,
}

/// The typed schema of every staged table, with the conversion of each column.
#[derive(Debug)]
pub struct TypedTables {
    pub schemas: Vec<SchemaRef>,
    conversions: Vec<Vec<Conversion>>,
}

/// A value of an otherwise accepted account that its typed column cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrepresentable {
    pub table: usize,
    pub row: usize,
    /// The flattened column's name (its attr path within the row).
    pub column: String,
    pub value: String,
    pub why: String,
}

impl TypedTables {
    pub fn new(schema: &Schema) -> Self {
        let raw = arrow_schemas(schema);
        let mut schemas = Vec::with_capacity(raw.len());
        let mut conversions = Vec::with_capacity(raw.len());
        for (table, raw) in schema.tables.iter().zip(raw) {
            let mut conv = vec![Conversion::Keep; table.columns.len()];
            match &table.body {
                TableBody::Record(o) => object_conversions(schema, schema.object(*o), &mut conv),
                TableBody::Scalar(field) => conv[field.column] = conversion(&field.ty),
            }
            let fields: Vec<ArrowField> = raw
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let ty = match i.checked_sub(KEY_COLUMNS).map(|c| conv[c]) {
                        None | Some(Conversion::Keep) => f.data_type().clone(),
                        Some(Conversion::Decimal { whole, scale }) => {
                            DataType::Decimal128(whole + scale, i8::try_from(scale).expect("scales are small"))
                        }
                        Some(Conversion::Date) => DataType::Date32,
                        Some(Conversion::DateTime) => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
                    };
                    ArrowField::new(f.name(), ty, f.is_nullable())
                })
                .collect();
            schemas.push(Arc::new(ArrowSchema::new_with_metadata(fields, raw.metadata().clone())));
            conversions.push(conv);
        }
        Self { schemas, conversions }
    }

    /// Converts every column of `tables` (as flattened), reporting the values that do not
    /// fit. A value that fails to convert becomes null in the result.
    pub fn convert(&self, tables: &[RecordBatch], tz: chrono_tz::Tz) -> (Vec<RecordBatch>, Vec<Unrepresentable>) {
        let mut failures = Vec::new();
        let batches = tables
            .iter()
            .enumerate()
            .map(|(t, batch)| {
                let columns = batch
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, col)| {
                        let Some(c) = i.checked_sub(KEY_COLUMNS) else { return col.clone() };
                        let conv = self.conversions[t][c];
                        if conv == Conversion::Keep {
                            return col.clone();
                        }
                        let name = batch.schema().field(i).name().clone();
                        let mut fail = |row: usize, value: &str, why: String| {
                            failures.push(Unrepresentable {
                                table: t,
                                row,
                                column: name.clone(),
                                value: value.to_owned(),
                                why,
                            });
                        };
                        convert_column(col.as_string::<i32>(), conv, tz, &mut fail)
                    })
                    .collect();
                RecordBatch::try_new(self.schemas[t].clone(), columns)
                    .expect("converted columns match the typed schema")
            })
            .collect();
        (batches, failures)
    }
}

fn object_conversions(schema: &Schema, object: &Object, out: &mut [Conversion]) {
    for field in &object.fields {
        match &field.ty {
            FieldType::Object(nested) => object_conversions(schema, schema.object(*nested), out),
            ty => out[field.column] = conversion(ty),
        }
    }
}

fn conversion(ty: &FieldType) -> Conversion {
    match ty {
        FieldType::Decimal { whole, scale } => Conversion::Decimal { whole: *whole, scale: *scale },
        FieldType::Date => Conversion::Date,
        FieldType::DateTime => Conversion::DateTime,
        _ => Conversion::Keep,
    }
}

fn convert_column(
    values: &StringArray,
    conv: Conversion,
    tz: chrono_tz::Tz,
    fail: &mut impl FnMut(usize, &str, String),
) -> ArrayRef {
    let present = (0..values.len()).map(|r| values.is_valid(r).then(|| values.value(r)));
    match conv {
        Conversion::Keep => unreachable!("kept columns are not converted"),
        Conversion::Decimal { whole, scale } => {
            let mut b = Decimal128Builder::with_capacity(values.len());
            for (row, v) in present.enumerate() {
                b.append_option(v.and_then(|v| decimal_units(v, whole, scale).map_err(|why| fail(row, v, why)).ok()));
            }
            let scale = i8::try_from(scale).expect("scales are small");
            Arc::new(b.finish().with_precision_and_scale(whole + scale as u8, scale).expect("precision fits"))
        }
        Conversion::Date => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
            let mut b = Date32Builder::with_capacity(values.len());
            for (row, v) in present.enumerate() {
                b.append_option(v.and_then(|v| match parse_date(v) {
                    Some(d) => i32::try_from((d - epoch).num_days()).ok(),
                    None => {
                        fail(row, v, "is not a calendar date (YYYY-MM-DD)".to_owned());
                        None
                    }
                }));
            }
            Arc::new(b.finish())
        }
        Conversion::DateTime => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(values.len());
            for (row, v) in present.enumerate() {
                b.append_option(v.and_then(|v| match instant(v, tz) {
                    Some(t) => Some(t.timestamp_micros()),
                    None => {
                        fail(row, v, format!("is not a datetime with a valid instant in {tz}"));
                        None
                    }
                }));
            }
            Arc::new(b.finish().with_timezone(UTC))
        }
    }
}

/// The decimal text `v` in units of 10^-scale, exactly; an error when it has more places
/// than `scale` or more whole digits than `whole`.
pub fn decimal_units(v: &str, whole: u8, scale: u8) -> Result<i128, String> {
    let Some((negative, w, places, _)) = decimal_shape(v) else {
        return Err("is not a decimal number".to_owned());
    };
    if places > usize::from(scale) {
        return Err(format!("has {places} decimal places; the staged column holds {scale}"));
    }
    if w > usize::from(whole) {
        return Err(format!("has {w} whole digits; the staged column holds {whole}"));
    }
    let digits = v.trim_start_matches('-');
    let mut units: i128 = 0;
    for b in digits.bytes().filter(u8::is_ascii_digit) {
        units = units * 10 + i128::from(b - b'0');
    }
    for _ in places..usize::from(scale) {
        units *= 10;
    }
    Ok(if negative { -units } else { units })
}

/// Cuts the rows of the accounts with `keep[account]` out of one chunk's tables (flattened
/// or typed), renumbering `_account` and `_parent` to rows of the result.
pub fn select_accounts(tables: &[RecordBatch], parents: &[Option<usize>], keep: &[bool]) -> Vec<RecordBatch> {
    if keep.iter().all(|k| *k) {
        return tables.to_vec(); // every account, already numbered so: shared, not copied
    }
    let mut remaps: Vec<Vec<u32>> = Vec::with_capacity(tables.len());
    let mut out = Vec::with_capacity(tables.len());
    for (t, batch) in tables.iter().enumerate() {
        let accounts = batch.column_by_name(ACCOUNT).expect("key column").as_primitive::<UInt32Type>();
        let mask: BooleanArray = accounts.values().iter().map(|a| Some(keep[*a as usize])).collect();
        let mut next = 0u32;
        let remap: Vec<u32> = mask
            .values()
            .iter()
            .map(|k| {
                next += u32::from(k);
                next.wrapping_sub(1)
            })
            .collect();
        let filtered = arrow_select::filter::filter_record_batch(batch, &mask).expect("mask has the batch's length");
        let mut columns = filtered.columns().to_vec();
        let renumber = |name: &str, map: &[u32], columns: &mut Vec<ArrayRef>| {
            let i = filtered.schema().index_of(name).expect("key column");
            let col = filtered.column(i).as_primitive::<UInt32Type>();
            let renumbered: UInt32Array = col.unary(|v| map[v as usize]);
            columns[i] = Arc::new(renumbered);
        };
        let root_remap = if t == 0 { &remap } else { &remaps[0] };
        renumber(ACCOUNT, root_remap, &mut columns);
        if let Some(p) = parents[t] {
            renumber(PARENT, &remaps[p], &mut columns);
        }
        out.push(RecordBatch::try_new(batch.schema(), columns).expect("same schema, same lengths"));
        remaps.push(remap);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_exact_units() {
        assert_eq!(decimal_units("12.5", 9, 2), Ok(1250));
        assert_eq!(decimal_units("-0.07", 9, 2), Ok(-7));
        assert_eq!(decimal_units("20", 9, 2), Ok(2000));
        assert_eq!(decimal_units("00012.50", 9, 2), Ok(1250));
        assert!(decimal_units("1.234", 9, 2).unwrap_err().contains("3 decimal places"));
        assert!(decimal_units("1234", 3, 2).unwrap_err().contains("4 whole digits"));
        assert!(decimal_units("1e3", 9, 2).is_err());
    }
}
