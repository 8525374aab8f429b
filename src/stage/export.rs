//! A run's audit rows as `runs/<run-id>/outcomes.parquet`: written from the store after the
//! run's transaction committed, so the file is always a copy of what the store holds, whether
//! the run finished at once or was resumed after a crash.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef};

use crate::ingest::output::PendingFile;
use crate::schema::Schema;
use crate::store::AuditRecord;

/// The Arrow schema of a run's `outcomes.parquet` ([`crate::outcome::OutcomesKind::Audit`]): the
/// audit table's columns.
pub fn arrow_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(ArrowSchema::new(vec![
        text("run_id", false),
        text("operation", false),
        Field::new("attempt", DataType::UInt32, false),
        text("import_supplier", true),
        text("external_account_number", true),
        Field::new("line", DataType::UInt64, true),
        Field::new("status", DataType::UInt16, false),
        text("error_code", true),
        text("body", false),
        text("kraken_account_number", true),
        text("started_at", false),
        text("finished_at", false),
        // The request's id (`ferry serve`'s, or the one `ferry push` sent), and for a push
        // attempt what it sent and how it went (null for every other row).
        text("request_id", true),
        Field::new("staged_version", DataType::Int64, true),
        text("payload_hash", true),
        Field::new("latency_ms", DataType::UInt64, true),
        text("class", true),
    ]))
}

/// Audit rows as one batch of [`arrow_schema()`].
pub fn to_batch(rows: &[AuditRecord]) -> RecordBatch {
    let n = rows.len();
    let mut text: Vec<StringBuilder> = (0..12).map(|_| StringBuilder::new()).collect();
    let mut attempt = UInt32Builder::with_capacity(n);
    let mut line = UInt64Builder::with_capacity(n);
    let mut status = UInt16Builder::with_capacity(n);
    let mut version = Int64Builder::with_capacity(n);
    let mut latency = UInt64Builder::with_capacity(n);
    for r in rows {
        text[0].append_value(&r.run_id);
        text[1].append_value(&r.operation);
        attempt.append_value(r.attempt);
        text[2].append_option(r.import_supplier.as_deref());
        text[3].append_option(r.external_account_number.as_deref());
        line.append_option(r.line);
        status.append_value(r.status_code);
        text[4].append_option(r.error_code.as_deref());
        text[5].append_value(&r.body);
        text[6].append_option(r.kraken_account_number.as_deref());
        text[7].append_value(&r.started_at);
        text[8].append_value(&r.finished_at);
        text[9].append_option(r.request.as_ref().map(|t| &t.id));
        let push = r.push.as_ref();
        version.append_option(push.and_then(|p| p.staged_version));
        text[10].append_option(push.map(|p| &p.payload_hash));
        latency.append_option(push.map(|p| p.latency_ms));
        text[11].append_option(push.map(|p| &p.class));
    }
    let mut t = text.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || t.next().expect("twelve text columns");
    let columns: Vec<ArrayRef> = vec![
        next(),
        next(),
        Arc::new(attempt.finish()),
        next(),
        next(),
        Arc::new(line.finish()),
        Arc::new(status.finish()),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        Arc::new(version.finish()),
        next(),
        Arc::new(latency.finish()),
        next(),
    ];
    RecordBatch::try_new(arrow_schema(), columns).expect("columns match the outcomes schema")
}

/// An `outcomes.parquet` of audit rows written a batch at a time (under a temporary name until
/// [`OutcomesFile::commit`]).
pub struct OutcomesFile(PendingFile);

impl OutcomesFile {
    pub fn create(schema: &Schema, path: &Path) -> std::io::Result<Self> {
        let properties = crate::outcome::OutcomesKind::Audit.writer_properties(schema);
        Ok(Self(PendingFile::create(path.to_owned(), arrow_schema(), properties)?))
    }

    pub fn write(&mut self, rows: &[AuditRecord]) -> std::io::Result<()> {
        if rows.is_empty() { Ok(()) } else { self.0.write(&to_batch(rows)) }
    }

    pub fn commit(self) -> std::io::Result<()> {
        self.0.commit().map(drop)
    }
}
