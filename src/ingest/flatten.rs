//! The schema-driven streaming deserialiser: JSON lines straight into column buffers.
//!
//! Each line is parsed by serde_json through [`DeserializeSeed`]s that know, from the schema,
//! which table and column every key belongs to. No `serde_json::Value` tree is built: strings
//! are copied once, from the input into the column's bytes. A value of the wrong JSON type, a
//! missing or null required key and an unknown key become findings with their attr path; the
//! row goes on with a null there. A line that is not JSON is rolled back from every table and
//! becomes one `invalid_json` finding, so no partial account is ever left behind.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::columns::TableBuf;
use super::reader::{Chunk, MAX_LINE};
use crate::diagnostics::closest;
use crate::findings::{Finding, NON_FIELD_ERRORS, codes, quote};
use crate::schema::{Field, FieldType, Object, ObjectId, Schema, Severity, TableBody, TableId};

/// What one chunk became: one batch per table (in schema order), and its findings in line order.
#[derive(Debug)]
pub struct ChunkOutput {
    pub tables: Vec<RecordBatch>,
    pub findings: Vec<Finding>,
    /// Lines that became an account row.
    pub accounts: u64,
    /// Lines that were not empty.
    pub lines: u64,
    /// Lines that were empty or only white space: skipped, with no outcome.
    pub blank: u64,
}

/// Flattens one chunk. Pure: the same chunk always gives the same output.
pub fn flatten_chunk(schema: &Schema, arrow: &[SchemaRef], chunk: &Chunk) -> ChunkOutput {
    let mut ctx = Ctx::new(schema);
    match chunk {
        Chunk::Lines { first_line, bytes } => {
            for (line_no, line) in lines(*first_line, bytes) {
                ctx.line(line_no, line);
            }
        }
        Chunk::TooLong { line, bytes } => {
            ctx.lines += 1;
            ctx.line = *line;
            ctx.report_line(
                codes::LINE_TOO_LONG,
                format!("the line has {bytes} bytes; the limit is {MAX_LINE} bytes (16 MiB)"),
            );
            ctx.flush(false);
        }
    }
    ctx.finish(arrow)
}

/// The lines of a chunk's bytes that start at line `first_line`, with their numbers, as the
/// flattener reads them: without their newline, and line 1 without a UTF-8 byte order mark.
pub fn lines(first_line: u64, bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    // The piece after the chunk's last newline is not a line.
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    // memchr finds the breaks many bytes at a time; a byte-wise split cost 5 % of a validate
    // (issue 15).
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    let mut start = 0;
    (first_line..).zip(ends).map(move |(line_no, end)| {
        let mut line = &body[start..end];
        start = end + 1;
        if line_no == 1 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        (line_no, line)
    })
}

/// A step of the attr path of the value being parsed.
#[derive(Debug, Clone, Copy)]
enum Seg<'s> {
    Key(&'s str),
    Index(u32),
}

/// A finding of the current line, before the account's keys are known.
struct Pending {
    attr: String,
    code: String,
    severity: Severity,
    detail: String,
    value: Option<String>,
}

struct Ctx<'s> {
    schema: &'s Schema,
    tables: Vec<TableBuf>,
    findings: Vec<Finding>,
    pending: Vec<Pending>,
    path: Vec<Seg<'s>>,
    /// Row counts at the start of the current line, for rolling it back.
    marks: Vec<usize>,
    line: u64,
    account: u32,
    accounts: u64,
    lines: u64,
    blank: u64,
    supplier_col: Option<usize>,
    account_number_col: Option<usize>,
}

impl<'s> Ctx<'s> {
    fn new(schema: &'s Schema) -> Self {
        let col = |name: &str| schema.root().columns.iter().position(|c| c.name == name);
        Self {
            schema,
            tables: schema.tables.iter().map(TableBuf::new).collect(),
            findings: Vec::new(),
            pending: Vec::new(),
            path: Vec::new(),
            marks: Vec::new(),
            line: 0,
            account: 0,
            accounts: 0,
            lines: 0,
            blank: 0,
            supplier_col: col("import_supplier"),
            account_number_col: col("external_account_number"),
        }
    }

    fn line(&mut self, line_no: u64, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            self.blank += 1;
            return;
        }
        self.lines += 1;
        self.line = line_no;
        if line.len() > MAX_LINE {
            self.report_line(
                codes::LINE_TOO_LONG,
                format!("the line has {} bytes; the limit is {MAX_LINE} bytes (16 MiB)", line.len()),
            );
            self.flush(false);
            return;
        }
        self.marks.clear();
        self.marks.extend(self.tables.iter().map(TableBuf::rows));
        self.path.clear();
        self.account = u32::try_from(self.tables[0].rows()).expect("fewer than 2^32 accounts per chunk");
        // One UTF-8 check for the whole line; `from_str` then skips the check per string.
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(e) => {
                let detail = format!("not valid JSON: invalid UTF-8 at column {}", e.valid_up_to() + 1);
                self.report_line(codes::INVALID_JSON, detail);
                self.flush(false);
                return;
            }
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let result = RootSeed { ctx: self }.deserialize(&mut de).and_then(|kind| de.end().map(|()| kind));
        match result {
            Ok(None) => {
                self.accounts += 1;
                self.flush(true);
            }
            Ok(Some(kind)) => {
                self.rollback();
                self.report_line(codes::INVALID_JSON, format!("the line is {kind}, not a JSON object"));
                self.flush(false);
            }
            Err(err) => {
                self.rollback();
                self.report_line(codes::INVALID_JSON, json_error_detail(&err));
                self.flush(false);
            }
        }
    }

    fn rollback(&mut self) {
        for (table, mark) in self.tables.iter_mut().zip(&self.marks) {
            table.truncate(*mark);
        }
        self.pending.clear();
    }

    fn attr(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            if !out.is_empty() {
                out.push('.');
            }
            match seg {
                Seg::Key(k) => out.push_str(k),
                Seg::Index(i) => out.push_str(&i.to_string()),
            }
        }
        if out.is_empty() { NON_FIELD_ERRORS.to_owned() } else { out }
    }

    fn attr_with(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.attr()) }
    }

    fn report(&mut self, attr: String, code: &str, detail: String, value: Option<String>) {
        let severity = self.schema.severity(code);
        if severity != Severity::Off {
            self.pending.push(Pending { attr, code: code.to_owned(), severity, detail, value });
        }
    }

    fn report_line(&mut self, code: &str, detail: String) {
        self.report(NON_FIELD_ERRORS.to_owned(), code, detail, None);
    }

    /// Moves the line's findings out, with the account's keys when the line made an account.
    fn flush(&mut self, has_account: bool) {
        let key = |col: Option<usize>| {
            let row = self.account as usize;
            col.filter(|_| has_account).and_then(|c| self.tables[0].columns[c].str_at(row)).map(str::to_owned)
        };
        let supplier = key(self.supplier_col);
        let account = key(self.account_number_col);
        for p in self.pending.drain(..) {
            self.findings.push(Finding {
                line: self.line,
                import_supplier: supplier.clone(),
                external_account_number: account.clone(),
                attr: p.attr,
                code: p.code,
                severity: p.severity,
                detail: p.detail,
                value: p.value,
            });
        }
    }

    fn finish(self, arrow: &[SchemaRef]) -> ChunkOutput {
        let tables = self.tables.into_iter().zip(arrow).map(|(t, schema)| t.finish(schema.clone())).collect();
        ChunkOutput { tables, findings: self.findings, accounts: self.accounts, lines: self.lines, blank: self.blank }
    }

    fn set_str(&mut self, table: TableId, column: usize, value: &str) {
        self.tables[table.0].columns[column].set_str(value);
    }
}

fn json_error_detail(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let message = match text.rfind(" at line ") {
        Some(pos) => &text[..pos],
        None => text.as_str(),
    };
    format!("not valid JSON: {message} (column {})", err.column())
}

/// A JSON value met where the schema wanted something else, for findings.
enum Found<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(&'a str),
    Object,
    List,
}

impl Found<'_> {
    fn describe(&self) -> String {
        match self {
            Found::Null => "null".to_owned(),
            Found::Bool(b) => format!("the boolean {b}"),
            Found::I64(_) | Found::U64(_) | Found::F64(_) => format!("the number {}", self.text().unwrap_or_default()),
            Found::Str(s) => format!("the string {}", quote(s)),
            Found::Object => "an object".to_owned(),
            Found::List => "a list".to_owned(),
        }
    }

    /// The value as text for the finding's `value` column.
    fn text(&self) -> Option<String> {
        match self {
            Found::Bool(b) => Some(b.to_string()),
            Found::I64(v) => Some(v.to_string()),
            Found::U64(v) => Some(v.to_string()),
            Found::F64(v) => Some(v.to_string()),
            Found::Str(s) => Some((*s).to_owned()),
            Found::Null | Found::Object | Found::List => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Found::Null => "null",
            Found::Bool(_) => "a boolean",
            Found::I64(_) | Found::U64(_) | Found::F64(_) => "a number",
            Found::Str(_) => "a string",
            Found::Object => "an object",
            Found::List => "a list",
        }
    }
}

/// Receives whatever JSON value comes; the default for objects and lists drains them and
/// treats them as an unexpected scalar.
trait Handler<'de>: Sized {
    type Out;
    fn scalar(self, found: Found<'_>) -> Self::Out;
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.scalar(Found::Object))
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.scalar(Found::List))
    }
}

/// Adapts a [`Handler`] to serde's `Visitor`.
struct Any<H>(H);

impl<'de, H: Handler<'de>> Visitor<'de> for Any<H> {
    type Value = H::Out;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<H::Out, E> {
        Ok(self.0.scalar(Found::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<H::Out, E> {
        Ok(self.0.scalar(Found::I64(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<H::Out, E> {
        Ok(self.0.scalar(Found::U64(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<H::Out, E> {
        Ok(self.0.scalar(Found::F64(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<H::Out, E> {
        Ok(self.0.scalar(Found::Str(v)))
    }
    fn visit_unit<E>(self) -> Result<H::Out, E> {
        Ok(self.0.scalar(Found::Null))
    }
    fn visit_none<E>(self) -> Result<H::Out, E> {
        Ok(self.0.scalar(Found::Null))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<H::Out, A::Error> {
        self.0.map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<H::Out, A::Error> {
        self.0.seq(seq)
    }
}

/// The top level of a line: an account object. Returns the JSON kind when it is not one.
struct RootSeed<'c, 's> {
    ctx: &'c mut Ctx<'s>,
}

impl<'de> DeserializeSeed<'de> for RootSeed<'_, '_> {
    type Value = Option<&'static str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(Any(self))
    }
}

impl<'de> Handler<'de> for RootSeed<'_, '_> {
    type Out = Option<&'static str>;
    fn scalar(self, found: Found<'_>) -> Self::Out {
        Some(found.kind())
    }
    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let root = TableId(0);
        let TableBody::Record(object) = ctx.schema.root().body else {
            return Err(A::Error::custom("the schema's root table must hold objects"));
        };
        let row = ctx.tables[0].open_row(ctx.line, ctx.account, None, 0);
        object_entries(ctx, root, object, row, map)?;
        Ok(None)
    }
}

/// Looks a key up among an object's fields, trying the next field in schema order first.
struct KeySeed<'o> {
    object: &'o Object,
    guess: usize,
}

enum Key {
    Known(usize),
    Unknown(String),
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        // Dumps usually keep the schema's key order, skipping absent optional keys: try the
        // next few fields before hashing.
        let fields = &self.object.fields;
        let ahead = fields.len().min(self.guess + 4);
        if let Some(i) = (self.guess..ahead).find(|&i| crate::text::same(&fields[i].name, key)) {
            return Ok(Key::Known(i));
        }
        Ok(match self.object.field_index(key) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(key.to_owned()),
        })
    }
}

/// The entries of an object whose fields live in row `row` of `table`.
fn object_entries<'de, 's, A: MapAccess<'de>>(
    ctx: &mut Ctx<'s>,
    table: TableId,
    object: ObjectId,
    row: u32,
    mut map: A,
) -> Result<(), A::Error> {
    let schema: &'s Schema = ctx.schema;
    let obj = schema.object(object);
    let mut seen: u128 = 0;
    let mut guess = 0;
    while let Some(key) = map.next_key_seed(KeySeed { object: obj, guess })? {
        match key {
            Key::Known(i) => {
                let field = &obj.fields[i];
                if seen & (1 << i) != 0 {
                    map.next_value::<IgnoredAny>()?;
                    let detail = format!(
                        "duplicate key {:?} at {}; the first value is kept",
                        field.name,
                        ctx.attr_with(&field.name)
                    );
                    ctx.report_line(codes::INVALID_JSON, detail);
                    continue;
                }
                seen |= 1 << i;
                guess = i + 1;
                ctx.path.push(Seg::Key(&field.name));
                map.next_value_seed(FieldSeed { ctx: &mut *ctx, table, row, field })?;
                ctx.path.pop();
            }
            Key::Unknown(name) => {
                map.next_value::<IgnoredAny>()?;
                let mut detail = format!("unknown field {:?}", name);
                if let Some(hint) = closest(&name, obj.fields.iter().map(|f| f.name.as_str())) {
                    detail.push_str(&format!("; did you mean {hint:?}?"));
                }
                let attr = ctx.attr_with(&name);
                ctx.report(attr, codes::UNKNOWN_FIELD, detail, None);
            }
        }
    }
    for (i, field) in obj.fields.iter().enumerate() {
        if field.required && seen & (1 << i) == 0 {
            let attr = ctx.attr_with(&field.name);
            ctx.report(attr, field.codes.missing_or(codes::REQUIRED), format!("{:?} is required", field.name), None);
        }
    }
    Ok(())
}

/// The value of one field of the open row of `table`.
struct FieldSeed<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    table: TableId,
    row: u32,
    field: &'s Field,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.field.ty == FieldType::Json {
            let raw: &'de RawValue = Deserialize::deserialize(d)?;
            // Capturing the text neither decodes its strings nor reads its numbers, so an escape
            // that names no character (a lone surrogate, `"\ud800"`) or a number no reader can
            // hold (`1e400`) would pass here and break every reader of the stored JSON. Decoding
            // it finds both: the line is then `invalid_json`, as for the same text in any other
            // field.
            if let Err(e) = serde_json::from_str::<serde_json::Value>(raw.get()) {
                // The message without the position inside the value; the line's column follows.
                let message = e.to_string();
                let message = message.split(" at line ").next().unwrap_or_default();
                return Err(serde::de::Error::custom(format!("{message} in the JSON value of {:?}", self.field.name)));
            }
            if raw.get() == "null" {
                self.scalar(Found::Null);
            } else {
                self.ctx.set_str(self.table, self.field.column, raw.get());
            }
            return Ok(());
        }
        d.deserialize_any(Any(self))
    }
}

impl<'de> Handler<'de> for FieldSeed<'_, '_> {
    type Out = ();

    fn scalar(self, found: Found<'_>) {
        let FieldSeed { ctx, table, field, .. } = self;
        let col = field.column;
        match (&field.ty, &found) {
            (_, Found::Null) => {
                if !field.null_ok {
                    let detail = format!("{:?} may not be null", field.name);
                    ctx.report(ctx.attr(), field.codes.missing_or(codes::NULL), detail, None);
                }
            }
            (FieldType::Bool, Found::Bool(b)) => ctx.tables[table.0].columns[col].set_bool(*b),
            (FieldType::Int { .. }, Found::I64(v)) => ctx.tables[table.0].columns[col].set_i64(*v),
            (FieldType::Int { .. }, Found::U64(v)) if i64::try_from(*v).is_ok() => {
                ctx.tables[table.0].columns[col].set_i64(*v as i64);
            }
            (FieldType::Decimal { .. }, Found::I64(_) | Found::U64(_) | Found::F64(_)) => {
                let text = found.text().expect("numbers have text");
                ctx.set_str(table, col, &text);
            }
            (
                FieldType::String { .. }
                | FieldType::Date
                | FieldType::DateTime
                | FieldType::Enum(_)
                | FieldType::Code(_)
                | FieldType::Decimal { .. },
                Found::Str(s),
            ) => ctx.set_str(table, col, s),
            (ty, _) => {
                let code = if matches!(ty, FieldType::List(_)) { codes::NOT_A_LIST } else { codes::INVALID_TYPE };
                let detail = format!("expected {}, found {}", ty.json_expectation(), found.describe());
                ctx.report(ctx.attr(), code, detail, found.text());
            }
        }
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let FieldType::Object(object) = self.field.ty else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            self.scalar(Found::Object);
            return Ok(());
        };
        self.ctx.tables[self.table.0].columns[self.field.column].set_bool(true);
        object_entries(self.ctx, self.table, object, self.row, map)
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let FieldType::List(child) = self.field.ty else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            self.scalar(Found::List);
            return Ok(());
        };
        let mut index = 0u32;
        loop {
            self.ctx.path.push(Seg::Index(index));
            let element = ElementSeed { ctx: &mut *self.ctx, table: child, parent: self.row, index };
            let more = seq.next_element_seed(element)?;
            self.ctx.path.pop();
            if more.is_none() {
                break;
            }
            index += 1;
        }
        self.ctx.tables[self.table.0].columns[self.field.column].set_u32(index);
        Ok(())
    }
}

/// One element of a list: a row of the child table.
struct ElementSeed<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    table: TableId,
    parent: u32,
    index: u32,
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let schema = self.ctx.schema;
        match &schema.table(self.table).body {
            TableBody::Record(_) => d.deserialize_any(Any(self)),
            TableBody::Scalar(field) => {
                let ctx = self.ctx;
                let row = ctx.tables[self.table.0].open_row(ctx.line, ctx.account, Some(self.parent), self.index);
                FieldSeed { ctx, table: self.table, row, field }.deserialize(d)
            }
        }
    }
}

impl<'de> Handler<'de> for ElementSeed<'_, '_> {
    type Out = ();

    fn scalar(self, found: Found<'_>) {
        let detail = format!("expected an object, found {}", found.describe());
        let attr = self.ctx.attr();
        self.ctx.report(attr, codes::INVALID_TYPE, detail, found.text());
    }

    fn map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let TableBody::Record(object) = ctx.schema.table(self.table).body else {
            unreachable!("scalar tables are handled in deserialize")
        };
        let row = ctx.tables[self.table.0].open_row(ctx.line, ctx.account, Some(self.parent), self.index);
        object_entries(ctx, self.table, object, row, map)
    }
}

#[cfg(test)]
mod tests;
