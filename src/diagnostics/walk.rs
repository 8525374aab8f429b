//! Walking a spanned TOML tree (schema and pipeline files): each helper checks one value's
//! TOML type, records a [`Problem`] pointing at it when it is wrong, and keeps the span of
//! what it returns so that later checks can point at it too.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Problem;

/// A value with the byte span it came from.
#[derive(Debug, Clone)]
pub struct Sp<T> {
    pub v: T,
    pub span: Range<usize>,
}

/// The document's top-level table; a problem (and `None`) when the text is not TOML.
pub fn document<'i>(text: &'i str, problems: &mut Vec<Problem>) -> Option<Spanned<DeTable<'i>>> {
    match DeTable::parse(text) {
        Ok(doc) => Some(doc),
        Err(err) => {
            let span = err.span().unwrap_or(0..0);
            problems.push(Problem::new(span, format!("not valid TOML: {}", err.message().trim())));
            None
        }
    }
}

pub type Entry<'t, 'i> = (&'t Spanned<std::borrow::Cow<'i, str>>, &'t Spanned<DeValue<'i>>);

pub fn entries<'t, 'i>(value: &'t Spanned<DeValue<'i>>, what: &str, problems: &mut Vec<Problem>) -> Vec<Entry<'t, 'i>> {
    match value.get_ref() {
        DeValue::Table(t) => t.iter().collect(),
        _ => {
            problems.push(wrong_type(value, what, "a table"));
            Vec::new()
        }
    }
}

pub fn sp_key(key: &Spanned<std::borrow::Cow<'_, str>>) -> Sp<String> {
    Sp { v: key.get_ref().to_string(), span: key.span() }
}

pub fn string(value: &Spanned<DeValue<'_>>, what: &str, problems: &mut Vec<Problem>) -> Option<Sp<String>> {
    match value.get_ref() {
        DeValue::String(s) => Some(Sp { v: s.to_string(), span: value.span() }),
        _ => {
            problems.push(wrong_type(value, what, "a string"));
            None
        }
    }
}

pub fn boolean(value: &Spanned<DeValue<'_>>, what: &str, problems: &mut Vec<Problem>) -> Option<Sp<bool>> {
    match value.get_ref() {
        DeValue::Boolean(b) => Some(Sp { v: *b, span: value.span() }),
        _ => {
            problems.push(wrong_type(value, what, "true or false"));
            None
        }
    }
}

pub fn float(value: &Spanned<DeValue<'_>>, what: &str, problems: &mut Vec<Problem>) -> Option<Sp<f64>> {
    let parsed = match value.get_ref() {
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok().map(|i| i as f64),
        _ => None,
    };
    if parsed.is_none() {
        problems.push(wrong_type(value, what, "a number"));
    }
    parsed.map(|v| Sp { v, span: value.span() })
}

pub fn integer(value: &Spanned<DeValue<'_>>, what: &str, problems: &mut Vec<Problem>) -> Option<Sp<i64>> {
    let parsed = match value.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
        _ => None,
    };
    if parsed.is_none() {
        problems.push(wrong_type(value, what, "an integer"));
    }
    parsed.map(|v| Sp { v, span: value.span() })
}

pub fn string_array(
    value: &Spanned<DeValue<'_>>,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<Sp<Vec<Sp<String>>>> {
    let DeValue::Array(items) = value.get_ref() else {
        problems.push(wrong_type(value, what, "an array of strings"));
        return None;
    };
    let v = items.iter().filter_map(|item| string(item, what, problems)).collect();
    Some(Sp { v, span: value.span() })
}

pub fn wrong_type(value: &Spanned<DeValue<'_>>, what: &str, expected: &str) -> Problem {
    Problem::new(value.span(), format!("{what} must be {expected}, found {}", value.get_ref().type_str()))
        .label(format!("expected {expected}"))
}

pub fn unknown_key(key: &Spanned<std::borrow::Cow<'_, str>>, name: &str, within: &str, known: &[&str]) -> Problem {
    Problem::new(key.span(), format!("unknown key `{name}` in a {within}"))
        .label("not a known key")
        .suggest(name, known.iter().copied())
        .or_list(known)
}

impl Problem {
    /// Adds the list of valid keys as help when no close suggestion was found.
    pub fn or_list(self, known: &[&str]) -> Self {
        if self.help.is_some() {
            self
        } else {
            let list = known.join("`, `");
            self.help(format!("known keys: `{list}`"))
        }
    }
}
