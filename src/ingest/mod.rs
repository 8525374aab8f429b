//! Reading NDJSON dumps into Arrow tables.
//!
//! [`reader`] cuts the input into chunks of whole lines; [`flatten`] turns a chunk into one
//! `RecordBatch` per table of the schema plus the chunk's findings; [`ingest`] runs both with
//! chunks parsed in parallel on a rayon pool and hands the results to a sink strictly in input
//! order, while the previous wave is being written. The output is therefore the same whatever
//! the thread count or chunk size.
//!
//! Every table starts with four key columns: `_line` (input line), `_account` (row of the
//! account in the root table), `_parent` (row of the parent in its table; null for the root)
//! and `_index` (position in the parent's list). Within a chunk's batches these rows are
//! chunk-relative; [`output`] rebases them to whole-file rows. [`attr_path`] rebuilds the attr
//! path of any value from them.

mod columns;
pub mod flatten;
pub mod output;
pub mod reader;

use std::io;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use rayon::prelude::*;

pub use flatten::{ChunkOutput, flatten_chunk};
pub use output::{WrittenFile, checksum};
pub use reader::{Chunk, DumpReader, MAX_LINE, ReadAhead};

use crate::schema::{ColumnKind, Schema, TableId};

pub const LINE: &str = "_line";
pub const ACCOUNT: &str = "_account";
pub const PARENT: &str = "_parent";
pub const INDEX: &str = "_index";
/// How many key columns start every flattened table; a schema column `c` is column `KEY_COLUMNS + c`.
pub const KEY_COLUMNS: usize = 4;

/// The Arrow schema of every flattened table, indexed like `schema.tables`.
pub fn arrow_schemas(schema: &Schema) -> Vec<SchemaRef> {
    schema
        .tables
        .iter()
        .map(|table| {
            let mut fields = vec![
                Field::new(LINE, DataType::UInt64, false),
                Field::new(ACCOUNT, DataType::UInt32, false),
                Field::new(PARENT, DataType::UInt32, table.parent.is_none()),
                Field::new(INDEX, DataType::UInt32, false),
            ];
            fields.extend(table.columns.iter().map(|c| {
                let ty = match c.kind {
                    ColumnKind::Utf8 => DataType::Utf8,
                    ColumnKind::Bool | ColumnKind::Present => DataType::Boolean,
                    ColumnKind::Int64 => DataType::Int64,
                    ColumnKind::ListLen => DataType::UInt32,
                };
                Field::new(&c.name, ty, true)
            }));
            Arc::new(ArrowSchema::new(fields))
        })
        .collect()
}

/// The attr path of row `row` of `table` (`supply_addresses.0.supply_points.1`), from the
/// keys of `batches` (one batch per table, all from the same chunk or the same file).
pub fn attr_path(schema: &Schema, batches: &[RecordBatch], table: TableId, row: usize) -> String {
    let mut segments = Vec::new();
    let (mut t, mut r) = (table, row);
    while let Some((parent, list)) = &schema.table(t).parent {
        let batch = &batches[t.0];
        let key =
            |name: &str| batch.column_by_name(name).expect("key columns exist").as_primitive::<UInt32Type>().value(r);
        segments.push(format!("{list}.{}", key(INDEX)));
        r = key(PARENT) as usize;
        t = *parent;
    }
    segments.reverse();
    segments.join(".")
}

/// How ingest cuts and schedules its work.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Bytes per chunk (cut at the next newline).
    pub chunk_size: usize,
    /// Chunks parsed in parallel per wave.
    pub wave: usize,
}

impl IngestOptions {
    pub fn for_threads(threads: usize) -> Self {
        Self { chunk_size: crate::settings::DEFAULT_CHUNK_SIZE, wave: (threads * 4).max(4) }
    }
}

/// Totals over a whole ingest.
#[derive(Debug, Default, Clone, Copy)]
pub struct IngestTotals {
    pub lines: u64,
    pub accounts: u64,
}

/// Reads the whole dump, flattening chunks in parallel on the current rayon pool and running
/// `process` on each chunk and its output in the same parallel task (the rules and outcomes, for
/// validate), then gives each wave of outputs, with what `process` returned, to `sink` in
/// input order; writing a wave overlaps parsing the next.
pub fn ingest<X, P, S>(
    schema: &Schema,
    reader: DumpReader,
    options: IngestOptions,
    process: P,
    mut sink: S,
) -> io::Result<IngestTotals>
where
    X: Send,
    P: Fn(&Chunk, &mut ChunkOutput) -> X + Sync,
    S: FnMut(Vec<(ChunkOutput, X)>) -> io::Result<()> + Send,
{
    let arrow = arrow_schemas(schema);
    let mut totals = IngestTotals::default();
    let reader = &mut ReadAhead::spawn(reader, options.wave);
    let parse_wave = |reader: &mut ReadAhead| -> io::Result<Vec<(ChunkOutput, X)>> {
        let mut chunks = Vec::with_capacity(options.wave);
        while chunks.len() < options.wave {
            match reader.next_chunk()? {
                Some(c) => chunks.push(c),
                None => break,
            }
        }
        let outputs = chunks
            .par_iter()
            .map(|c| {
                let mut out = flatten_chunk(schema, &arrow, c);
                let extra = process(c, &mut out);
                (out, extra)
            })
            .collect();
        for c in chunks {
            reader.recycle(c);
        }
        Ok(outputs)
    };
    let mut pending = parse_wave(reader)?;
    while !pending.is_empty() {
        for (out, _) in &pending {
            totals.lines += out.lines;
            totals.accounts += out.accounts;
        }
        let (written, next) = rayon::join(|| sink(pending), || parse_wave(reader));
        written?;
        pending = next?;
    }
    Ok(totals)
}
