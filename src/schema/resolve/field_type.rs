//! A field's type: `string(n)`, `int(a..b)`, `decimal(p,s)`, enums, code lists, lists and
//! objects, parsed from the schema text with every mistake reported at its place.

use super::*;

impl<'a> Resolver<'a> {
    pub(super) fn field_type(
        &mut self,
        name: &str,
        ty: &Sp<String>,
        raw: &RawField,
        table: TableId,
        prefix: &str,
        depth: usize,
    ) -> Option<Parsed<'a>> {
        let (base, arg) = match ty.v.split_once('(') {
            Some((base, rest)) => match rest.strip_suffix(')') {
                Some(arg) => (base.trim(), Some(arg.trim())),
                None => return self.bad_type(ty, "an opening `(` without its closing `)`"),
            },
            None => (ty.v.trim(), None),
        };
        let values_allowed = matches!(base, "enum" | "code");
        if let Some(values) = &raw.values
            && !values_allowed
        {
            self.misplaced(
                Some(values.span.clone()),
                &format!("`values` is only allowed on enum and code fields, not on `{base}`"),
            );
        }
        let parsed = match (base, arg) {
            ("string", None) => FieldType::String { max_len: None },
            ("string", Some(n)) => match n.parse::<u32>() {
                Ok(n) if n > 0 => FieldType::String { max_len: Some(n) },
                _ => return self.bad_type(ty, "`string(n)` needs a positive length"),
            },
            ("bool", None) => FieldType::Bool,
            ("int", Some(range)) => {
                match range.split_once("..").map(|(a, b)| (a.trim().parse::<i64>(), b.trim().parse::<i64>())) {
                    Some((Ok(min), Ok(max))) if min <= max => FieldType::Int { min, max },
                    _ => return self.bad_type(ty, "`int(a..b)` needs a range of integers with a <= b"),
                }
            }
            ("decimal", Some(ps)) => {
                match ps.split_once(',').map(|(p, s)| (p.trim().parse::<u8>(), s.trim().parse::<u8>())) {
                    Some((Ok(whole), Ok(scale))) if whole + scale <= 38 && whole + scale > 0 => {
                        FieldType::Decimal { whole, scale }
                    }
                    _ => return self.bad_type(ty, "`decimal(p,s)` needs whole and fraction digits, at most 38 in all"),
                }
            }
            ("date", None) => FieldType::Date,
            ("datetime", None) => FieldType::DateTime,
            ("json", None) => FieldType::Json,
            ("enum" | "code", arg) => {
                let list = match (arg, &raw.values) {
                    (Some(list), None) => {
                        if !self.lists.contains_key(list) {
                            let p = Problem::new(ty.span.clone(), format!("unknown value list `{list}`"))
                                .suggest(list, self.raw.lists.iter().map(|l| l.name.v.as_str()));
                            self.problems.push(p);
                        }
                        list.to_owned()
                    }
                    (None, Some(values)) => {
                        let list = format!(
                            "{}{prefix}{name}",
                            self.tables.last().map(|t| format!("{}.", t.name)).unwrap_or_default()
                        );
                        self.lists
                            .insert(list.clone(), ValueList::Plain(values.v.iter().map(|v| v.v.clone()).collect()));
                        list
                    }
                    _ => {
                        return self.bad_type(
                            ty,
                            "an enum or code field names a list, `enum(list)`, or has `values`, not both",
                        );
                    }
                };
                if base == "enum" { FieldType::Enum(list) } else { FieldType::Code(list) }
            }
            ("object", Some(obj)) => {
                if depth >= MAX_OBJECT_DEPTH {
                    return self.bad_type(ty, "objects nest too deep (is there a cycle?)");
                }
                let raw_all: &'a RawSchema = self.raw;
                return match raw_all.objects.iter().find(|o| o.name.v == obj) {
                    Some(raw_obj) => Some(Parsed::Object(raw_obj)),
                    None => {
                        let p = Problem::new(ty.span.clone(), format!("unknown object `{obj}`"))
                            .suggest(obj, raw_all.objects.iter().map(|o| o.name.v.as_str()));
                        self.problems.push(p);
                        None
                    }
                };
            }
            ("list", Some(child)) => {
                let Some(raw_child) = self.raw.tables.iter().find(|t| t.name.v == child) else {
                    let p = Problem::new(ty.span.clone(), format!("unknown table `{child}`"))
                        .suggest(child, self.raw.tables.iter().map(|t| t.name.v.as_str()));
                    self.problems.push(p);
                    return None;
                };
                if self.used_tables.contains_key(child) {
                    self.problems.push(
                        Problem::new(
                            ty.span.clone(),
                            format!("table `{child}` is already the element of another list"),
                        )
                        .help(
                            "each table belongs to one list; declare another table with `same_as` to reuse the fields",
                        ),
                    );
                    return None;
                }
                self.used_tables.insert(child.to_owned(), ty.span.clone());
                let id = TableId(self.tables.len());
                self.table(raw_child, Some((table, format!("{prefix}{name}"))), depth + 1);
                FieldType::List(id)
            }
            (other, _) => {
                let known =
                    ["string", "bool", "int", "decimal", "date", "datetime", "enum", "code", "json", "object", "list"];
                let hint = closest(other, known).map(|k| format!("did you mean `{k}`?"));
                let mut p = Problem::new(ty.span.clone(), format!("unknown type `{}` for field `{name}`", ty.v))
                    .label("unknown type");
                p = p.help(hint.unwrap_or_else(|| {
                    "types: string, string(n), bool, int(a..b), decimal(p,s), date, datetime, enum(list), code(list), json, object(name), list(table)".to_owned()
                }));
                self.problems.push(p);
                return None;
            }
        };
        Some(Parsed::Type(parsed))
    }

    fn bad_type(&mut self, ty: &Sp<String>, why: &str) -> Option<Parsed<'a>> {
        self.problems.push(Problem::new(ty.span.clone(), format!("bad type `{}`: {why}", ty.v)));
        None
    }
}
