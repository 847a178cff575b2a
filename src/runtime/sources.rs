//! Turns a `CREATE SOURCE` statement into a source schema and a connector.

use std::sync::Arc;
use std::time::Duration;

use driftwatch_sql::CreateSource;

use super::RuntimeError;
use crate::sources::file::FileConnector;
use crate::sources::http::{HttpConnector, HttpIngest};
use crate::sources::kafka::KafkaConnector;
use crate::sources::{Connector, ConnectorSpec, SourceOptions, SourceSchema, TimeFormat};

/// Connectors available in this build.
pub const CONNECTORS: &[&str] = &["file", "http", "kafka"];

/// Default idle timeout of unbounded sources: after this long without rows, event time
/// follows processing time so the last windows close (see `sources::watermark`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default `max_future`: rows stamped further ahead of their arrival are quarantined.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(300);

/// What the running system tells connectors.
#[derive(Debug, Clone, Default)]
pub struct SourceContext {
    /// The data dir.
    pub data_dir: std::path::PathBuf,
    /// Checkpoints are on: acknowledgements must be durable.
    pub durable: bool,
    /// `--from-scratch`.
    pub ignore_committed_offsets: bool,
}

/// What a source needs to run.
pub struct SourceParts {
    /// Engine-facing schema.
    pub schema: Arc<SourceSchema>,
    /// The connector delivering its input.
    pub connector: Arc<dyn Connector>,
    /// Idle timeout (None: partitions never count as idle).
    pub idle_timeout: Option<Duration>,
    /// Rows whose event time is further ahead of their arrival are quarantined (None: off).
    pub max_future: Option<Duration>,
}

/// Validates `def` and builds its schema and connector.
pub fn build_source(
    def: &CreateSource,
    http: &Arc<HttpIngest>,
    context: &SourceContext,
) -> Result<SourceParts, RuntimeError> {
    let invalid = |m: String| RuntimeError::Invalid(format!("source '{}': {m}", def.name));
    let connector = def.options.get_str("connector").ok_or_else(|| {
        invalid(format!(
            "add WITH (connector = '…'); available connectors: {}",
            CONNECTORS.join(", ")
        ))
    })?;
    let schema = source_schema(def)?;
    let options: SourceOptions = def
        .options
        .iter()
        .map(|(k, v)| (k.clone(), v.as_text()))
        .collect();
    let spec = ConnectorSpec {
        schema: Arc::clone(&schema),
        options,
        data_dir: context.data_dir.clone(),
        durable: context.durable,
        ignore_committed_offsets: context.ignore_committed_offsets,
    };
    let (connector, default_idle): (Arc<dyn Connector>, Option<Duration>) = match connector.as_str()
    {
        "file" => (Arc::new(FileConnector::from_spec(&spec)?), None),
        "http" => (
            Arc::new(HttpConnector::from_sql(
                &def.options,
                &spec,
                Arc::clone(http),
            )?),
            Some(DEFAULT_IDLE_TIMEOUT),
        ),
        "kafka" => {
            let kafka = KafkaConnector::from_spec(&spec, Arc::clone(http))?;
            let idle = (!kafka.options().stop_at_end).then_some(DEFAULT_IDLE_TIMEOUT);
            (Arc::new(kafka), idle)
        }
        other => {
            return Err(invalid(format!(
                "unknown connector '{other}'; available: {}",
                CONNECTORS.join(", ")
            )))
        }
    };
    let idle_timeout = match def.options.get_str("idle_timeout") {
        Some(v) if v.eq_ignore_ascii_case("none") => None,
        Some(_) => def
            .options
            .get_duration_ms("idle_timeout")?
            .map(|ms| Duration::from_millis(ms.max(1) as u64)),
        None => default_idle,
    };
    let max_future = match def.options.get_str("max_future") {
        Some(v) if v.eq_ignore_ascii_case("none") => None,
        Some(_) => def
            .options
            .get_duration_ms("max_future")?
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        None => Some(DEFAULT_MAX_FUTURE),
    };
    Ok(SourceParts {
        schema,
        connector,
        idle_timeout,
        max_future,
    })
}

/// The engine-facing schema of a source definition (columns, watermark, time format).
pub fn source_schema(def: &CreateSource) -> Result<Arc<SourceSchema>, RuntimeError> {
    let invalid = |m: String| RuntimeError::Invalid(format!("source '{}': {m}", def.name));
    let time_format = match def.options.get_str("time_format") {
        None => TimeFormat::Auto,
        Some(v) => TimeFormat::parse(&v).ok_or_else(|| {
            invalid(format!(
                "time_format = '{v}' is not one of 'auto', 'rfc3339', 'epoch_s', 'epoch_ms'"
            ))
        })?,
    };
    let fields = def
        .columns
        .iter()
        .map(|c| arrow::datatypes::Field::new(&c.name, c.data_type.clone(), c.nullable))
        .collect();
    let watermark = def
        .watermark
        .as_ref()
        .map(|w| (w.column.clone(), w.delay_ms));
    let schema =
        Arc::new(SourceSchema::new(&def.name, fields, watermark, time_format).map_err(invalid)?);
    Ok(schema)
}
