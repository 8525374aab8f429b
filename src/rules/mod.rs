//! Validation rules: column-wise checks of every flattened table, driven by the schema.
//!
//! [`validate_tables`] runs over one chunk's batches (the output of
//! [`crate::ingest::flatten_chunk`]): every table's columns are checked in parallel by
//! [`field`] (lengths, blanks, value lists, dates, datetimes, decimals, integer ranges, empty
//! lists, identifier and format checks from [`formats`]) and [`unique`] (repeats within a parent
//! or an account); then the [`cross`]-field rules read tables together through the keys. Rules
//! are pure: the same batches give the same findings, in a fixed order
//! (table, column, row), which the caller merges with the flattener's findings by line.
//!
//! A value the flattener already reported (wrong JSON type, null) is null in its column and is
//! not checked again, so every problem is reported once, with the most specific code.

pub mod cross;
pub mod field;
pub mod formats;
pub mod unique;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch, StringArray};
use chrono::{NaiveDate, TimeZone};
use rayon::prelude::*;

use crate::findings::Finding;
use crate::ingest::{ACCOUNT, LINE, attr_path};
use crate::schema::{Schema, Severity, TableId};

/// What rules may depend on besides the data: the reference date for "in the future" and the
/// timezone in which naive datetimes and that date are read.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext {
    pub today: NaiveDate,
    pub tz: chrono_tz::Tz,
}

impl RuleContext {
    /// Today in `tz`, unless a reference date is given (for reproducible runs).
    pub fn new(today: Option<NaiveDate>, tz: chrono_tz::Tz) -> Self {
        let today = today.unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).date_naive());
        Self { today, tz }
    }

    /// The first instant after the reference date, in UTC.
    pub fn end_of_today(&self) -> chrono::DateTime<chrono::Utc> {
        let next = self.today.succ_opt().expect("the reference date is not the last representable day");
        let midnight = next.and_hms_opt(0, 0, 0).expect("midnight exists");
        match self.tz.from_local_datetime(&midnight).earliest() {
            Some(t) => t.with_timezone(&chrono::Utc),
            None => midnight.and_utc(),
        }
    }
}

/// Whether a value of `texts` can have an `invalid_characters` finding: the rule is on, and
/// the column's bytes hold one that starts a forbidden character. One scan of the column
/// settles the common case, a column without one; a scan per value cost 4 % of a re-stage
/// (issue 15).
fn may_refuse_characters(schema: &Schema, texts: &StringArray) -> bool {
    if schema.severity(crate::findings::codes::INVALID_CHARACTERS) == Severity::Off {
        return false;
    }
    let offsets = texts.value_offsets();
    let bytes = &texts.value_data()[offsets[0] as usize..offsets[texts.len()] as usize];
    crate::text::may_be_forbidden(bytes)
}

/// Runs every rule over one chunk's tables; findings in (table, column, row) order, then the
/// cross-field rules'. `prior` are the flattener's findings of the chunk: a value they report
/// is not absent, only unreadable.
pub fn validate_tables(schema: &Schema, ctx: &RuleContext, tables: &[RecordBatch], prior: &[Finding]) -> Vec<Finding> {
    let mut emitter = Emitter::new(schema, tables);
    emitter.tz = ctx.tz;
    emitter.prior = prior.iter().map(|f| (f.line, f.attr.clone())).collect();
    let per_table: Vec<Vec<Finding>> = schema
        .tables
        .par_iter()
        .map(|table| {
            let mut out = field::check_table(&emitter, ctx, table.id);
            out.extend(unique::check_table(&emitter, table.id));
            out
        })
        .collect();
    let cross: Vec<Vec<Finding>> = cross::RULES.par_iter().map(|rule| (rule.check)(&emitter)).collect();
    let mut findings: Vec<Finding> = per_table.into_iter().chain(cross).flatten().collect();
    findings.sort_by_key(|f| f.line);
    findings
}

/// Makes findings for rows of one chunk: the attr path, the line and the account's keys.
pub struct Emitter<'a> {
    pub schema: &'a Schema,
    pub tables: &'a [RecordBatch],
    supplier: Option<&'a StringArray>,
    number: Option<&'a StringArray>,
    /// (line, attr) of the flattener's findings.
    prior: std::collections::HashSet<(u64, String)>,
    /// Naive datetimes are read in this timezone (the pipeline's).
    pub tz: chrono_tz::Tz,
}

impl<'a> Emitter<'a> {
    pub fn new(schema: &'a Schema, tables: &'a [RecordBatch]) -> Self {
        let root = &tables[0];
        let string = |name: &str| root.column_by_name(name).map(|c| c.as_string::<i32>());
        Self {
            schema,
            tables,
            supplier: string("import_supplier"),
            number: string("external_account_number"),
            prior: std::collections::HashSet::new(),
            tz: crate::settings::DEFAULT_TIMEZONE,
        }
    }

    /// Whether the flattener already reported the value at `column` of a row (wrong type,
    /// null): its column is null, but the key was there.
    pub fn reported(&self, table: TableId, row: usize, column: &str) -> bool {
        if self.prior.is_empty() {
            return false;
        }
        let line =
            self.tables[table.0].column_by_name(LINE).expect("key column").as_primitive::<UInt64Type>().value(row);
        self.prior.contains(&(line, self.attr(table, row, column)))
    }

    /// The attr path of `column` (a column name, possibly empty) in row `row` of `table`.
    pub fn attr(&self, table: TableId, row: usize, column: &str) -> String {
        let path = attr_path(self.schema, self.tables, table, row);
        match (path.is_empty(), column.is_empty()) {
            (true, _) => column.to_owned(),
            (false, true) => path,
            (false, false) => format!("{path}.{column}"),
        }
    }

    /// A finding about `column` of a row, or `None` when the rule is turned off.
    pub fn finding(
        &self,
        table: TableId,
        row: usize,
        column: &str,
        code: &str,
        detail: String,
        value: Option<&str>,
    ) -> Option<Finding> {
        let severity = self.schema.severity(code);
        if severity == Severity::Off {
            return None;
        }
        let batch = &self.tables[table.0];
        let line = batch.column_by_name(LINE).expect("key column").as_primitive::<UInt64Type>().value(row);
        let account =
            batch.column_by_name(ACCOUNT).expect("key column").as_primitive::<UInt32Type>().value(row) as usize;
        let key = |col: Option<&StringArray>| col.filter(|c| c.is_valid(account)).map(|c| c.value(account).to_owned());
        Some(Finding {
            line,
            import_supplier: key(self.supplier),
            external_account_number: key(self.number),
            attr: self.attr(table, row, column),
            code: code.to_owned(),
            severity,
            detail,
            value: value.map(str::to_owned),
        })
    }
}
