//! Reading staged rows back: a staged directory streamed as windows of consecutive accounts,
//! and typed columns turned back into the flattened text form the rules read.
//!
//! Every staged table is sorted by `_account` (rows are written in account order), so one
//! pass over all tables at once yields each window's rows of every table without holding a
//! whole file in memory.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, TimestampMicrosecondType, UInt32Type};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::ingest::{ACCOUNT, KEY_COLUMNS, PARENT, arrow_schemas};
use crate::schema::Schema;

/// Rows per batch read from a staged file.
const READ_BATCH: usize = 8192;

/// One window of consecutive accounts of a staged directory.
#[derive(Debug, Clone)]
pub struct Window {
    /// The staged row (in the root table) of the window's first account.
    pub first_account: u64,
    /// One typed batch per table; `_account` and `_parent` are rows of the window, as in a
    /// freshly flattened chunk.
    pub tables: Vec<RecordBatch>,
}

/// Streams a staged directory (`staging/<supplier>/<run-id>/`) in windows of accounts.
pub struct StagedReader {
    tables: Vec<TableStream>,
    parents: Vec<Option<usize>>,
    next_account: u64,
    accounts: u64,
}

struct TableStream {
    reader: ParquetRecordBatchReader,
    schema: SchemaRef,
    buffered: VecDeque<RecordBatch>,
    /// Rows handed out so far: the file row of the next window's first row.
    rows_out: u64,
}

impl StagedReader {
    pub fn open(schema: &Schema, dir: &Path) -> io::Result<Self> {
        let mut tables = Vec::with_capacity(schema.tables.len());
        let mut accounts = 0;
        for table in &schema.tables {
            let path = dir.join(format!("{}.parquet", table.name));
            let file = fs_err::File::open(&path)?.into_parts().0;
            let err = |e: parquet::errors::ParquetError| io::Error::other(format!("reading {}: {e}", path.display()));
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(err)?;
            if table.parent.is_none() {
                accounts = builder.metadata().file_metadata().num_rows() as u64;
            }
            let schema = builder.schema().clone();
            let reader = builder.with_batch_size(READ_BATCH).build().map_err(err)?;
            tables.push(TableStream { reader, schema, buffered: VecDeque::new(), rows_out: 0 });
        }
        Ok(Self { tables, parents: schema.parent_indices(), next_account: 0, accounts })
    }

    /// Accounts in the directory.
    pub fn accounts(&self) -> u64 {
        self.accounts
    }

    /// The staged row of the next window's first account.
    pub fn position(&self) -> u64 {
        self.next_account
    }

    /// The rows of the next `n` accounts of every table; `None` after the last account.
    pub fn next_window(&mut self, n: u64) -> io::Result<Option<Window>> {
        if self.next_account >= self.accounts {
            return Ok(None);
        }
        let first = self.next_account;
        let end = (first + n.max(1)).min(self.accounts);
        let starts: Vec<u64> = self.tables.iter().map(|t| t.rows_out).collect();
        let mut tables = Vec::with_capacity(self.tables.len());
        for (t, stream) in self.tables.iter_mut().enumerate() {
            let batch = stream.take_until(end)?;
            let parent_start = self.parents[t].map(|p| starts[p]);
            tables.push(rebase(batch, first, parent_start));
        }
        self.next_account = end;
        Ok(Some(Window { first_account: first, tables }))
    }
}

impl TableStream {
    /// Every remaining row whose `_account` is below `end`, as one batch.
    fn take_until(&mut self, end: u64) -> io::Result<RecordBatch> {
        let mut parts = Vec::new();
        loop {
            if self.buffered.is_empty() {
                match self.reader.next() {
                    Some(batch) => self.buffered.push_back(batch.map_err(io::Error::other)?),
                    None => break,
                }
            }
            let batch = self.buffered.pop_front().expect("just filled");
            let accounts = batch.column_by_name(ACCOUNT).expect("key column").as_primitive::<UInt32Type>();
            let cut = accounts.values().partition_point(|a| u64::from(*a) < end);
            if cut < batch.num_rows() {
                self.buffered.push_front(batch.slice(cut, batch.num_rows() - cut));
                parts.push(batch.slice(0, cut));
                break;
            }
            parts.push(batch);
        }
        let batch = arrow_select::concat::concat_batches(&self.schema, &parts).map_err(io::Error::other)?;
        self.rows_out += batch.num_rows() as u64;
        Ok(batch)
    }
}

/// Shifts `_account` and `_parent` from file rows to window rows.
fn rebase(batch: RecordBatch, first_account: u64, parent_start: Option<u64>) -> RecordBatch {
    let shift = |name: &str, by: u64, columns: &mut Vec<ArrayRef>| {
        let i = batch.schema().index_of(name).expect("key column");
        let by = u32::try_from(by).expect("fewer than 2^32 rows per table");
        let shifted: UInt32Array = batch.column(i).as_primitive::<UInt32Type>().unary(|v| v - by);
        columns[i] = Arc::new(shifted);
    };
    let mut columns = batch.columns().to_vec();
    shift(ACCOUNT, first_account, &mut columns);
    if let Some(start) = parent_start {
        shift(PARENT, start, &mut columns);
    }
    RecordBatch::try_new(batch.schema(), columns).expect("same schema, same lengths")
}

/// Typed staged tables back in the flattened text form (`arrow_schemas`), for the rules:
/// decimals without trailing zeros, dates as `YYYY-MM-DD`, datetimes as RFC 3339 in UTC.
pub fn to_text(schema: &Schema, typed: &[RecordBatch]) -> Vec<RecordBatch> {
    arrow_schemas(schema)
        .into_iter()
        .zip(typed)
        .map(|(text_schema, batch)| {
            let columns = batch
                .columns()
                .iter()
                .enumerate()
                .map(|(i, col)| if i < KEY_COLUMNS { col.clone() } else { text_column(col) })
                .collect();
            RecordBatch::try_new(text_schema, columns).expect("text columns match the flattened schema")
        })
        .collect()
}

/// Writes the value of one row into a string builder's current slot.
type WriteValue = Box<dyn Fn(usize, &mut StringBuilder) -> std::fmt::Result>;

fn text_column(col: &ArrayRef) -> ArrayRef {
    use std::fmt::Write;
    let write: WriteValue = match col.data_type() {
        DataType::Decimal128(_, scale) => {
            let c = col.as_primitive::<Decimal128Type>().clone();
            let scale = *scale as u32;
            Box::new(move |r, b| b.write_str(&decimal_text(c.value(r), scale)))
        }
        DataType::Date32 => {
            let c = col.as_primitive::<Date32Type>().clone();
            Box::new(move |r, b| {
                // NaiveDate displays as YYYY-MM-DD; day 719,163 of the common era is 1970-01-01.
                let d = chrono::NaiveDate::from_num_days_from_ce_opt(c.value(r) + 719_163)
                    .expect("staged dates are in range");
                write!(b, "{d}")
            })
        }
        DataType::Timestamp(_, _) => {
            let c = col.as_primitive::<TimestampMicrosecondType>().clone();
            Box::new(move |r, b| {
                let t = chrono::DateTime::from_timestamp_micros(c.value(r)).expect("staged instants are in range");
                b.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            })
        }
        _ => return col.clone(),
    };
    let mut b = StringBuilder::with_capacity(col.len(), col.len() * 12);
    for r in 0..col.len() {
        if col.is_valid(r) {
            write(r, &mut b).expect("writing to a string builder cannot fail");
            b.append_value("");
        } else {
            b.append_null();
        }
    }
    Arc::new(b.finish())
}

/// `units` × 10^-scale as decimal text with the fewest places that hold it exactly
/// (trailing zeros dropped). A staged value had at most as many places when it was written,
/// so no rule on places is stricter on the text than it was on the input.
pub fn decimal_text(units: i128, scale: u32) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let digits = units.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, frac) = padded.split_at(padded.len() - scale);
    match frac.trim_end_matches('0') {
        "" => format!("{sign}{whole}"),
        frac => format!("{sign}{whole}.{frac}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_round_trips_units() {
        assert_eq!(decimal_text(102_500, 6), "0.1025");
        assert_eq!(decimal_text(-7, 2), "-0.07");
        assert_eq!(decimal_text(2000, 2), "20");
        assert_eq!(decimal_text(5, 0), "5");
        assert_eq!(decimal_text(0, 3), "0");
        for (text, scale) in [("12.5", 2), ("-0.07", 2), ("0", 4)] {
            let units = super::super::typed::decimal_units(text, 9, scale).unwrap();
            let back = decimal_text(units, u32::from(scale));
            assert_eq!(super::super::typed::decimal_units(&back, 9, scale).unwrap(), units);
        }
    }
}
