//! Writing flattened tables and findings as Parquet files.
//!
//! One file per table plus `findings.parquet`, ZSTD-compressed, with bounded row groups and
//! key-value metadata naming the ferry version and the schema hash. Chunk-relative keys are
//! rebased to rows of the whole file, so the files are the same whatever the chunking. Files
//! are written under a temporary name and renamed when complete: a killed run leaves no
//! file that looks finished.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use super::flatten::ChunkOutput;
use super::{ACCOUNT, PARENT, arrow_schemas};
use crate::findings::{self, Finding};
use crate::schema::Schema;

/// Rows per Parquet row group at most.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Encoded bytes per row group at most: with 30 tables open at once, this (not the row
/// count) is what keeps the writers' memory bounded whatever the input size.
pub const ROW_GROUP_BYTES: usize = 1 << 20;

/// Writer properties of a Parquet file ferry writes on its own (findings, outcomes): zstd. The
/// files of a [`TableSet`] differ only in their compression.
pub fn writer_properties(schema: &Schema, table: &str) -> WriterProperties {
    writer_properties_with(schema, table, Vec::new())
}

/// [`writer_properties`] with more key-value metadata.
pub fn writer_properties_with(schema: &Schema, table: &str, extra: Vec<KeyValue>) -> WriterProperties {
    properties(schema, table, extra, Compression::ZSTD(ZstdLevel::try_new(1).expect("1 is a valid zstd level")))
}

fn properties(schema: &Schema, table: &str, extra: Vec<KeyValue>, compression: Compression) -> WriterProperties {
    let mut metadata = vec![
        KeyValue::new("ferry.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        KeyValue::new("ferry.schema".to_owned(), schema.name.clone()),
        KeyValue::new("ferry.schema_hash".to_owned(), schema.hash.clone()),
        KeyValue::new("ferry.table".to_owned(), table.to_owned()),
    ];
    metadata.extend(extra);
    WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        // About 240 columns are open at once; 1 MiB pages (the default) would hold ~240 MiB.
        .set_data_page_size_limit(128 << 10)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
        .set_key_value_metadata(Some(metadata))
        .build()
}

/// The properties of a file of a [`TableSet`]: LZ4 (raw) instead of zstd. A table set has
/// every column of every table open at once (about 240 for the built-in schema, times the
/// suppliers of a stage run), and each open column writer of the `parquet` crate holds a zstd
/// compression and a decompression context, about 300 KB together: 215 MB for a three-supplier
/// stage, whatever the input size. LZ4 keeps no context, and compresses faster; the files are
/// about 1.8 times larger.
///
/// Text columns carry no min/max statistics: ferry reads these files by row, and comparing
/// every text value cost about 2 % of a stage (issue 15).
fn table_set_properties(schema: &Schema, table: &crate::schema::Table) -> WriterProperties {
    let mut builder = properties(schema, &table.name, Vec::new(), Compression::LZ4_RAW).into_builder();
    for column in table.columns.iter().filter(|c| c.kind == crate::schema::ColumnKind::Utf8) {
        builder = builder.set_column_statistics_enabled(
            parquet::schema::types::ColumnPath::from(column.name.as_str()),
            parquet::file::properties::EnabledStatistics::None,
        );
    }
    builder.build()
}

/// A Parquet file being written under a temporary name.
pub struct PendingFile {
    writer: ArrowWriter<Checksummed>,
    tmp: PathBuf,
    path: PathBuf,
}

/// What a published file holds, as the store records it for a staged file: its name, length
/// and CRC-32 (the checksum is computed as the bytes are written, at no extra read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// A file that counts and checksums what is written to it.
struct Checksummed {
    file: File,
    bytes: u64,
    crc: crc32fast::Hasher,
}

impl io::Write for Checksummed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bytes += n as u64;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The length and CRC-32 of a file, read through.
pub fn checksum(path: &Path) -> io::Result<(u64, u32)> {
    let mut file = fs_err::File::open(path)?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            return Ok((bytes, crc.finalize()));
        }
        bytes += n as u64;
        crc.update(&buf[..n]);
    }
}

impl PendingFile {
    pub fn create(path: PathBuf, arrow: SchemaRef, props: WriterProperties) -> io::Result<Self> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("table.parquet");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let file = fs_err::File::create(&tmp)?.into_parts().0;
        let file = Checksummed { file, bytes: 0, crc: crc32fast::Hasher::new() };
        let writer = ArrowWriter::try_new(file, arrow, Some(props)).map_err(io::Error::other)?;
        Ok(Self { writer, tmp, path })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        self.writer.write(batch).map_err(|e| io::Error::other(format!("writing {}: {e}", self.path.display())))
    }

    /// Finishes the file, syncs it and gives it its real name.
    pub fn commit(self) -> io::Result<WrittenFile> {
        let out =
            self.writer.into_inner().map_err(|e| io::Error::other(format!("writing {}: {e}", self.path.display())))?;
        out.file.sync_all()?;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let written = WrittenFile { name, bytes: out.bytes, crc32: out.crc.finalize() };
        drop(out.file);
        fs_err::rename(&self.tmp, &self.path)?;
        Ok(written)
    }
}

/// One Parquet file per table of the schema, written chunk by chunk with keys rebased to
/// rows of the whole file.
pub struct TableSet {
    files: Vec<PendingFile>,
    parents: Vec<Option<usize>>,
    /// Rows written so far per table: the offset of the next chunk's rows.
    rows: Vec<u64>,
}

impl TableSet {
    /// Creates `<dir>/<table>.parquet` (under temporary names) with the given Arrow schemas,
    /// one per table of `schema`.
    pub fn create(schema: &Schema, dir: &Path, arrow: &[SchemaRef]) -> io::Result<Self> {
        fs_err::create_dir_all(dir)?;
        let files = schema
            .tables
            .iter()
            .zip(arrow)
            .map(|(t, a)| {
                PendingFile::create(dir.join(format!("{}.parquet", t.name)), a.clone(), table_set_properties(schema, t))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { files, parents: schema.parent_indices(), rows: vec![0; schema.tables.len()] })
    }

    /// Writes chunks of tables (each one batch per table, keys chunk-relative), in order;
    /// tables are written in parallel.
    pub fn write(&mut self, chunks: Vec<Vec<RecordBatch>>) -> io::Result<()> {
        let mut per_table: Vec<Vec<RecordBatch>> = vec![Vec::with_capacity(chunks.len()); self.files.len()];
        for tables in chunks {
            let offsets = self.rows.clone();
            for (t, batch) in tables.into_iter().enumerate() {
                self.rows[t] += batch.num_rows() as u64;
                if batch.num_rows() > 0 {
                    per_table[t].push(rebase(batch, offsets[0], self.parents[t].map(|p| offsets[p])));
                }
            }
        }
        self.files
            .par_iter_mut()
            .zip(per_table)
            .try_for_each(|(file, batches)| batches.iter().try_for_each(|b| file.write(b)))
    }

    /// Rows written per table, in schema order.
    pub fn rows(&self) -> &[u64] {
        &self.rows
    }

    /// Finishes, syncs and renames every file; what each holds.
    pub fn commit(self) -> io::Result<Vec<WrittenFile>> {
        self.files.into_par_iter().map(PendingFile::commit).collect()
    }
}

/// The files of `ferry flatten`: one per table, and the findings.
pub struct TableFiles {
    tables: TableSet,
    findings: PendingFile,
    pub findings_by_code: BTreeMap<String, u64>,
    pub findings_total: u64,
}

impl TableFiles {
    pub fn create(schema: &Schema, dir: &Path) -> io::Result<Self> {
        let tables = TableSet::create(schema, dir, &arrow_schemas(schema))?;
        let findings = PendingFile::create(
            dir.join("findings.parquet"),
            findings::arrow_schema(),
            writer_properties(schema, "findings"),
        )?;
        Ok(Self { tables, findings, findings_by_code: BTreeMap::new(), findings_total: 0 })
    }

    /// Writes one wave of chunk outputs, in order.
    pub fn write(&mut self, outputs: Vec<ChunkOutput>) -> io::Result<()> {
        let mut findings: Vec<Finding> = Vec::new();
        let mut chunks = Vec::with_capacity(outputs.len());
        for out in outputs {
            chunks.push(out.tables);
            findings.extend(out.findings);
        }
        for f in &findings {
            *self.findings_by_code.entry(f.code.clone()).or_default() += 1;
        }
        self.findings_total += findings.len() as u64;
        self.tables.write(chunks)?;
        if !findings.is_empty() {
            self.findings.write(&findings::to_batch(&findings))?;
        }
        Ok(())
    }

    /// Rows written per table, in schema order.
    pub fn rows(&self) -> &[u64] {
        self.tables.rows()
    }

    pub fn commit(self) -> io::Result<()> {
        self.tables.commit()?;
        self.findings.commit().map(drop)
    }
}

/// Shifts `_account` and `_parent` from chunk rows to file rows.
fn rebase(batch: RecordBatch, account_offset: u64, parent_offset: Option<u64>) -> RecordBatch {
    let shift = |batch: &RecordBatch, name: &str, by: u64| -> (usize, ArrayRef) {
        let idx = batch.schema().index_of(name).expect("key columns exist");
        let col = batch.column(idx).as_primitive::<UInt32Type>();
        let by = u32::try_from(by).expect("fewer than 2^32 rows per table");
        let shifted: UInt32Array = col.unary(|v| v + by);
        (idx, Arc::new(shifted))
    };
    let mut columns = batch.columns().to_vec();
    let (i, a) = shift(&batch, ACCOUNT, account_offset);
    columns[i] = a;
    if let Some(by) = parent_offset {
        let (i, a) = shift(&batch, PARENT, by);
        columns[i] = a;
    }
    RecordBatch::try_new(batch.schema(), columns).expect("same schema, same lengths")
}
