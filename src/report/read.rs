//! Reading a run's findings.parquet and outcomes.parquet back, by column name, so that the
//! validate, stage and create files (which share their key columns) read the same way.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::Error;

/// One finding as the report reads it.
#[derive(Debug, Clone)]
pub struct FindingRow {
    pub line: u64,
    pub supplier: Option<String>,
    pub external: Option<String>,
    pub attr: String,
    pub code: String,
    pub severity: String,
    pub detail: String,
    pub value: Option<String>,
}

/// One outcome (a validate outcome or an audit row) as the report reads it.
#[derive(Debug, Clone)]
pub struct OutcomeRow {
    pub line: Option<u64>,
    pub supplier: Option<String>,
    pub external: Option<String>,
    pub status: u16,
    pub code: Option<String>,
    pub attempt: Option<u32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

fn batches(path: &Path) -> Result<Vec<RecordBatch>, Error> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let err =
        |e: parquet::errors::ParquetError| Error::Io(std::io::Error::other(format!("reading {}: {e}", path.display())));
    let file = fs_err::File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(err)?.build().map_err(err)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Io(std::io::Error::other(format!("reading {}: {e}", path.display()))))
}

fn text(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let column = batch.column_by_name(name)?;
    (!column.is_null(row)).then(|| column.as_string::<i32>().value(row).to_owned())
}

/// Every finding of a findings.parquet (none when the file does not exist).
pub fn findings(path: &Path) -> Result<Vec<FindingRow>, Error> {
    let mut out = Vec::new();
    for batch in batches(path)? {
        let lines = batch.column_by_name("line").map(|c| c.as_primitive::<UInt64Type>().clone());
        for row in 0..batch.num_rows() {
            out.push(FindingRow {
                line: lines.as_ref().map_or(0, |l| l.value(row)),
                supplier: text(&batch, "import_supplier", row),
                external: text(&batch, "external_account_number", row),
                attr: text(&batch, "attr", row).unwrap_or_default(),
                code: text(&batch, "code", row).unwrap_or_default(),
                severity: text(&batch, "severity", row).unwrap_or_default(),
                detail: text(&batch, "detail", row).unwrap_or_default(),
                value: text(&batch, "value", row),
            });
        }
    }
    Ok(out)
}

/// Every row of an outcomes.parquet (none when the file does not exist).
pub fn outcomes(path: &Path) -> Result<Vec<OutcomeRow>, Error> {
    let mut out = Vec::new();
    for batch in batches(path)? {
        let lines = batch.column_by_name("line").map(|c| c.as_primitive::<UInt64Type>().clone());
        let status = batch.column_by_name("status").map(|c| c.as_primitive::<UInt16Type>().clone());
        let attempt = batch.column_by_name("attempt").map(|c| c.as_primitive::<UInt32Type>().clone());
        for row in 0..batch.num_rows() {
            out.push(OutcomeRow {
                line: lines.as_ref().filter(|l| !l.is_null(row)).map(|l| l.value(row)),
                supplier: text(&batch, "import_supplier", row),
                external: text(&batch, "external_account_number", row),
                status: status.as_ref().map_or(0, |s| s.value(row)),
                code: text(&batch, "error_code", row),
                attempt: attempt.as_ref().map(|a| a.value(row)),
                started_at: text(&batch, "started_at", row),
                finished_at: text(&batch, "finished_at", row),
            });
        }
    }
    Ok(out)
}
