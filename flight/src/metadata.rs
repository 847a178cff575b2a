//! Catalog metadata for Flight SQL (`GetCatalogs`, `GetDbSchemas`, `GetTables`,
//! `GetTableTypes`, `GetSqlInfo`) from a DataFusion session.

use std::sync::LazyLock;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo,
};
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;

/// The table types the server reports.
pub const TABLE_TYPES: &[&str] = &["TABLE", "VIEW", "LOCAL TEMPORARY"];

/// Flight SQL name of a DataFusion table type.
pub fn table_type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// Server facts for `GetSqlInfo`.
pub static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Driftwatch");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlIdentifierCase, 1i32); // case insensitive (lower-cased)
    b.append(SqlInfo::SqlQuotedIdentifierCase, 3i32); // case sensitive
    b.build().expect("static SqlInfo data")
});

/// `GetCatalogs`.
pub fn catalogs(
    ctx: &SessionContext,
    cmd: CommandGetCatalogs,
) -> arrow_flight::error::Result<RecordBatch> {
    let mut builder = cmd.into_builder();
    let mut names = ctx.catalog_names();
    names.sort();
    for name in names {
        builder.append(name);
    }
    builder.build()
}

/// `GetDbSchemas` (the builder applies the catalog and pattern filters).
pub fn db_schemas(
    ctx: &SessionContext,
    cmd: CommandGetDbSchemas,
) -> arrow_flight::error::Result<RecordBatch> {
    let mut builder = cmd.into_builder();
    for (catalog, schema) in schema_pairs(ctx) {
        builder.append(&catalog, &schema);
    }
    builder.build()
}

/// `GetTableTypes`.
pub fn table_types(cmd: CommandGetTableTypes) -> arrow_flight::error::Result<RecordBatch> {
    let mut builder = cmd.into_builder();
    for t in TABLE_TYPES {
        builder.append(t);
    }
    builder.build()
}

/// `GetTables`, with each table's Arrow schema when asked (the builder filters).
pub async fn tables(
    ctx: &SessionContext,
    cmd: CommandGetTables,
) -> arrow_flight::error::Result<RecordBatch> {
    let mut builder = cmd.into_builder();
    for t in table_list(ctx).await {
        builder.append(
            &t.catalog,
            &t.schema,
            &t.table,
            table_type_name(t.table_type),
            t.arrow_schema.as_ref(),
        )?;
    }
    builder.build()
}

/// One table of a session's catalogs.
#[derive(Debug, Clone)]
pub struct TableEntry {
    /// Catalog name.
    pub catalog: String,
    /// Schema name (`public`, `baselines`, `system`, `information_schema`).
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Base table, view or temporary.
    pub table_type: TableType,
    /// The rows' Arrow schema.
    pub arrow_schema: SchemaRef,
}

/// Every table of `ctx`, sorted by catalog, schema and name; a table whose provider cannot
/// be had is skipped with a warning.
pub async fn table_list(ctx: &SessionContext) -> Vec<TableEntry> {
    let mut out = Vec::new();
    for (catalog_name, schema_name) in schema_pairs(ctx) {
        let Some(schema) = ctx
            .catalog(&catalog_name)
            .and_then(|c| c.schema(&schema_name))
        else {
            continue;
        };
        let mut names = schema.table_names();
        names.sort();
        for table in names {
            let provider = match schema.table(&table).await {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(table, error = %e, "table skipped in the catalog listing");
                    continue;
                }
            };
            out.push(TableEntry {
                catalog: catalog_name.clone(),
                schema: schema_name.clone(),
                table,
                table_type: provider.table_type(),
                arrow_schema: provider.schema(),
            });
        }
    }
    out
}

fn schema_pairs(ctx: &SessionContext) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut catalogs = ctx.catalog_names();
    catalogs.sort();
    for catalog in catalogs {
        if let Some(c) = ctx.catalog(&catalog) {
            let mut schemas = c.schema_names();
            schemas.sort();
            out.extend(schemas.into_iter().map(|s| (catalog.clone(), s)));
        }
    }
    out
}
