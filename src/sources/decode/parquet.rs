//! Parquet → batches of a source's schema: columns matched by name and cast to the
//! declared types; timestamps of any unit (and integer / string time columns, per
//! `time_format`) converted to UTC milliseconds.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::{finish_batch, Decoded};
use crate::sources::rejected::{PartitionId, RejectedRecord};
use crate::sources::schema::SourceSchema;

/// Why a Parquet file cannot be read as a source.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// The file cannot be opened or is not valid Parquet.
    #[error("{path}: {message}")]
    Open {
        /// File path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A NOT NULL declared column is absent from the file.
    #[error("{path}: column '{column}' is declared NOT NULL but the file has no such column (file columns: {available})")]
    MissingColumn {
        /// File path.
        path: PathBuf,
        /// Declared column.
        column: String,
        /// Columns the file has.
        available: String,
    },
    /// Reading a row group failed.
    #[error("{path}: {message}")]
    Read {
        /// File path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Opens `path` and returns an iterator of decoded batches (at most `batch_size` rows each)
/// in the source schema, starting after the first `skip_rows` rows. Rows whose time value
/// cannot be converted are rejected with their row index (0-based) as position.
pub fn parquet_batches(
    path: impl AsRef<Path>,
    schema: &Arc<SourceSchema>,
    partition: PartitionId,
    batch_size: usize,
    skip_rows: usize,
) -> Result<ParquetBatches, ParquetError> {
    let path = path.as_ref().to_path_buf();
    let open = |e: &dyn std::fmt::Display| ParquetError::Open {
        path: path.clone(),
        message: e.to_string(),
    };
    let file = File::open(&path).map_err(|e| open(&e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| open(&e))?;
    let file_schema = builder.schema().clone();
    let mut roots = Vec::new();
    let mut names = Vec::new();
    for f in schema.arrow.fields() {
        match file_schema
            .fields()
            .iter()
            .position(|ff| ff.name().eq_ignore_ascii_case(f.name()))
        {
            Some(i) => {
                roots.push(i);
                names.push(Some(file_schema.field(i).name().clone()));
            }
            None if f.is_nullable() => names.push(None),
            None => {
                return Err(ParquetError::MissingColumn {
                    path,
                    column: f.name().clone(),
                    available: file_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_size.max(1))
        .with_offset(skip_rows)
        .build()
        .map_err(|e| open(&e))?;
    Ok(ParquetBatches {
        path,
        schema: schema.clone(),
        partition,
        names,
        reader,
        row: skip_rows as i64,
    })
}

/// Iterator over a Parquet file's rows as [`Decoded`] batches of the source schema.
pub struct ParquetBatches {
    path: PathBuf,
    schema: Arc<SourceSchema>,
    partition: PartitionId,
    /// For each declared column, the file column it is read from.
    names: Vec<Option<String>>,
    reader: ParquetRecordBatchReader,
    row: i64,
}

impl std::fmt::Debug for ParquetBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetBatches")
            .field("path", &self.path)
            .finish()
    }
}

impl ParquetBatches {
    /// Index of the next row to read (rows before it, good or rejected, were returned).
    pub fn next_row(&self) -> u64 {
        self.row as u64
    }
}

impl Iterator for ParquetBatches {
    type Item = Result<Decoded, ParquetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(b) => b,
            Err(e) => {
                return Some(Err(ParquetError::Read {
                    path: self.path.clone(),
                    message: e.to_string(),
                }))
            }
        };
        let rows = batch.num_rows();
        let columns: Vec<ArrayRef> = self
            .schema
            .arrow
            .fields()
            .iter()
            .zip(&self.names)
            .map(
                |(f, name)| match name.as_deref().and_then(|n| batch.column_by_name(n)) {
                    Some(c) => c.clone(),
                    None => new_null_array(f.data_type(), rows),
                },
            )
            .collect();
        let first = self.row;
        self.row += rows as i64;
        Some(match finish_batch(&self.schema, columns, rows) {
            Ok((batch, bad)) => Ok(Decoded {
                batch: (batch.num_rows() > 0).then_some(batch),
                rejected: bad
                    .into_iter()
                    .map(|(row, reason)| {
                        let pos = first + row as i64;
                        RejectedRecord::new(
                            self.partition,
                            Some(pos),
                            format!("{}#row{pos}", self.path.display()).as_bytes(),
                            format!("row {pos}: {reason}"),
                        )
                    })
                    .collect(),
            }),
            Err(message) => Err(ParquetError::Read {
                path: self.path.clone(),
                message,
            }),
        })
    }
}
