//! From the raw file to a [`Schema`]: types parsed, names resolved, the table tree built.
//!
//! Every problem is pushed to the caller's list and resolution goes on, so that one run
//! reports all of a broken schema's problems together.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::raw::{RawField, RawListBody, RawObject, RawSchema, RawTable};
use super::{
    Check, Column, ColumnKind, Field, FieldCodes, FieldType, MinValue, Object, ObjectId, Schema, Severity, SupplyType,
    Table, TableBody, TableId, Unique, UniqueScope, ValueList,
};
use crate::diagnostics::walk::Sp;
use crate::diagnostics::{Problem, closest};
use crate::findings::codes;

mod field_type;

/// Nested objects deeper than this are a schema mistake (most likely a cycle).
const MAX_OBJECT_DEPTH: usize = 8;

pub(super) fn resolve(raw: &RawSchema, text: &str, problems: &mut Vec<Problem>) -> Option<Schema> {
    let mut r = Resolver {
        raw,
        problems,
        rules: BTreeMap::new(),
        lists: BTreeMap::new(),
        tables: Vec::new(),
        objects: Vec::new(),
        used_tables: HashMap::new(),
        named: BTreeSet::new(),
    };
    r.rules();
    r.lists();
    let name = r.required_top(raw.name.as_ref(), "name");
    r.required_top(raw.root.as_ref(), "root");
    let version = match &raw.version {
        Some(v) if v.v >= 1 && v.v <= i64::from(u32::MAX) => v.v as u32,
        Some(v) => {
            r.problems.push(Problem::new(v.span.clone(), "`version` must be a positive integer"));
            0
        }
        None => {
            r.problems.push(Problem::new(0..0, "the schema has no `version`").help("add `version = 1` at the top"));
            0
        }
    };
    if let Some(root) = raw.root.as_ref() {
        match raw.tables.iter().find(|t| t.name.v == root.v) {
            Some(table) => {
                r.used_tables.insert(table.name.v.clone(), root.span.clone());
                r.table(table, None, 0);
            }
            None => {
                let p = Problem::new(root.span.clone(), format!("root table `{}` is not defined", root.v))
                    .suggest(&root.v, raw.tables.iter().map(|t| t.name.v.as_str()));
                r.problems.push(p);
            }
        }
    }
    for table in &raw.tables {
        if !r.used_tables.contains_key(&table.name.v) {
            r.problems.push(
                Problem::new(table.name.span.clone(), format!("table `{}` is not reached from the root", table.name.v))
                    .help("a table is the element type of a `list(...)` field; reference it from one"),
            );
        }
    }
    r.unreported_rules();
    let Resolver { rules, lists, tables, objects, .. } = r;
    Some(Schema {
        name: name?,
        version,
        hash: format!("{:x}", Sha256::digest(text.as_bytes())),
        tables,
        objects,
        lists,
        rules,
    })
}

struct Resolver<'a> {
    raw: &'a RawSchema,
    problems: &'a mut Vec<Problem>,
    rules: BTreeMap<String, Severity>,
    lists: BTreeMap<String, ValueList>,
    tables: Vec<Table>,
    objects: Vec<Object>,
    /// Table name → the span of the first list that used it.
    used_tables: HashMap<String, std::ops::Range<usize>>,
    /// The rule codes the fields name (missing, unique, future, ... codes).
    named: BTreeSet<String>,
}

impl<'a> Resolver<'a> {
    fn required_top(&mut self, value: Option<&Sp<String>>, key: &str) -> Option<String> {
        match value {
            Some(v) => Some(v.v.clone()),
            None => {
                self.problems.push(Problem::new(0..0, format!("the schema has no `{key}`")));
                None
            }
        }
    }

    fn rules(&mut self) {
        for (code, sev) in &self.raw.rules {
            match Severity::parse(&sev.v) {
                Some(s) => {
                    self.rules.insert(code.v.clone(), s);
                }
                None => self.problems.push(
                    Problem::new(sev.span.clone(), format!("unknown severity `{}` for rule `{}`", sev.v, code.v))
                        .help("a severity is \"error\", \"warning\" or \"off\""),
                ),
            }
        }
        for code in codes::ENGINE {
            if !self.rules.contains_key(*code) {
                self.problems.push(
                    Problem::new(0..0, format!("rule `{code}` is reported by ferry but has no severity in [rules]"))
                        .help(format!("add `{code} = \"error\"` (or \"warning\") under [rules]")),
                );
            }
        }
    }

    fn lists(&mut self) {
        for list in &self.raw.lists {
            let value = match &list.body {
                RawListBody::Plain(values) => ValueList::Plain(values.iter().map(|v| v.v.clone()).collect()),
                RawListBody::ByKey(keyed) => ValueList::ByKey(
                    keyed.iter().map(|(k, vs)| (k.v.clone(), vs.iter().map(|v| v.v.clone()).collect())).collect(),
                ),
            };
            self.lists.insert(list.name.v.clone(), value);
        }
    }

    /// A `[rules]` entry for a code that nothing reports is a mistake (most likely a misspelt
    /// code, whose real one then has no severity): every entry must be a code of the engine, the
    /// field rules, a check, a cross-field rule, or one a field names.
    fn unreported_rules(&mut self) {
        let known: BTreeSet<&str> = codes::ENGINE
            .iter()
            .chain(codes::FIELD)
            .chain(crate::rules::cross::CODES)
            .copied()
            .chain(Check::ALL.iter().map(|(_, c, _)| c.code()))
            .chain(self.named.iter().map(String::as_str))
            .collect();
        let unknown: Vec<&Sp<String>> =
            self.raw.rules.iter().map(|(code, _)| code).filter(|c| !known.contains(c.v.as_str())).collect();
        let problems: Vec<Problem> = unknown
            .into_iter()
            .map(|code| {
                Problem::new(
                    code.span.clone(),
                    format!("rule `{}` is not a code that ferry or this schema reports", code.v),
                )
                .suggest(&code.v, known.iter().copied())
            })
            .collect();
        self.problems.extend(problems);
    }

    fn rule_code(&mut self, code: &Option<Sp<String>>) -> Option<String> {
        let code = code.as_ref()?;
        self.named.insert(code.v.clone());
        if !self.rules.contains_key(&code.v) {
            let p = Problem::new(code.span.clone(), format!("rule code `{}` is not listed in [rules]", code.v))
                .suggest(&code.v, self.raw.rules.iter().map(|(c, _)| c.v.as_str()));
            self.problems.push(p);
        }
        Some(code.v.clone())
    }

    /// Resolves a table and, depth first, every table its lists reference.
    fn table(&mut self, raw: &'a RawTable, parent: Option<(TableId, String)>, depth: usize) {
        let id = TableId(self.tables.len());
        let (fields_raw, scalar) = self.table_body(raw);
        let doc = raw.doc.as_ref().map(|d| d.v.clone()).unwrap_or_default();
        self.tables.push(Table {
            id,
            name: raw.name.v.clone(),
            doc,
            parent,
            columns: Vec::new(),
            body: TableBody::Scalar(Box::new(placeholder_field())),
        });
        let mut columns = Vec::new();
        let body = if let Some(fields) = fields_raw {
            let object = self.object(&raw.name.v, &fields.v, id, "", &mut columns, depth);
            TableBody::Record(object)
        } else if let Some(value) = scalar {
            let field = self.field(value, &[], id, "", &mut columns, depth);
            match field {
                Some(f) if matches!(f.ty, FieldType::Object(_) | FieldType::List(_)) => {
                    self.problems
                        .push(Problem::new(value.span.clone(), "a scalar list's `value` must be a scalar type"));
                    TableBody::Scalar(Box::new(f))
                }
                Some(f) => TableBody::Scalar(Box::new(f)),
                None => TableBody::Scalar(Box::new(placeholder_field())),
            }
        } else {
            self.problems.push(
                Problem::new(raw.name.span.clone(), format!("table `{}` has neither `fields` nor `value`", raw.name.v))
                    .help("give `fields = [...]` for a list of objects, `value = { type = ... }` for a list of scalars, or `same_as`"),
            );
            TableBody::Scalar(Box::new(placeholder_field()))
        };
        let table = &mut self.tables[id.0];
        table.columns = columns;
        table.body = body;
    }

    /// A table's fields, following `same_as`.
    fn table_body(&mut self, raw: &'a RawTable) -> (Option<&'a Sp<Vec<RawField>>>, Option<&'a RawField>) {
        let Some(same_as) = &raw.same_as else {
            if raw.fields.is_some() && raw.value.is_some() {
                self.problems.push(Problem::new(raw.name.span.clone(), "a table has `fields` or `value`, not both"));
            }
            return (raw.fields.as_ref(), raw.value.as_ref());
        };
        let raw_all: &'a RawSchema = self.raw;
        match raw_all.tables.iter().find(|t| t.name.v == same_as.v && t.same_as.is_none()) {
            Some(other) => (other.fields.as_ref(), other.value.as_ref()),
            None => {
                let p = Problem::new(
                    same_as.span.clone(),
                    format!("`same_as` names `{}`, which is not a table with its own fields", same_as.v),
                )
                .suggest(&same_as.v, raw_all.tables.iter().map(|t| t.name.v.as_str()));
                self.problems.push(p);
                (None, None)
            }
        }
    }

    fn object(
        &mut self,
        name: &str,
        raw_fields: &[RawField],
        table: TableId,
        prefix: &str,
        columns: &mut Vec<Column>,
        depth: usize,
    ) -> ObjectId {
        let id = ObjectId(self.objects.len());
        self.objects.push(Object { name: name.to_owned(), fields: Vec::new(), index: HashMap::new() });
        let mut fields: Vec<Field> = Vec::new();
        for raw in raw_fields {
            if let Some(field) = self.field(raw, raw_fields, table, prefix, columns, depth) {
                if fields.iter().any(|f| f.name == field.name) {
                    let span = raw.name.as_ref().map(|n| n.span.clone()).unwrap_or(raw.span.clone());
                    self.problems.push(Problem::new(span, format!("field `{}` is defined twice", field.name)));
                    continue;
                }
                fields.push(field);
            }
        }
        let index = fields.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        self.objects[id.0] = Object { name: name.to_owned(), fields, index };
        id
    }

    fn field(
        &mut self,
        raw: &RawField,
        siblings: &[RawField],
        table: TableId,
        prefix: &str,
        columns: &mut Vec<Column>,
        depth: usize,
    ) -> Option<Field> {
        let name = match &raw.name {
            Some(n) => n.v.clone(),
            None if prefix.is_empty() && siblings.is_empty() => "value".to_owned(),
            None => {
                self.problems.push(Problem::new(raw.span.clone(), "a field has no `name`"));
                return None;
            }
        };
        if prefix.is_empty() {
            // Account records (`ferry create`) have columns of their own beside the fields'.
            let own: &[&str] = if table.0 == 0 { &super::RECORD_ROOT_COLUMNS } else { &super::RECORD_LIST_COLUMNS };
            if let Some(taken) = own.iter().find(|c| c.eq_ignore_ascii_case(&name)) {
                let span = raw.name.as_ref().map_or(raw.span.clone(), |n| n.span.clone());
                self.problems.push(
                    Problem::new(
                        span,
                        format!("field name `{name}` is taken by the account records' `{taken}` column"),
                    )
                    .help(format!(
                        "a {} record has the columns {}: rename the field",
                        if table.0 == 0 { "root" } else { "list" },
                        own.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                    )),
                );
                return None;
            }
        }
        let Some(ty_raw) = &raw.ty else {
            self.problems.push(Problem::new(raw.span.clone(), format!("field `{name}` has no `type`")));
            return None;
        };
        let (ty, nested_object) = match self.field_type(&name, ty_raw, raw, table, prefix, depth)? {
            Parsed::Type(ty) => (ty, None),
            // Resolved below, once the object's presence column is placed.
            Parsed::Object(obj) => (FieldType::Json, Some(obj)),
        };
        let flag = |b: &Option<Sp<bool>>| b.as_ref().is_some_and(|b| b.v);
        let is_string = matches!(ty, FieldType::String { .. });
        let mut field = Field {
            name: name.clone(),
            required: flag(&raw.req),
            null_ok: flag(&raw.null_ok),
            not_blank: flag(&raw.not_blank),
            multiline: flag(&raw.multiline),
            min: None,
            min_items: 0,
            check: None,
            only_on: None,
            unique: None,
            depends_on: None,
            not_future: flag(&raw.not_future),
            plausible: (
                raw.plausible_min.as_ref().map(|v| v.v.clone()),
                raw.plausible_max.as_ref().map(|v| v.v.clone()),
            ),
            known: raw.known.as_ref().map(|k| k.v.clone()),
            after: raw.after.as_ref().map(|a| (a.v.clone(), flag(&raw.after_inclusive))),
            codes: FieldCodes::default(),
            doc: raw.doc.as_ref().map(|d| d.v.clone()).unwrap_or_default(),
            column: 0,
            ty,
        };
        if field.required && field.null_ok {
            self.misplaced(
                raw.null_ok.as_ref().map(|s| s.span.clone()),
                "`null_ok` contradicts `req = true`: a required field is never null",
            );
        }
        if field.not_blank && !is_string {
            self.misplaced(
                raw.not_blank.as_ref().map(|s| s.span.clone()),
                "`not_blank` is only allowed on string fields",
            );
        }
        if field.multiline && !is_string {
            self.misplaced(
                raw.multiline.as_ref().map(|s| s.span.clone()),
                "`multiline` is only allowed on string fields",
            );
        }
        if let Some(min) = &raw.min {
            match (&field.ty, min.v.as_str()) {
                (FieldType::Decimal { .. }, ">=0") => field.min = Some(MinValue::NonNegative),
                (FieldType::Decimal { .. }, ">0") => field.min = Some(MinValue::Positive),
                (FieldType::Decimal { .. }, other) => self.problems.push(
                    Problem::new(min.span.clone(), format!("unknown minimum `{other}`")).help("use \">=0\" or \">0\""),
                ),
                _ => self.misplaced(Some(min.span.clone()), "`min` is only allowed on decimal fields"),
            }
        }
        if let Some(items) = &raw.min_items {
            if matches!(field.ty, FieldType::List(_)) && (0..=1000).contains(&items.v) {
                field.min_items = items.v as u32;
            } else {
                self.misplaced(Some(items.span.clone()), "`min_items` is only allowed on list fields, from 0 to 1000");
            }
        }
        if let Some(empty) = &raw.empty_code
            && field.min_items == 0
        {
            self.misplaced(Some(empty.span.clone()), "`empty_code` needs a list field with `min_items`");
        }
        if let Some(range) = &raw.range_code
            && !matches!(field.ty, FieldType::Int { .. })
        {
            self.misplaced(Some(range.span.clone()), "`range_code` is only allowed on int fields");
        }
        if let Some(check) = &raw.check {
            match Check::ALL.iter().find(|(n, _, _)| *n == check.v) {
                Some((_, c, _)) if is_string => {
                    if !self.rules.contains_key(c.code()) {
                        self.problems.push(Problem::new(
                            check.span.clone(),
                            format!("check `{}` reports `{}`, which has no severity in [rules]", check.v, c.code()),
                        ));
                    }
                    field.check = Some(*c);
                }
                Some(_) => self.misplaced(Some(check.span.clone()), "`check` is only allowed on string fields"),
                None => {
                    let p = Problem::new(check.span.clone(), format!("unknown check `{}`", check.v))
                        .suggest(&check.v, Check::ALL.iter().map(|(n, _, _)| *n));
                    self.problems.push(p);
                }
            }
        }
        if let Some(on) = &raw.only_on {
            match on.v.as_str() {
                "ELECTRICITY" => field.only_on = Some(SupplyType::Electricity),
                "GAS" => field.only_on = Some(SupplyType::Gas),
                other => self.problems.push(
                    Problem::new(on.span.clone(), format!("unknown supply type `{other}`"))
                        .help("use \"ELECTRICITY\" or \"GAS\""),
                ),
            }
        }
        if let Some(unique) = &raw.unique {
            let scope = match unique.v.as_str() {
                "input" => Some(UniqueScope::Input),
                "account" => Some(UniqueScope::Account),
                "parent" => Some(UniqueScope::Parent),
                other => {
                    self.problems.push(
                        Problem::new(unique.span.clone(), format!("unknown uniqueness scope `{other}`"))
                            .help("use \"input\", \"account\" or \"parent\""),
                    );
                    None
                }
            };
            let with = raw.unique_with.as_ref().map(|w| w.v.clone()).unwrap_or_default();
            for w in &with {
                self.sibling(w, siblings);
            }
            if raw.unique_code.is_none() {
                self.problems.push(Problem::new(unique.span.clone(), "`unique` needs a `unique_code`"));
            }
            field.unique = scope.map(|scope| Unique { scope, with: with.into_iter().map(|w| w.v).collect() });
        } else if let Some(w) = &raw.unique_with {
            self.misplaced(Some(w.span.clone()), "`unique_with` needs `unique`");
        }
        let dated = matches!(field.ty, FieldType::Date | FieldType::DateTime);
        if field.not_future && !dated {
            self.misplaced(
                raw.not_future.as_ref().map(|s| s.span.clone()),
                "`not_future` is only allowed on date and datetime fields",
            );
        }
        for bound in [&raw.plausible_min, &raw.plausible_max].into_iter().flatten() {
            let ok = match field.ty {
                FieldType::Date => crate::rules::field::parse_date(&bound.v).is_some(),
                FieldType::Decimal { .. } => crate::rules::field::decimal_shape(&bound.v).is_some(),
                _ => false,
            };
            if !ok {
                self.problems.push(
                    Problem::new(bound.span.clone(), format!("bad plausible bound `{}`", bound.v))
                        .help("bounds are YYYY-MM-DD on date fields and decimal text on decimal fields"),
                );
            }
        }
        if let Some(after) = &raw.after {
            if dated {
                self.sibling(after, siblings);
            } else {
                self.misplaced(Some(after.span.clone()), "`after` is only allowed on date and datetime fields");
            }
        }
        if let Some(known) = &raw.known {
            if !is_string {
                self.misplaced(Some(known.span.clone()), "`known` is only allowed on string fields");
            } else if !matches!(self.lists.get(&known.v), Some(ValueList::Plain(_))) {
                let p = Problem::new(known.span.clone(), format!("unknown value list `{}`", known.v))
                    .suggest(&known.v, self.raw.lists.iter().map(|l| l.name.v.as_str()));
                self.problems.push(p);
            }
        }
        if let Some(dep) = &raw.depends_on {
            self.sibling(dep, siblings);
            field.depends_on = Some(dep.v.clone());
        }
        if let FieldType::Enum(list) | FieldType::Code(list) = &field.ty {
            let keyed = matches!(self.lists.get(list), Some(ValueList::ByKey(_)));
            if keyed != field.depends_on.is_some() {
                self.problems.push(Problem::new(
                    ty_raw.span.clone(),
                    "a list keyed by value needs `depends_on`, and `depends_on` needs a keyed list",
                ));
            }
        } else if let Some(dep) = &raw.depends_on {
            self.misplaced(Some(dep.span.clone()), "`depends_on` is only allowed on enum and code fields");
        }
        field.codes = FieldCodes {
            missing: self.rule_code(&raw.missing_code),
            empty: self.rule_code(&raw.empty_code),
            range: self.rule_code(&raw.range_code),
            only_on: self.rule_code(&raw.only_on_code),
            unique: self.rule_code(&raw.unique_code),
            unlisted: self.rule_code(&raw.unlisted_code),
            future: self.rule_code(&raw.future_code),
            plausible: self.rule_code(&raw.plausible_code),
            known: self.rule_code(&raw.known_code),
        };
        field.column = columns.len();
        if let Some(raw_obj) = nested_object {
            // The object's presence column, then its own columns.
            columns.push(Column { name: format!("{prefix}{name}"), kind: ColumnKind::Present });
            let nested_prefix = format!("{prefix}{name}.");
            let id = self.object(&raw_obj.name.v, &raw_obj.fields.v, table, &nested_prefix, columns, depth + 1);
            field.ty = FieldType::Object(id);
        } else {
            columns.push(Column { name: format!("{prefix}{name}"), kind: field.ty.column_kind() });
        }
        Some(field)
    }

    fn misplaced(&mut self, span: Option<std::ops::Range<usize>>, message: &str) {
        self.problems.push(Problem::new(span.unwrap_or(0..0), message.to_owned()).label("not allowed here"));
    }

    fn sibling(&mut self, name: &Sp<String>, siblings: &[RawField]) {
        let names = siblings.iter().filter_map(|s| s.name.as_ref().map(|n| n.v.as_str()));
        if !names.clone().any(|n| n == name.v) {
            let p = Problem::new(name.span.clone(), format!("`{}` is not a field of this object", name.v))
                .suggest(&name.v, names);
            self.problems.push(p);
        }
    }
}

/// A parsed `type`: a complete type, or an object still to be laid out in its parent's row.
enum Parsed<'a> {
    Type(FieldType),
    Object(&'a RawObject),
}

fn placeholder_field() -> Field {
    Field {
        name: "value".to_owned(),
        ty: FieldType::Json,
        required: false,
        null_ok: true,
        not_blank: false,
        multiline: false,
        min: None,
        min_items: 0,
        check: None,
        only_on: None,
        unique: None,
        depends_on: None,
        not_future: false,
        plausible: (None, None),
        known: None,
        after: None,
        codes: FieldCodes::default(),
        doc: String::new(),
        column: 0,
    }
}

#[cfg(test)]
mod tests;
