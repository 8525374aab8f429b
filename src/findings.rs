//! Findings: one row per problem in the data, and the codes the engine itself reports.
//!
//! Bad data is never an `Err` in ferry: it is a [`Finding`] with the input line, the account's
//! keys where known, the attr path of the offending value (`customers.0.landline`), a rule code,
//! its severity, a sentence quoting the value, and the value itself.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef};

use crate::schema::Severity;

/// Rule codes reported by the engine (not named by a field of the schema).
pub mod codes {
    pub const INVALID_JSON: &str = "invalid_json";
    pub const LINE_TOO_LONG: &str = "line_too_long";
    pub const INVALID_TYPE: &str = "invalid_type";
    pub const REQUIRED: &str = "required";
    pub const NULL: &str = "null";
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    pub const NOT_A_LIST: &str = "not_a_list";
    /// A control or bidirectional control character in a text value (src/text.rs).
    pub const INVALID_CHARACTERS: &str = "invalid_characters";

    /// Every code the flattener can report; the schema must give each a severity.
    pub const ENGINE: &[&str] = &[INVALID_JSON, LINE_TOO_LONG, INVALID_TYPE, REQUIRED, NULL, UNKNOWN_FIELD, NOT_A_LIST];

    /// The codes the field rules report when a field names no code of its own (src/rules/field.rs).
    pub const FIELD: &[&str] = &[
        INVALID_CHARACTERS,
        "max_length",
        "blank",
        "invalid_choice",
        "unknown_code",
        "invalid_date",
        "invalid_datetime",
        "naive_datetime",
        "invalid_decimal",
        "max_whole_digits",
        "max_decimal_places",
        "min_value",
        "max_value",
        "empty",
        "date_in_future",
        "implausible_value",
        "start_date_later_than_end_date",
        "start_date_same_as_end_date",
    ];
}

/// The attr of a finding about the whole account (or a line that is not an account).
pub const NON_FIELD_ERRORS: &str = "non_field_errors";

/// One problem in the data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub line: u64,
    pub import_supplier: Option<String>,
    pub external_account_number: Option<String>,
    pub attr: String,
    pub code: String,
    pub severity: Severity,
    pub detail: String,
    pub value: Option<String>,
}

impl Finding {
    /// The finding as a JSON object with the columns of `findings.parquet`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "line": self.line,
            "import_supplier": self.import_supplier,
            "external_account_number": self.external_account_number,
            "attr": self.attr,
            "code": self.code,
            "severity": self.severity.as_str(),
            "detail": self.detail,
            "value": self.value,
        })
    }
}

/// The Arrow schema of `findings.parquet`; its columns are a contract with the users.
pub fn arrow_schema() -> SchemaRef {
    Arc::new(ArrowSchema::new(vec![
        Field::new("line", DataType::UInt64, false),
        Field::new("import_supplier", DataType::Utf8, true),
        Field::new("external_account_number", DataType::Utf8, true),
        Field::new("attr", DataType::Utf8, false),
        Field::new("code", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ]))
}

/// Findings as one Arrow batch with [`arrow_schema()`].
pub fn to_batch(findings: &[Finding]) -> RecordBatch {
    let n = findings.len();
    let mut line = UInt64Builder::with_capacity(n);
    let mut supplier = StringBuilder::new();
    let mut account = StringBuilder::new();
    let mut attr = StringBuilder::new();
    let mut code = StringBuilder::new();
    let mut severity = StringBuilder::new();
    let mut detail = StringBuilder::new();
    let mut value = StringBuilder::new();
    for f in findings {
        line.append_value(f.line);
        supplier.append_option(f.import_supplier.as_deref());
        account.append_option(f.external_account_number.as_deref());
        attr.append_value(&f.attr);
        code.append_value(&f.code);
        severity.append_value(f.severity.as_str());
        detail.append_value(&f.detail);
        value.append_option(f.value.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(line.finish()),
        Arc::new(supplier.finish()),
        Arc::new(account.finish()),
        Arc::new(attr.finish()),
        Arc::new(code.finish()),
        Arc::new(severity.finish()),
        Arc::new(detail.finish()),
        Arc::new(value.finish()),
    ];
    RecordBatch::try_new(arrow_schema(), columns).expect("columns match the findings schema")
}

/// Quotes a value for a finding's detail, shortened so that a huge value stays readable.
pub fn quote(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}… ({} characters)", value.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_has_the_contract_columns() {
        let f = Finding {
            line: 3,
            import_supplier: None,
            external_account_number: Some("A1".into()),
            attr: "customers".into(),
            code: codes::NOT_A_LIST.into(),
            severity: Severity::Error,
            detail: "d".into(),
            value: None,
        };
        let batch = to_batch(&[f]);
        assert_eq!(batch.num_rows(), 1);
        let names: Vec<_> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(
            names,
            ["line", "import_supplier", "external_account_number", "attr", "code", "severity", "detail", "value"]
        );
    }

    #[test]
    fn quote_shortens_long_values() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert!(quote(&"x".repeat(200)).ends_with("(200 characters)"));
    }
}
