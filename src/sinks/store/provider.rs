//! [`StoreTable`]: a result table as a DataFusion table, planned from the store's cached
//! listing ([`super::index`]) instead of listing the directory and reading every footer per
//! query. Files are pruned by their time ranges before any is opened (a `window_start >=
//! now() - INTERVAL '1 hour'` query opens only the files of the last hour), and exact row
//! counts let `count(*)` be answered without opening a file.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, UInt64Array};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{project_schema, Column, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::object_store::{path::Path as ObjectPath, ObjectMeta};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;

use super::index::FileInfo;
use super::ResultStore;

/// A table of the result store.
#[derive(Debug)]
pub struct StoreTable {
    store: ResultStore,
    table: String,
    schema: SchemaRef,
}

impl StoreTable {
    /// The table `table` of `store`; None when it has no readable file (no schema).
    pub async fn open(store: &ResultStore, table: &str) -> Result<Option<Self>> {
        let snap = snapshot(store, table).await?;
        Ok(snap.schema.map(|schema| Self {
            store: store.clone(),
            table: table.to_string(),
            schema,
        }))
    }
}

async fn snapshot(store: &ResultStore, table: &str) -> Result<super::index::TableSnapshot> {
    let (store, name) = (store.clone(), table.to_string());
    tokio::task::spawn_blocking(move || store.snapshot(&name))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// Time ranges of the candidate files, for the pruning predicate.
struct FileRanges<'a> {
    files: &'a [&'a Arc<FileInfo>],
    schema: &'a SchemaRef,
}

impl FileRanges<'_> {
    fn values(&self, column: &Column, pick: impl Fn((i64, i64)) -> i64) -> Option<ArrayRef> {
        let field = self.schema.field_with_name(&column.name).ok()?;
        let values: Int64Array = self
            .files
            .iter()
            .map(|f| f.range(&column.name).map(&pick))
            .collect();
        if values.null_count() == values.len() {
            return None;
        }
        arrow::compute::cast(&values, field.data_type()).ok()
    }
}

impl PruningStatistics for FileRanges<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.values(column, |(lo, _)| lo)
    }
    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.values(column, |(_, hi)| hi)
    }
    fn num_containers(&self) -> usize {
        self.files.len()
    }
    fn null_counts(&self, _column: &Column) -> Option<ArrayRef> {
        None
    }
    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(
            self.files.iter().map(|f| f.rows).collect::<UInt64Array>(),
        ))
    }
    #[allow(clippy::mutable_key_type)]
    fn contained(
        &self,
        _column: &Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<BooleanArray> {
        None
    }
}

#[async_trait::async_trait]
impl TableProvider for StoreTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to skip files; rows are still filtered above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let pruning = match conjunction(filters.to_vec()) {
            Some(predicate) => {
                let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
                let physical = state.create_physical_expr(predicate, &df_schema)?;
                // A predicate the pruner cannot use only means no file is skipped.
                PruningPredicateBuilder::new()
                    .with_file_schema(Arc::clone(&self.schema))
                    .build(physical)
            }
            None => None,
        };
        let id = super::index::schema_id(&self.schema);
        let mut snap = snapshot(&self.store, &self.table).await?;
        let mut files: Vec<Arc<FileInfo>>;
        let mut attempt = 0;
        loop {
            let mut candidates: Vec<&Arc<FileInfo>> = snap
                .files
                .iter()
                .filter(|f| f.rows > 0 && f.schema_id == id)
                .collect();
            if let Some(pruning) = &pruning {
                let keep = pruning.prune(&FileRanges {
                    files: &candidates,
                    schema: &self.schema,
                })?;
                let mut keep = keep.into_iter();
                candidates.retain(|_| keep.next().unwrap_or(true));
            }
            files = candidates.into_iter().cloned().collect();
            // A file changed or gone behind the cache's back (damaged, moved aside by
            // another process): list the table again, which skips and reports it.
            let changed = files
                .iter()
                .any(|f| std::fs::metadata(&f.path).map(|m| m.len()).ok() != Some(f.bytes));
            if !changed || attempt > 0 {
                break;
            }
            attempt += 1;
            self.store.invalidate(&self.table);
            snap = snapshot(&self.store, &self.table).await?;
        }
        if files.is_empty() {
            let projected = project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let total_rows: u64 = files.iter().map(|f| f.rows).sum();
        let partitions = state.config().target_partitions().max(1);
        let per_group = files.len().div_ceil(partitions);
        let mut groups = Vec::new();
        for chunk in files.chunks(per_group) {
            let mut group = Vec::with_capacity(chunk.len());
            for f in chunk {
                let location = ObjectPath::from_absolute_path(&f.path)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                let mut stats = Statistics::new_unknown(&self.schema);
                stats.num_rows = Precision::Exact(f.rows as usize);
                stats.total_byte_size = Precision::Inexact(f.bytes as usize);
                group.push(
                    PartitionedFile::new_from_meta(ObjectMeta {
                        location,
                        last_modified: chrono::DateTime::<chrono::Utc>::from_timestamp_millis(
                            f.kind.write_ms(),
                        )
                        .unwrap_or_default(),
                        size: f.bytes,
                        e_tag: None,
                        version: None,
                    })
                    .with_statistics(Arc::new(stats)),
                );
            }
            groups.push(FileGroup::new(group));
        }
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(total_rows as usize);
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(TableSchema::from(Arc::clone(&self.schema)));
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file_groups(groups)
            .with_statistics(stats)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}
