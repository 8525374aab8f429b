//! The guide's validate outcome of each account: `200` with the validated data, or `400` with
//! the error envelope (docs/operations.md, "Validate").
//!
//! The 200 body is the account as the schema normalises it: known fields only, in schema
//! order, values as they came (decimals and dates as text), rebuilt from the flattened rows
//! through `_parent` and `_index`. Warnings ride along in a `"warnings"` array of the same
//! shape as `errors` (an extension the guide does not have). A line that is not an account
//! gets a 400 with its line-level errors and no account keys.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt16Builder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field as ArrowField, Schema as ArrowSchema, SchemaRef};
use serde_json::{Value, json};

use crate::findings::Finding;
use crate::ingest::{ChunkOutput, INDEX, KEY_COLUMNS, LINE, PARENT};
use crate::schema::{ColumnKind, FieldType, ObjectId, Schema, Severity, TableBody, TableId};

/// One account's (or one unreadable line's) validate outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub line: u64,
    pub import_supplier: Option<String>,
    pub external_account_number: Option<String>,
    pub status: u16,
    /// The response body as JSON text.
    pub body: String,
}

impl Outcome {
    /// The outcome as a JSON object with the columns of `outcomes.parquet` (the body as JSON).
    pub fn to_json(&self) -> Value {
        let body = serde_json::value::RawValue::from_string(self.body.clone()).expect("bodies are JSON text");
        json!({
            "line": self.line,
            "import_supplier": self.import_supplier,
            "external_account_number": self.external_account_number,
            "status": self.status,
            "body": body,
        })
    }
}

/// The outcome of every line of a chunk that produced an account or a finding, in line order.
pub fn chunk_outcomes(schema: &Schema, out: &ChunkOutput) -> Vec<Outcome> {
    let rebuilder = Rebuilder::new(schema, &out.tables);
    let mut outcomes = Vec::with_capacity(out.tables[0].num_rows());
    for_each_line(out, |line, account, findings| outcomes.push(outcome(&rebuilder, line, account, findings)));
    outcomes
}

/// The account JSON of every root row of `tables` (flattened text form), as a validate 200
/// rebuilds it without warnings: what `ferry push` sends to a stage endpoint.
pub fn account_bodies(schema: &Schema, tables: &[RecordBatch]) -> Vec<String> {
    let rebuilder = Rebuilder::new(schema, tables);
    (0..tables[0].num_rows())
        .map(|row| String::from_utf8(rebuilder.account(row)).expect("built from str values and serde_json output"))
        .collect()
}

/// Calls `f` for every line of a chunk that produced an account or a finding, in line order,
/// with the account's row in the root table and the line's findings.
pub fn for_each_line(out: &ChunkOutput, mut f: impl FnMut(u64, Option<usize>, &[Finding])) {
    let root = &out.tables[0];
    let lines = root.column_by_name(LINE).expect("key column").as_primitive::<UInt64Type>();
    let findings = &out.findings;
    let (mut next_finding, mut next_account) = (0, 0);
    loop {
        let account_line = (next_account < root.num_rows()).then(|| lines.value(next_account));
        let finding_line = findings.get(next_finding).map(|x| x.line);
        let line = match (account_line, finding_line) {
            (None, None) => break,
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
        };
        let start = next_finding;
        while findings.get(next_finding).is_some_and(|x| x.line == line) {
            next_finding += 1;
        }
        let account = (account_line == Some(line)).then(|| {
            next_account += 1;
            next_account - 1
        });
        f(line, account, &findings[start..next_finding]);
    }
}

/// The validate 400 body: every error, and the warnings beside them.
pub fn failed_validation_body(findings: &[Finding]) -> String {
    let (errors, warnings) = error_entries(findings);
    let mut body = json!({ "detail": "Could not validate account data.", "code": FAILED_VALIDATION, "errors": errors });
    if !warnings.is_empty() {
        body["warnings"] = Value::Array(warnings);
    }
    body.to_string()
}

/// The code of the validate 400 body.
pub const FAILED_VALIDATION: &str = crate::guide::Code::AccountFailedValidation.as_str();

fn error_entries(findings: &[Finding]) -> (Vec<Value>, Vec<Value>) {
    let entry = |f: &Finding| json!({ "detail": f.detail, "code": f.code, "attr": f.attr });
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).map(entry).collect();
    let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).map(entry).collect();
    (errors, warnings)
}

/// The outcome of one line from its findings; `account` is its row in the root table.
fn outcome(rebuilder: &Rebuilder<'_>, line: u64, account: Option<usize>, findings: &[Finding]) -> Outcome {
    let (errors, warnings) = error_entries(findings);
    let (status, body) = match account {
        Some(row) if errors.is_empty() => {
            // The account's JSON, written straight from the columns; warnings as a last key.
            let mut text = rebuilder.account(row);
            if !warnings.is_empty() {
                text.pop();
                text.extend_from_slice(b",\"warnings\":");
                text.extend_from_slice(Value::Array(warnings).to_string().as_bytes());
                text.push(b'}');
            }
            (200, String::from_utf8(text).expect("built from str values and serde_json output"))
        }
        _ => (400, failed_validation_body(findings)),
    };
    let key = |name: &str| account.and_then(|row| rebuilder.string(TableId(0), name, row));
    Outcome {
        line,
        import_supplier: key("import_supplier"),
        external_account_number: key("external_account_number"),
        status,
        body,
    }
}

/// Rebuilds nested JSON from one chunk's tables.
struct Rebuilder<'a> {
    schema: &'a Schema,
    tables: &'a [RecordBatch],
    /// Per table, per parent row: the child rows in `_index` order.
    children: Vec<Vec<Vec<usize>>>,
    /// Per object of the schema, per field: its key as JSON text with the colon (`"name":`),
    /// written once rather than escaped again for every row.
    keys: Vec<Vec<Vec<u8>>>,
    /// Per table, per schema column: the column, cast once to its concrete array type.
    columns: Vec<Vec<Column<'a>>>,
    /// The capacity to start a 200 body with: the last one's length, and some.
    size_hint: std::cell::Cell<usize>,
}

/// A flattened column as the rebuilder reads it: its nulls and its values, each row read
/// without a dynamic call or a cast.
struct Column<'a> {
    nulls: Option<&'a arrow_buffer::NullBuffer>,
    values: Values<'a>,
}

enum Values<'a> {
    Text(&'a arrow_array::StringArray),
    Bool(&'a arrow_array::BooleanArray),
    Int(&'a arrow_array::Int64Array),
    /// List lengths: only their presence is read.
    Lengths,
}

impl Column<'_> {
    fn is_valid(&self, row: usize) -> bool {
        self.nulls.is_none_or(|n| n.is_valid(row))
    }
}

impl<'a> Rebuilder<'a> {
    fn new(schema: &'a Schema, tables: &'a [RecordBatch]) -> Self {
        let children = schema
            .tables
            .iter()
            .map(|t| {
                let Some((parent, _)) = &t.parent else { return Vec::new() };
                let batch = &tables[t.id.0];
                let parents = batch.column_by_name(PARENT).expect("key column").as_primitive::<UInt32Type>();
                let index = batch.column_by_name(INDEX).expect("key column").as_primitive::<UInt32Type>();
                let mut groups = vec![Vec::new(); tables[parent.0].num_rows()];
                for row in 0..batch.num_rows() {
                    groups[parents.value(row) as usize].push(row);
                }
                for g in &mut groups {
                    g.sort_by_key(|r| index.value(*r));
                }
                groups
            })
            .collect();
        let keys = schema
            .objects
            .iter()
            .map(|o| {
                o.fields
                    .iter()
                    .map(|f| {
                        let mut key = Vec::with_capacity(f.name.len() + 3);
                        push_json_str(&mut key, &f.name);
                        key.push(b':');
                        key
                    })
                    .collect()
            })
            .collect();
        let columns = schema
            .tables
            .iter()
            .map(|t| {
                t.columns
                    .iter()
                    .enumerate()
                    .map(|(c, column)| {
                        let array = tables[t.id.0].column(KEY_COLUMNS + c);
                        let values = match column.kind {
                            ColumnKind::Utf8 => Values::Text(array.as_string::<i32>()),
                            ColumnKind::Bool | ColumnKind::Present => Values::Bool(array.as_boolean()),
                            ColumnKind::Int64 => Values::Int(array.as_primitive::<Int64Type>()),
                            ColumnKind::ListLen => Values::Lengths,
                        };
                        Column { nulls: array.nulls(), values }
                    })
                    .collect()
            })
            .collect();
        Self { schema, tables, children, keys, columns, size_hint: std::cell::Cell::new(0) }
    }

    fn string(&self, table: TableId, column: &str, row: usize) -> Option<String> {
        let c = self.tables[table.0].column_by_name(column)?.as_string::<i32>();
        c.is_valid(row).then(|| c.value(row).to_owned())
    }

    /// The JSON of the account in root row `row`. Its buffer starts at the last account's
    /// size: growing a 16 KB body from nothing copies it about twelve times.
    fn account(&self, row: usize) -> Vec<u8> {
        let mut text = Vec::with_capacity(self.size_hint.get());
        self.record(TableId(0), row, &mut text);
        self.size_hint.set(text.len() + 256);
        text
    }

    /// Writes the object of row `row` of `table` (or its scalar, for a list of scalars).
    fn record(&self, table: TableId, row: usize, out: &mut Vec<u8>) {
        match &self.schema.table(table).body {
            TableBody::Record(object) => self.object(table, *object, row, out),
            TableBody::Scalar(field) => {
                if !self.value(table, field, row, out) {
                    out.extend_from_slice(b"null");
                }
            }
        }
    }

    fn object(&self, table: TableId, object: ObjectId, row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (field, key) in self.schema.object(object).fields.iter().zip(&self.keys[object.0]) {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(key);
            if self.value(table, field, row, out) {
                first = false;
            } else if field.null_ok {
                out.extend_from_slice(b"null");
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        out.push(b'}');
    }

    /// Writes the value of `field` in `row`; false (writing nothing) when it is absent.
    fn value(&self, table: TableId, field: &crate::schema::Field, row: usize, out: &mut Vec<u8>) -> bool {
        let column = &self.columns[table.0][field.column];
        if !column.is_valid(row) {
            return false;
        }
        match (&field.ty, &column.values) {
            (FieldType::Object(o), _) => self.object(table, *o, row, out),
            (FieldType::List(child), _) => {
                out.push(b'[');
                let rows = self.children[child.0].get(row).map(Vec::as_slice).unwrap_or_default();
                for (i, r) in rows.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.record(*child, *r, out);
                }
                out.push(b']');
            }
            // Kept as its JSON text by the flattener.
            (FieldType::Json, Values::Text(c)) => out.extend_from_slice(c.value(row).as_bytes()),
            (_, Values::Bool(c)) => out.extend_from_slice(if c.value(row) { b"true" } else { b"false" }),
            (_, Values::Int(c)) => {
                use std::io::Write as _;
                write!(out, "{}", c.value(row)).expect("writing to a Vec cannot fail")
            }
            (_, Values::Text(c)) => push_json_str(out, c.value(row)),
            (_, Values::Lengths) => unreachable!("only lists have length columns"),
        }
        true
    }
}

/// Appends `s` as a JSON string literal, exactly as serde_json writes it. Most values need no
/// escape (serde_json escapes only `"`, `\\` and control characters) and are copied as they are.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // A fold without an early exit, so that the compiler checks many bytes at once.
    let needs_escape = s.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if !needs_escape {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
    }
}

/// The two kinds of `outcomes.parquet`, each with its own documented schema, named in the file's
/// Parquet metadata under [`OutcomesKind::KEY`] so that a reader never guesses from the columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomesKind {
    /// `ferry validate --out` (and a pipeline's validate stage): one row per line, the guide's
    /// validate outcome. Columns of [`arrow_schema()`]: `line`, `import_supplier`,
    /// `external_account_number`, `status` (200 or 400), `body` (JSON text).
    Validate,
    /// A run that writes the store (stage, create, reprocess): its audit rows. Columns of
    /// [`crate::stage::export::arrow_schema()`]: `run_id`, `operation`, `attempt`, the account's
    /// keys and `line`, `status`, `error_code`, `body`, `kraken_account_number`, `started_at`,
    /// `finished_at`.
    Audit,
}

impl OutcomesKind {
    /// The Parquet key-value metadata key that names the kind.
    pub const KEY: &str = "ferry.outcomes";

    pub const fn name(self) -> &'static str {
        match self {
            OutcomesKind::Validate => "validate",
            OutcomesKind::Audit => "audit",
        }
    }

    pub fn parse(name: &str) -> Option<OutcomesKind> {
        [OutcomesKind::Validate, OutcomesKind::Audit].into_iter().find(|k| k.name() == name)
    }

    /// Writer properties of an outcomes file of this kind: the shared ones, plus its name; and
    /// no min/max statistics for the `body` column, which holds nearly all of the file (a 200's
    /// body is the whole account): comparing every body cost a few percent of a validate, and
    /// nobody filters row groups by the lexical range of JSON bodies.
    pub fn writer_properties(self, schema: &crate::schema::Schema) -> parquet::file::properties::WriterProperties {
        use parquet::file::properties::EnabledStatistics;
        use parquet::schema::types::ColumnPath;
        crate::ingest::output::writer_properties_with(
            schema,
            "outcomes",
            vec![parquet::file::metadata::KeyValue::new(Self::KEY.to_owned(), self.name().to_owned())],
        )
        .into_builder()
        .set_column_statistics_enabled(ColumnPath::from("body"), EnabledStatistics::None)
        .build()
    }
}

/// The Arrow schema of a validate `outcomes.parquet` ([`OutcomesKind::Validate`]).
pub fn arrow_schema() -> SchemaRef {
    Arc::new(ArrowSchema::new(vec![
        ArrowField::new("line", DataType::UInt64, false),
        ArrowField::new("import_supplier", DataType::Utf8, true),
        ArrowField::new("external_account_number", DataType::Utf8, true),
        ArrowField::new("status", DataType::UInt16, false),
        ArrowField::new("body", DataType::Utf8, false),
    ]))
}

/// Outcomes as one batch of [`arrow_schema()`].
pub fn to_batch(outcomes: &[Outcome]) -> RecordBatch {
    let mut line = UInt64Builder::with_capacity(outcomes.len());
    let mut supplier = StringBuilder::new();
    let mut account = StringBuilder::new();
    let mut status = UInt16Builder::with_capacity(outcomes.len());
    // The bodies are nearly all of the batch: one allocation for them, not a doubling series.
    let mut body = StringBuilder::with_capacity(outcomes.len(), outcomes.iter().map(|o| o.body.len()).sum());
    for o in outcomes {
        line.append_value(o.line);
        supplier.append_option(o.import_supplier.as_deref());
        account.append_option(o.external_account_number.as_deref());
        status.append_value(o.status);
        body.append_value(&o.body);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(line.finish()),
        Arc::new(supplier.finish()),
        Arc::new(account.finish()),
        Arc::new(status.finish()),
        Arc::new(body.finish()),
    ];
    RecordBatch::try_new(arrow_schema(), columns).expect("columns match the outcomes schema")
}

#[cfg(test)]
mod tests {
    /// The copy-as-is path gives byte for byte what serde_json writes, escapes included.
    #[test]
    fn json_strings_are_written_as_serde_json_writes_them() {
        let mut samples: Vec<String> = (0u8..0x80).map(|b| format!("a{}b", b as char)).collect();
        samples.extend(
            ["", "Müller-Lüdenscheidt", "\u{7f}\u{2028}\u{1F600}", "\"quoted\"", "back\\slash"].map(String::from),
        );
        for s in samples {
            let mut ours = Vec::new();
            super::push_json_str(&mut ours, &s);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }
}
