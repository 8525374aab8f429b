//! Reading a run's findings.parquet and outcomes.parquet back. An outcomes file is read by the
//! kind its metadata names ([`OutcomesKind`]): validate outcomes, or a run's audit rows.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::Error;
use crate::outcome::OutcomesKind;

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
    /// What `ferry push` made of the answer (push attempts only).
    pub class: Option<String>,
}

fn batches(path: &Path) -> Result<Vec<RecordBatch>, Error> {
    Ok(read(path)?.map(|f| f.batches).unwrap_or_default())
}

/// A Parquet file read whole: its batches, and the value of its `ferry.outcomes` metadata.
struct ParquetFile {
    batches: Vec<RecordBatch>,
    kind: Option<String>,
}

/// The file, or `None` when there is no file.
fn read(path: &Path) -> Result<Option<ParquetFile>, Error> {
    if !path.is_file() {
        return Ok(None);
    }
    let err =
        |e: parquet::errors::ParquetError| Error::Io(std::io::Error::other(format!("reading {}: {e}", path.display())));
    let file = fs_err::File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(err)?;
    let kind = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == OutcomesKind::KEY))
        .and_then(|k| k.value.clone());
    let batches = builder
        .build()
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Io(std::io::Error::other(format!("reading {}: {e}", path.display()))))?;
    Ok(Some(ParquetFile { batches, kind }))
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

/// Every row of an outcomes.parquet (none when the file does not exist), read as the kind its
/// metadata names. A file without the name was written by a ferry before the kinds were named:
/// its schema tells (the audit rows are the only ones with `error_code`).
pub fn outcomes(path: &Path) -> Result<Vec<OutcomeRow>, Error> {
    let Some(ParquetFile { batches, kind }) = read(path)? else { return Ok(Vec::new()) };
    let kind = match kind.as_deref() {
        Some(name) => OutcomesKind::parse(name).ok_or_else(|| {
            Error::Io(std::io::Error::other(format!(
                "{}: unknown outcomes kind {name:?} (this ferry reads {:?} and {:?})",
                path.display(),
                OutcomesKind::Validate.name(),
                OutcomesKind::Audit.name()
            )))
        })?,
        None if batches.first().is_some_and(|b| b.column_by_name("error_code").is_some()) => OutcomesKind::Audit,
        None => OutcomesKind::Validate,
    };
    let mut out = Vec::new();
    for batch in batches {
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| {
                Error::Io(std::io::Error::other(format!(
                    "{}: a {} outcomes file without its {name:?} column",
                    path.display(),
                    kind.name()
                )))
            })
        };
        let lines = column("line")?.as_primitive::<UInt64Type>().clone();
        let status = column("status")?.as_primitive::<UInt16Type>().clone();
        let attempt = match kind {
            OutcomesKind::Audit => Some(column("attempt")?.as_primitive::<UInt32Type>().clone()),
            OutcomesKind::Validate => None,
        };
        let audit = kind == OutcomesKind::Audit;
        for row in 0..batch.num_rows() {
            out.push(OutcomeRow {
                line: (!lines.is_null(row)).then(|| lines.value(row)),
                supplier: text(&batch, "import_supplier", row),
                external: text(&batch, "external_account_number", row),
                status: status.value(row),
                code: if audit { text(&batch, "error_code", row) } else { None },
                attempt: attempt.as_ref().map(|a| a.value(row)),
                started_at: if audit { text(&batch, "started_at", row) } else { None },
                finished_at: if audit { text(&batch, "finished_at", row) } else { None },
                class: if audit { text(&batch, "class", row) } else { None },
            });
        }
    }
    Ok(out)
}
