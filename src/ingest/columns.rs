//! Column buffers for one chunk's tables, built row by row and finished into Arrow arrays.
//!
//! Arrow's builders cannot drop rows, but a line that turns out to be malformed half-way must
//! leave no trace in any table. These buffers are plain vectors that can be truncated back to
//! the row count at the start of the line, and become Arrow arrays without copying.
//!
//! A row is opened with every column null; the open row is always the last one of its table
//! (a table never nests inside itself), so values are written into the last slot.

use std::sync::Arc;

use arrow_array::types::{Int64Type, UInt32Type, UInt64Type};
use arrow_array::{ArrayRef, BooleanArray, PrimitiveArray, RecordBatch, StringArray};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;

use crate::schema::{ColumnKind, Table};

/// One column of one chunk.
#[derive(Debug)]
pub(crate) enum ColumnBuf {
    Utf8 { offsets: Vec<i32>, data: Vec<u8>, valid: Vec<bool> },
    Bool { values: Vec<bool>, valid: Vec<bool> },
    Int64 { values: Vec<i64>, valid: Vec<bool> },
    UInt32 { values: Vec<u32>, valid: Vec<bool> },
}

impl ColumnBuf {
    fn new(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Utf8 => ColumnBuf::Utf8 { offsets: vec![0], data: Vec::new(), valid: Vec::new() },
            ColumnKind::Bool | ColumnKind::Present => ColumnBuf::Bool { values: Vec::new(), valid: Vec::new() },
            ColumnKind::Int64 => ColumnBuf::Int64 { values: Vec::new(), valid: Vec::new() },
            ColumnKind::ListLen => ColumnBuf::UInt32 { values: Vec::new(), valid: Vec::new() },
        }
    }

    fn push_null(&mut self) {
        match self {
            ColumnBuf::Utf8 { offsets, valid, .. } => {
                offsets.push(*offsets.last().expect("offsets start with 0"));
                valid.push(false);
            }
            ColumnBuf::Bool { values, valid } => {
                values.push(false);
                valid.push(false);
            }
            ColumnBuf::Int64 { values, valid } => {
                values.push(0);
                valid.push(false);
            }
            ColumnBuf::UInt32 { values, valid } => {
                values.push(0);
                valid.push(false);
            }
        }
    }

    /// Sets the last (open) row's value. The schema decides the column's kind, and the
    /// flattener only calls the setter of that kind.
    pub(crate) fn set_str(&mut self, s: &str) {
        if let ColumnBuf::Utf8 { offsets, data, valid } = self {
            data.extend_from_slice(s.as_bytes());
            *offsets.last_mut().expect("an open row") = offset(data.len());
            *valid.last_mut().expect("an open row") = true;
        }
    }

    pub(crate) fn set_bool(&mut self, v: bool) {
        if let ColumnBuf::Bool { values, valid } = self {
            *values.last_mut().expect("an open row") = v;
            *valid.last_mut().expect("an open row") = true;
        }
    }

    pub(crate) fn set_i64(&mut self, v: i64) {
        if let ColumnBuf::Int64 { values, valid } = self {
            *values.last_mut().expect("an open row") = v;
            *valid.last_mut().expect("an open row") = true;
        }
    }

    pub(crate) fn set_u32(&mut self, v: u32) {
        if let ColumnBuf::UInt32 { values, valid } = self {
            *values.last_mut().expect("an open row") = v;
            *valid.last_mut().expect("an open row") = true;
        }
    }

    /// The string value of row `row`, if it is a valid string.
    pub(crate) fn str_at(&self, row: usize) -> Option<&str> {
        match self {
            ColumnBuf::Utf8 { offsets, data, valid } if valid.get(row) == Some(&true) => {
                let bytes = &data[offsets[row] as usize..offsets[row + 1] as usize];
                std::str::from_utf8(bytes).ok()
            }
            _ => None,
        }
    }

    fn truncate(&mut self, rows: usize) {
        match self {
            ColumnBuf::Utf8 { offsets, data, valid } => {
                offsets.truncate(rows + 1);
                data.truncate(offsets[rows] as usize);
                valid.truncate(rows);
            }
            ColumnBuf::Bool { values, valid } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            ColumnBuf::Int64 { values, valid } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            ColumnBuf::UInt32 { values, valid } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuf::Utf8 { offsets, data, valid } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                // SAFETY: `data` only ever grows by whole `&str`s (`set_str`) and shrinks back
                // to an offset between them (`truncate`), so it is valid UTF-8 and every
                // offset is a char boundary; offsets are monotonic and end at `data.len()`.
                // serde_json has already validated each string; checking again cost ~8% of
                // flatten time.
                Arc::new(unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(data), nulls(valid)) })
            }
            ColumnBuf::Bool { values, valid } => Arc::new(BooleanArray::new(BooleanBuffer::from(values), nulls(valid))),
            ColumnBuf::Int64 { values, valid } => {
                Arc::new(PrimitiveArray::<Int64Type>::new(ScalarBuffer::from(values), nulls(valid)))
            }
            ColumnBuf::UInt32 { values, valid } => {
                Arc::new(PrimitiveArray::<UInt32Type>::new(ScalarBuffer::from(values), nulls(valid)))
            }
        }
    }
}

fn offset(len: usize) -> i32 {
    i32::try_from(len).expect("a chunk's column stays under 2 GiB: chunks are bounded")
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    let nulls = NullBuffer::from(valid);
    (nulls.null_count() > 0).then_some(nulls)
}

/// The buffers of one table for one chunk: the key columns, then the schema's columns.
#[derive(Debug)]
pub(crate) struct TableBuf {
    line: Vec<u64>,
    account: Vec<u32>,
    parent: Vec<u32>,
    parent_valid: Vec<bool>,
    index: Vec<u32>,
    pub(crate) columns: Vec<ColumnBuf>,
}

impl TableBuf {
    pub(crate) fn new(table: &Table) -> Self {
        Self {
            line: Vec::new(),
            account: Vec::new(),
            parent: Vec::new(),
            parent_valid: Vec::new(),
            index: Vec::new(),
            columns: table.columns.iter().map(|c| ColumnBuf::new(c.kind)).collect(),
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.line.len()
    }

    /// Opens a row with every column null and returns its number.
    pub(crate) fn open_row(&mut self, line: u64, account: u32, parent: Option<u32>, index: u32) -> u32 {
        let row = self.rows();
        self.line.push(line);
        self.account.push(account);
        self.parent.push(parent.unwrap_or(0));
        self.parent_valid.push(parent.is_some());
        self.index.push(index);
        for c in &mut self.columns {
            c.push_null();
        }
        u32::try_from(row).expect("a chunk holds fewer than 2^32 rows per table")
    }

    pub(crate) fn truncate(&mut self, rows: usize) {
        self.line.truncate(rows);
        self.account.truncate(rows);
        self.parent.truncate(rows);
        self.parent_valid.truncate(rows);
        self.index.truncate(rows);
        for c in &mut self.columns {
            c.truncate(rows);
        }
    }

    pub(crate) fn finish(self, schema: SchemaRef) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 4);
        arrays.push(Arc::new(PrimitiveArray::<UInt64Type>::new(ScalarBuffer::from(self.line), None)));
        arrays.push(Arc::new(PrimitiveArray::<UInt32Type>::new(ScalarBuffer::from(self.account), None)));
        arrays.push(Arc::new(PrimitiveArray::<UInt32Type>::new(
            ScalarBuffer::from(self.parent),
            nulls(self.parent_valid),
        )));
        arrays.push(Arc::new(PrimitiveArray::<UInt32Type>::new(ScalarBuffer::from(self.index), None)));
        arrays.extend(self.columns.into_iter().map(ColumnBuf::finish));
        RecordBatch::try_new(schema, arrays).expect("buffers follow the table's Arrow schema")
    }
}
