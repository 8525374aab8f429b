//! Field rules: each column checked against its field's type, limits and check.
//!
//! | type | codes |
//! |---|---|
//! | every text type below | `invalid_characters` first: such a value gets no other code |
//! | `string(n)` | `max_length`, `blank` (or the field's missing code), the field's check |
//! | `enum(list)` / `code(list)` | `invalid_choice` / `unknown_code` (warning) |
//! | `date` / `datetime` | `invalid_date` / `invalid_datetime`, `naive_datetime` (warning) |
//! | `decimal(p,s)` | `invalid_decimal`, `max_whole_digits`, `max_decimal_places`, `min_value` |
//! | `int(a..b)` | `min_value`, `max_value` (or the field's range code) |
//! | `list` with `min_items` | `empty` (or the field's empty code), at the list's path |
//!
//! An enum whose list depends on a sibling (`reason` on `type`) is checked against the list
//! of the sibling's value, and only when that value is one the sibling allows: absent, it is
//! `required`; outside the list, `invalid_choice`. A sibling value with no list means the
//! field must be absent (the field's unlisted code).

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type};
use arrow_array::{Array, StringArray};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use rust_decimal::Decimal;

use super::{Emitter, RuleContext, formats};
use crate::findings::{Finding, quote};
use crate::ingest::KEY_COLUMNS;
use crate::schema::{Field, FieldType, MinValue, Object, TableBody, TableId, ValueList};

/// Every field rule over every column of `table`.
pub fn check_table(e: &Emitter<'_>, ctx: &RuleContext, table: TableId) -> Vec<Finding> {
    let mut out = Vec::new();
    match &e.schema.table(table).body {
        TableBody::Record(object) => check_object(e, ctx, table, e.schema.object(*object), &mut out),
        TableBody::Scalar(field) => check_field(e, ctx, table, field, None, &mut out),
    }
    out
}

fn check_object(e: &Emitter<'_>, ctx: &RuleContext, table: TableId, object: &Object, out: &mut Vec<Finding>) {
    for field in &object.fields {
        match &field.ty {
            FieldType::Object(nested) => check_object(e, ctx, table, e.schema.object(*nested), out),
            _ => check_field(e, ctx, table, field, Some(object), out),
        }
    }
}

fn check_field(
    e: &Emitter<'_>,
    ctx: &RuleContext,
    table: TableId,
    field: &Field,
    object: Option<&Object>,
    out: &mut Vec<Finding>,
) {
    check_values(e, ctx, table, field, object, out);
    if field.after.is_some() {
        check_range(e, ctx, table, field, object, out);
    }
}

/// Whether `v` is one of `list`'s values.
fn listed(list: &[String], v: &str) -> bool {
    list.iter().any(|a| crate::text::same(a, v))
}

/// The checks of each value on its own.
fn check_values(
    e: &Emitter<'_>,
    ctx: &RuleContext,
    table: TableId,
    field: &Field,
    object: Option<&Object>,
    out: &mut Vec<Finding>,
) {
    let batch = &e.tables[table.0];
    let column = batch.column(KEY_COLUMNS + field.column);
    // The value of a list of scalars (`identifiers.0`) is the row itself: its attr has no column.
    let name = match object {
        Some(_) => e.schema.table(table).columns[field.column].name.as_str(),
        None => "",
    };
    let mut push = |row: usize, code: &str, detail: String, value: Option<&str>| {
        out.extend(e.finding(table, row, name, code, detail, value));
    };
    let texts = match field.ty {
        FieldType::String { .. }
        | FieldType::Enum(_)
        | FieldType::Code(_)
        | FieldType::Date
        | FieldType::DateTime
        | FieldType::Decimal { .. } => Some(column.as_string::<i32>()),
        _ => None,
    };
    // A value with a control character gets `invalid_characters` and nothing else: what follows
    // sees it as absent (unless the rule is off).
    let (masked, dirty) = match texts.map(|t| forbidden_characters(e, field, t, &mut push)) {
        Some(Some((clean, dirty))) => (Some(clean), dirty),
        _ => (None, Vec::new()),
    };
    let column = masked.as_ref().unwrap_or(column);
    match &field.ty {
        FieldType::String { max_len } => {
            let known = field.known.as_ref().and_then(|k| match e.schema.lists.get(k) {
                Some(ValueList::Plain(values)) => Some(values.as_slice()),
                _ => None,
            });
            for (row, v) in strings(column.as_string::<i32>()) {
                check_string(field, *max_len, known, row, v, &mut push);
            }
        }
        FieldType::Enum(list) | FieldType::Code(list) => {
            let is_enum = matches!(field.ty, FieldType::Enum(_));
            let values = column.as_string::<i32>();
            match (e.schema.lists.get(list), &field.depends_on) {
                (Some(ValueList::Plain(allowed)), _) => {
                    for (row, v) in strings(values) {
                        if !listed(allowed, v) {
                            let (code, detail) = not_in_list(is_enum, name, v, allowed);
                            push(row, code, detail, Some(v));
                        }
                    }
                }
                (Some(ValueList::ByKey(by_key)), Some(sibling)) => {
                    let Some(key_field) = object.and_then(|o| o.field_index(sibling).map(|i| &o.fields[i])) else {
                        return;
                    };
                    let keys = batch.column(KEY_COLUMNS + key_field.column).as_string::<i32>();
                    let key_list = match &key_field.ty {
                        FieldType::Enum(l) => match e.schema.lists.get(l.as_str()) {
                            Some(ValueList::Plain(vs)) => Some(vs.as_slice()),
                            _ => None,
                        },
                        _ => None,
                    };
                    let key_allowed = |k: &str| key_list.is_none_or(|vs| listed(vs, k));
                    // An absent value whose key has a list is required (a value the flattener
                    // already reported is not absent). A key that is invalid, missing or null
                    // decides nothing: its own finding is enough.
                    for row in (0..values.len()).filter(|r| !values.is_valid(*r) && dirty.binary_search(r).is_err()) {
                        if keys.is_valid(row)
                            && key_allowed(keys.value(row))
                            && by_key.contains_key(keys.value(row))
                            && !e.reported(table, row, name)
                        {
                            let detail =
                                format!("{:?} is required when {sibling:?} is {:?}", field.name, keys.value(row));
                            push(row, "required", detail, None);
                        }
                    }
                    for (row, v) in strings(values) {
                        if !keys.is_valid(row) || !key_allowed(keys.value(row)) {
                            continue;
                        }
                        let key = keys.value(row);
                        match by_key.get(key) {
                            Some(allowed) if !listed(allowed, v) => {
                                let (code, detail) = not_in_list(is_enum, name, v, allowed);
                                push(row, code, detail, Some(v));
                            }
                            Some(_) => {}
                            None => {
                                let code = field.codes.unlisted.as_deref().unwrap_or("invalid_choice");
                                let detail = format!("{:?} is not allowed when {sibling:?} is {key:?}", field.name);
                                push(row, code, detail, Some(v));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        FieldType::Date => {
            let bounds =
                (field.plausible.0.as_deref().and_then(parse_date), field.plausible.1.as_deref().and_then(parse_date));
            for (row, v) in strings(column.as_string::<i32>()) {
                let Some(date) = parse_date(v) else {
                    push(row, "invalid_date", format!("{} is not a valid date (YYYY-MM-DD)", quote(v)), Some(v));
                    continue;
                };
                if field.not_future && date > ctx.today {
                    let code = field.codes.future.as_deref().unwrap_or("date_in_future");
                    push(row, code, format!("{} is after the reference date {}", quote(v), ctx.today), Some(v));
                } else if bounds.0.is_some_and(|min| date < min) || bounds.1.is_some_and(|max| date > max) {
                    let code = field.codes.plausible.as_deref().unwrap_or("implausible_value");
                    push(
                        row,
                        code,
                        format!("{} is implausible ({})", quote(v), bounds_text(&field.plausible)),
                        Some(v),
                    );
                }
            }
        }
        FieldType::DateTime => {
            let end_of_today = ctx.end_of_today();
            for (row, v) in strings(column.as_string::<i32>()) {
                let kind = parse_datetime(v);
                if field.not_future && kind.is_some() && instant(v, ctx.tz).is_some_and(|t| t >= end_of_today) {
                    let code = field.codes.future.as_deref().unwrap_or("date_in_future");
                    push(row, code, format!("{} is after the reference date {}", quote(v), ctx.today), Some(v));
                }
                match kind {
                    Some(DateTimeKind::WithOffset) => {}
                    Some(DateTimeKind::Naive) => {
                        let detail = format!("{} has no UTC offset; it is read in {}", quote(v), ctx.tz);
                        push(row, "naive_datetime", detail, Some(v));
                    }
                    None => {
                        let detail = format!("{} is not a valid date and time (RFC 3339 with offset)", quote(v));
                        push(row, "invalid_datetime", detail, Some(v));
                    }
                }
            }
        }
        FieldType::Decimal { whole, scale } => {
            // The bounds are read once per column, not once per value (issue 15).
            let bound = |b: &Option<String>| b.as_deref().and_then(|b| Decimal::from_str_exact(b).ok());
            let bounds = (bound(&field.plausible.0), bound(&field.plausible.1));
            for (row, v) in strings(column.as_string::<i32>()) {
                check_decimal(field, (*whole, *scale), bounds, row, v, &mut push);
            }
        }
        FieldType::Int { min, max } => {
            let ints = column.as_primitive::<Int64Type>();
            for row in (0..ints.len()).filter(|r| ints.is_valid(*r)) {
                let v = ints.value(row);
                let text = v.to_string();
                if v < *min {
                    let code = field.codes.range.as_deref().unwrap_or("min_value");
                    push(row, code, format!("{v} is less than the minimum, {min}"), Some(&text));
                } else if v > *max {
                    let code = field.codes.range.as_deref().unwrap_or("max_value");
                    push(row, code, format!("{v} is greater than the maximum, {max}"), Some(&text));
                }
            }
        }
        FieldType::List(_) if field.min_items > 0 => {
            let lens = column.as_primitive::<UInt32Type>();
            for row in (0..lens.len()).filter(|r| lens.is_valid(*r)) {
                if lens.value(row) < field.min_items {
                    let code = field.codes.empty.as_deref().unwrap_or("empty");
                    push(row, code, format!("{:?} may not be empty", field.name), None);
                }
            }
        }
        FieldType::Bool | FieldType::Json | FieldType::Object(_) | FieldType::List(_) => {}
    }
}

/// An end date or datetime against its start (`after`): before it is
/// `start_date_later_than_end_date`; equal is `start_date_same_as_end_date` unless the end is
/// inclusive. Values that do not parse are left to their own findings.
fn check_range(
    e: &Emitter<'_>,
    ctx: &RuleContext,
    table: TableId,
    field: &Field,
    object: Option<&Object>,
    out: &mut Vec<Finding>,
) {
    let Some((start_name, inclusive)) = &field.after else { return };
    let name = &e.schema.table(table).columns[field.column].name;
    let mut push = |row: usize, code: &str, detail: String, value: Option<&str>| {
        out.extend(e.finding(table, row, name, code, detail, value));
    };
    let Some(start) = object.and_then(|o| o.field_index(start_name).map(|i| &o.fields[i])) else { return };
    let batch = &e.tables[table.0];
    let ends = batch.column(KEY_COLUMNS + field.column).as_string::<i32>();
    let starts = batch.column(KEY_COLUMNS + start.column).as_string::<i32>();
    let key = |v: &str| -> Option<chrono::DateTime<chrono::Utc>> {
        match field.ty {
            FieldType::Date => parse_date(v).map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()),
            _ => instant(v, ctx.tz),
        }
    };
    for (row, end) in strings(ends) {
        if !starts.is_valid(row) {
            continue;
        }
        let from = starts.value(row);
        let (Some(a), Some(b)) = (key(from), key(end)) else { continue };
        if b < a {
            let detail = format!("{} ends before it starts ({start_name} is {})", quote(end), quote(from));
            push(row, "start_date_later_than_end_date", detail, Some(end));
        } else if b == a && !inclusive {
            let detail = format!("{} is the same as {start_name}; the end is exclusive", quote(end));
            push(row, "start_date_same_as_end_date", detail, Some(end));
        }
    }
}

/// `invalid_characters` for every value of `texts` with a forbidden character; the column
/// without those values when there were any (and the rule is on), for the other checks.
fn forbidden_characters(
    e: &Emitter<'_>,
    field: &Field,
    texts: &StringArray,
    push: &mut impl FnMut(usize, &str, String, Option<&str>),
) -> Option<(arrow_array::ArrayRef, Vec<usize>)> {
    if !super::may_refuse_characters(e.schema, texts) {
        return None;
    }
    let mut dirty = Vec::new();
    for (row, v) in strings(texts) {
        if let Some((at, c)) = crate::text::first_forbidden(v, field.multiline) {
            let detail = format!("{} has {} at character {at}", quote(v), crate::text::describe(c));
            push(row, crate::findings::codes::INVALID_CHARACTERS, detail, Some(v));
            dirty.push(row);
        }
    }
    if dirty.is_empty() {
        return None;
    }
    let clean = texts.iter().enumerate().map(|(r, v)| v.filter(|_| dirty.binary_search(&r).is_err()));
    Some((std::sync::Arc::new(StringArray::from_iter(clean)), dirty))
}

/// The valid values of a string column with their rows.
fn strings(array: &StringArray) -> impl Iterator<Item = (usize, &str)> {
    (0..array.len()).filter(|r| array.is_valid(*r)).map(|r| (r, array.value(r)))
}

fn check_string(
    field: &Field,
    max_len: Option<u32>,
    known: Option<&[String]>,
    row: usize,
    v: &str,
    push: &mut impl FnMut(usize, &str, String, Option<&str>),
) {
    // A value has at most as many characters as bytes: only a long one is counted.
    if let Some(max) = max_len.filter(|max| v.len() > *max as usize) {
        let n = v.chars().count();
        if n > max as usize {
            push(row, "max_length", format!("{} has {n} characters; at most {max} are allowed", quote(v)), Some(v));
            return;
        }
    }
    if field.not_blank && v.trim().is_empty() {
        let code = field.codes.missing.as_deref().unwrap_or("blank");
        push(row, code, format!("{:?} may not be blank", field.name), Some(v));
        return;
    }
    if let Some(check) = field.check
        && !formats::passes(check, v)
    {
        push(row, check.code(), formats::detail(check, v), Some(v));
        return;
    }
    if let Some(known) = known
        && !known.iter().any(|k| k == v)
    {
        let code = field.codes.known.as_deref().unwrap_or("unknown_code");
        push(row, code, format!("{} is not one of {}", quote(v), known.join(", ")), Some(v));
    }
}

fn bounds_text(bounds: &(Option<String>, Option<String>)) -> String {
    match bounds {
        (Some(min), Some(max)) => format!("plausible from {min} to {max}"),
        (Some(min), None) => format!("plausible from {min}"),
        (None, Some(max)) => format!("plausible up to {max}"),
        (None, None) => "no bounds".to_owned(),
    }
}

/// The instant of a datetime; a naive one is read in `tz`.
pub fn instant(v: &str, tz: chrono_tz::Tz) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    let naive = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&chrono::Utc))
}

fn not_in_list(is_enum: bool, name: &str, v: &str, allowed: &[String]) -> (&'static str, String) {
    const SHOWN: usize = 8;
    let mut list = allowed.iter().take(SHOWN).map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
    if allowed.len() > SHOWN {
        list.push_str(&format!(", … ({} in all)", allowed.len()));
    }
    if is_enum {
        ("invalid_choice", format!("{} is not a valid choice; one of {list}", quote(v)))
    } else {
        ("unknown_code", format!("{} is not in the code list of {name:?} ({list})", quote(v)))
    }
}

/// A strict `YYYY-MM-DD` calendar date.
pub fn parse_date(v: &str) -> Option<NaiveDate> {
    let b = v.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::from_ymd_opt(v[..4].parse().ok()?, v[5..7].parse().ok()?, v[8..].parse().ok()?)
}

/// How a datetime string was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeKind {
    WithOffset,
    Naive,
}

/// RFC 3339 with an offset, or the same without one (naive).
pub fn parse_datetime(v: &str) -> Option<DateTimeKind> {
    // Byte 10 is an ASCII 'T' before slicing, so `..10` is a char boundary.
    if v.as_bytes().get(10).is_none_or(|c| *c != b'T') || parse_date(&v[..10]).is_none() {
        return None;
    }
    if DateTime::parse_from_rfc3339(v).is_ok() {
        return Some(DateTimeKind::WithOffset);
    }
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|_| DateTimeKind::Naive)
}

/// The shape of a decimal string: sign, whole digits (without leading zeros), decimal places
/// (as written) and whether it is zero. `None` when it is not `^-?[0-9]+(\.[0-9]+)?$`.
pub fn decimal_shape(v: &str) -> Option<(bool, usize, usize, bool)> {
    let (negative, rest) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let whole = int.trim_start_matches('0').len();
    let places = frac.map_or(0, str::len);
    let zero = int.bytes().all(|b| b == b'0') && frac.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    Some((negative, whole, places, zero))
}

fn check_decimal(
    field: &Field,
    (whole, scale): (u8, u8),
    bounds: (Option<Decimal>, Option<Decimal>),
    row: usize,
    v: &str,
    push: &mut impl FnMut(usize, &str, String, Option<&str>),
) {
    let Some((negative, w, places, zero)) = decimal_shape(v) else {
        push(row, "invalid_decimal", format!("{} is not a decimal number", quote(v)), Some(v));
        return;
    };
    if w > usize::from(whole) {
        let detail = format!("{} has {w} digits before the decimal point; at most {whole} are allowed", quote(v));
        push(row, "max_whole_digits", detail, Some(v));
    }
    if places > usize::from(scale) {
        let detail = format!("{} has {places} decimal places; at most {scale} are allowed", quote(v));
        push(row, "max_decimal_places", detail, Some(v));
    }
    // The value is read as a number only when there is a bound to compare it with.
    let outside = match bounds {
        (None, None) => false,
        (min, max) => Decimal::from_str_exact(v)
            .is_ok_and(|value| min.is_some_and(|b| value < b) || max.is_some_and(|b| value > b)),
    };
    if outside {
        let code = field.codes.plausible.as_deref().unwrap_or("implausible_value");
        push(row, code, format!("{} is implausible ({})", quote(v), bounds_text(&field.plausible)), Some(v));
    }
    match field.min {
        // A decimal field that must be >= 0 refuses any minus sign, "-0.00" included.
        Some(MinValue::NonNegative) if negative => {
            push(row, "min_value", format!("{} may not be negative", quote(v)), Some(v));
        }
        Some(MinValue::Positive) if negative || zero => {
            push(row, "min_value", format!("{} must be greater than zero", quote(v)), Some(v));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_as_written() {
        assert_eq!(decimal_shape("12.50"), Some((false, 2, 2, false)));
        assert_eq!(decimal_shape("0.5"), Some((false, 0, 1, false)));
        assert_eq!(decimal_shape("-0.00"), Some((true, 0, 2, true)));
        assert_eq!(decimal_shape("007"), Some((false, 1, 0, false)));
        for bad in ["", "+1", ".5", "5.", "1e5", "1,5", "--1", "1.2.3", " 1"] {
            assert_eq!(decimal_shape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_and_datetimes() {
        assert!(parse_date("2024-02-29").is_some());
        for bad in ["2023-02-29", "1990-02-30", "2024-2-01", "20240201", "2024-02-01T00:00:00Z"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_datetime("2021-05-13T02:00:00+02:00"), Some(DateTimeKind::WithOffset));
        assert_eq!(parse_datetime("2021-01-01T00:00:00Z"), Some(DateTimeKind::WithOffset));
        assert_eq!(parse_datetime("2021-01-01T00:00:00"), Some(DateTimeKind::Naive));
        assert_eq!(parse_datetime("2021-01-01T00:00:00.250"), Some(DateTimeKind::Naive));
        for bad in ["2021-01-01", "2021-01-01 00:00:00Z", "2021-13-01T00:00:00Z", "yesterday"] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }
}
