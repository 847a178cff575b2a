//! [`TableWriter`]: appends results to one table, one durable file per flush.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{names, now_ms, ResultStore, StoreError};
use crate::durable;

/// Rows buffered before a row-level table is flushed to a file.
const FLUSH_ROWS: usize = 65_536;
/// Longest time rows stay buffered.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Appends batches to one table.
pub struct TableWriter {
    pub(super) store: ResultStore,
    pub(super) table: String,
    pub(super) dir: PathBuf,
    pub(super) schema: SchemaRef,
    pub(super) epoch: u64,
    pub(super) buffer: Vec<RecordBatch>,
    pub(super) buffered_rows: usize,
    pub(super) last_flush: Instant,
}

/// Writes `batches` to `path` as Parquet, atomically and durably (temp file, fsync,
/// rename, directory fsync): readers never see a half-written file and a file that exists
/// survives a power loss.
pub(super) fn write_parquet(
    path: &std::path::Path,
    schema: &SchemaRef,
    props: WriterProperties,
    mut fill: impl FnMut(&mut ArrowWriter<&mut std::fs::File>) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut inner_error = None;
    let written = durable::write_atomic_with(path, |file| {
        let result = (|| {
            let mut writer = ArrowWriter::try_new(&mut *file, Arc::clone(schema), Some(props))
                .map_err(|source| StoreError::Parquet {
                    path: path.to_path_buf(),
                    source,
                })?;
            fill(&mut writer)?;
            writer.close().map_err(|source| StoreError::Parquet {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(())
        })();
        result.map_err(|e: StoreError| {
            inner_error = Some(e);
            std::io::Error::other("parquet encoding failed")
        })
    });
    if let Some(e) = inner_error {
        return Err(e);
    }
    written.map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
}

impl TableWriter {
    /// Table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Schema of the table.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Flushes what is buffered (durably, into the current epoch) and moves to `epoch`:
    /// called at a checkpoint barrier with the next checkpoint's id.
    pub fn start_epoch(&mut self, epoch: u64) -> Result<(), StoreError> {
        self.flush()?;
        self.epoch = epoch;
        Ok(())
    }

    /// Buffers `batch`; flushes when enough rows or time accumulated.
    pub fn append(&mut self, batch: RecordBatch) -> Result<(), StoreError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.buffered_rows += batch.num_rows();
        self.buffer.push(batch);
        if self.buffered_rows >= FLUSH_ROWS || self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered rows to a new file now.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.last_flush = Instant::now();
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.buffer);
        self.buffered_rows = 0;
        self.write_file(&batches, self.epoch)
    }

    pub(super) fn write_file(&self, batches: &[RecordBatch], epoch: u64) -> Result<(), StoreError> {
        let seq = self.store.shared.seq.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(names::part_name(now_ms(), epoch, seq));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        write_parquet(&path, &self.schema, props, |w| {
            for b in batches {
                w.write(b).map_err(|source| StoreError::Parquet {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(())
        })?;
        self.store.invalidate(&self.table);
        Ok(())
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(table = %self.table, error = %e, "flushing results on close failed");
        }
    }
}
