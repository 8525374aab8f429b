//! The schema file as written: a walk over the spanned TOML tree into plain structs.
//!
//! Nothing is interpreted here beyond the shape of the file: unknown keys are reported (with
//! "did you mean"), values of the wrong TOML type are reported, and every kept value carries
//! its span so that [`super::resolve`] can point at it.

use std::ops::Range;

use toml::Spanned;
use toml::de::DeValue;

use crate::diagnostics::Problem;
use crate::diagnostics::walk::{
    Sp, boolean, document, entries, integer, sp_key, string, string_array, unknown_key, wrong_type,
};

#[derive(Debug, Default)]
pub(super) struct RawSchema {
    pub name: Option<Sp<String>>,
    pub version: Option<Sp<i64>>,
    pub root: Option<Sp<String>>,
    pub rules: Vec<(Sp<String>, Sp<String>)>,
    pub lists: Vec<RawList>,
    pub tables: Vec<RawTable>,
    pub objects: Vec<RawObject>,
}

#[derive(Debug)]
pub(super) struct RawList {
    pub name: Sp<String>,
    pub body: RawListBody,
}

#[derive(Debug)]
pub(super) enum RawListBody {
    Plain(Vec<Sp<String>>),
    ByKey(Vec<(Sp<String>, Vec<Sp<String>>)>),
}

#[derive(Debug)]
pub(super) struct RawTable {
    pub name: Sp<String>,
    pub doc: Option<Sp<String>>,
    pub fields: Option<Sp<Vec<RawField>>>,
    pub value: Option<RawField>,
    pub same_as: Option<Sp<String>>,
}

#[derive(Debug)]
pub(super) struct RawObject {
    pub name: Sp<String>,
    pub fields: Sp<Vec<RawField>>,
}

#[derive(Debug, Default)]
pub(super) struct RawField {
    pub span: Range<usize>,
    pub name: Option<Sp<String>>,
    pub ty: Option<Sp<String>>,
    pub req: Option<Sp<bool>>,
    pub null_ok: Option<Sp<bool>>,
    pub not_blank: Option<Sp<bool>>,
    pub multiline: Option<Sp<bool>>,
    pub min: Option<Sp<String>>,
    pub min_items: Option<Sp<i64>>,
    pub values: Option<Sp<Vec<Sp<String>>>>,
    pub check: Option<Sp<String>>,
    pub only_on: Option<Sp<String>>,
    pub unique: Option<Sp<String>>,
    pub unique_with: Option<Sp<Vec<Sp<String>>>>,
    pub depends_on: Option<Sp<String>>,
    pub missing_code: Option<Sp<String>>,
    pub empty_code: Option<Sp<String>>,
    pub range_code: Option<Sp<String>>,
    pub only_on_code: Option<Sp<String>>,
    pub unique_code: Option<Sp<String>>,
    pub unlisted_code: Option<Sp<String>>,
    pub not_future: Option<Sp<bool>>,
    pub future_code: Option<Sp<String>>,
    pub plausible_min: Option<Sp<String>>,
    pub plausible_max: Option<Sp<String>>,
    pub plausible_code: Option<Sp<String>>,
    pub known: Option<Sp<String>>,
    pub known_code: Option<Sp<String>>,
    pub after: Option<Sp<String>>,
    pub after_inclusive: Option<Sp<bool>>,
    pub doc: Option<Sp<String>>,
}

const TOP_KEYS: &[&str] = &["name", "version", "root", "rules", "lists", "tables", "objects"];
const TABLE_KEYS: &[&str] = &["doc", "fields", "value", "same_as"];
const OBJECT_KEYS: &[&str] = &["doc", "fields"];
pub(super) const FIELD_KEYS: &[&str] = &[
    "name",
    "type",
    "req",
    "null_ok",
    "not_blank",
    "multiline",
    "min",
    "min_items",
    "values",
    "check",
    "only_on",
    "unique",
    "unique_with",
    "depends_on",
    "missing_code",
    "empty_code",
    "range_code",
    "only_on_code",
    "unique_code",
    "unlisted_code",
    "not_future",
    "future_code",
    "plausible_min",
    "plausible_max",
    "plausible_code",
    "known",
    "known_code",
    "after",
    "after_inclusive",
    "doc",
];

/// Parses the text and walks it; returns `None` only when the TOML itself does not parse.
pub(super) fn parse(text: &str, problems: &mut Vec<Problem>) -> Option<RawSchema> {
    let doc = document(text, problems)?;
    let mut raw = RawSchema::default();
    for (key, value) in doc.get_ref().iter() {
        match key.get_ref().as_ref() {
            "name" => raw.name = string(value, "name", problems),
            "version" => raw.version = integer(value, "version", problems),
            "root" => raw.root = string(value, "root", problems),
            "rules" => {
                for (code, sev) in entries(value, "rules", problems) {
                    if let Some(sev) = string(sev, "a rule's severity", problems) {
                        raw.rules.push((sp_key(code), sev));
                    }
                }
            }
            "lists" => {
                for (name, body) in entries(value, "lists", problems) {
                    if let Some(body) = list_body(body, problems) {
                        raw.lists.push(RawList { name: sp_key(name), body });
                    }
                }
            }
            "tables" => {
                for (name, body) in entries(value, "tables", problems) {
                    if let Some(table) = raw_table(sp_key(name), body, problems) {
                        raw.tables.push(table);
                    }
                }
            }
            "objects" => {
                for (name, body) in entries(value, "objects", problems) {
                    let mut fields = None;
                    for (k, v) in entries(body, "an object", problems) {
                        match k.get_ref().as_ref() {
                            "fields" => fields = field_list(v, problems),
                            "doc" => {
                                string(v, "doc", problems);
                            }
                            other => problems.push(unknown_key(k, other, "object", OBJECT_KEYS)),
                        }
                    }
                    match fields {
                        Some(fields) => raw.objects.push(RawObject { name: sp_key(name), fields }),
                        None => problems
                            .push(Problem::new(name.span(), format!("object `{}` has no `fields`", name.get_ref()))),
                    }
                }
            }
            other => problems.push(unknown_key(key, other, "schema", TOP_KEYS)),
        }
    }
    Some(raw)
}

fn raw_table(name: Sp<String>, body: &Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> Option<RawTable> {
    let mut table = RawTable { name, doc: None, fields: None, value: None, same_as: None };
    for (k, v) in entries(body, "a table", problems) {
        match k.get_ref().as_ref() {
            "doc" => table.doc = string(v, "doc", problems),
            "fields" => table.fields = field_list(v, problems),
            "value" => table.value = raw_field(v, problems),
            "same_as" => table.same_as = string(v, "same_as", problems),
            other => problems.push(unknown_key(k, other, "table", TABLE_KEYS)),
        }
    }
    Some(table)
}

fn field_list(value: &Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> Option<Sp<Vec<RawField>>> {
    let DeValue::Array(items) = value.get_ref() else {
        problems.push(wrong_type(value, "fields", "an array of inline tables"));
        return None;
    };
    let fields = items.iter().filter_map(|item| raw_field(item, problems)).collect();
    Some(Sp { v: fields, span: value.span() })
}

fn raw_field(value: &Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> Option<RawField> {
    let mut f = RawField { span: value.span(), ..RawField::default() };
    for (k, v) in entries(value, "a field", problems) {
        match k.get_ref().as_ref() {
            "name" => f.name = string(v, "name", problems),
            "type" => f.ty = string(v, "type", problems),
            "req" => f.req = boolean(v, "req", problems),
            "null_ok" => f.null_ok = boolean(v, "null_ok", problems),
            "not_blank" => f.not_blank = boolean(v, "not_blank", problems),
            "multiline" => f.multiline = boolean(v, "multiline", problems),
            "min" => f.min = string(v, "min", problems),
            "min_items" => f.min_items = integer(v, "min_items", problems),
            "values" => f.values = string_array(v, "values", problems),
            "check" => f.check = string(v, "check", problems),
            "only_on" => f.only_on = string(v, "only_on", problems),
            "unique" => f.unique = string(v, "unique", problems),
            "unique_with" => f.unique_with = string_array(v, "unique_with", problems),
            "depends_on" => f.depends_on = string(v, "depends_on", problems),
            "missing_code" => f.missing_code = string(v, "missing_code", problems),
            "empty_code" => f.empty_code = string(v, "empty_code", problems),
            "range_code" => f.range_code = string(v, "range_code", problems),
            "only_on_code" => f.only_on_code = string(v, "only_on_code", problems),
            "unique_code" => f.unique_code = string(v, "unique_code", problems),
            "unlisted_code" => f.unlisted_code = string(v, "unlisted_code", problems),
            "not_future" => f.not_future = boolean(v, "not_future", problems),
            "future_code" => f.future_code = string(v, "future_code", problems),
            "plausible_min" => f.plausible_min = string(v, "plausible_min", problems),
            "plausible_max" => f.plausible_max = string(v, "plausible_max", problems),
            "plausible_code" => f.plausible_code = string(v, "plausible_code", problems),
            "known" => f.known = string(v, "known", problems),
            "known_code" => f.known_code = string(v, "known_code", problems),
            "after" => f.after = string(v, "after", problems),
            "after_inclusive" => f.after_inclusive = boolean(v, "after_inclusive", problems),
            "doc" => f.doc = string(v, "doc", problems),
            other => problems.push(unknown_key(k, other, "field", FIELD_KEYS)),
        }
    }
    Some(f)
}

fn list_body(value: &Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> Option<RawListBody> {
    match value.get_ref() {
        DeValue::Array(_) => string_array(value, "a value list", problems).map(|a| RawListBody::Plain(a.v)),
        DeValue::Table(_) => {
            let mut by_key = Vec::new();
            for (k, v) in entries(value, "a value list", problems) {
                if let Some(values) = string_array(v, "a value list", problems) {
                    by_key.push((sp_key(k), values.v));
                }
            }
            Some(RawListBody::ByKey(by_key))
        }
        _ => {
            problems.push(wrong_type(value, "a value list", "an array of strings, or a table of them"));
            None
        }
    }
}
