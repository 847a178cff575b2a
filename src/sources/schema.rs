//! The engine-facing description of a source: its Arrow schema, its event-time column and
//! how event time is encoded in the raw input.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The Arrow type every event-time column has inside the engine: UTC milliseconds.
pub const EVENT_TIME_TYPE: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// How the event-time column is encoded in raw records (`time_format` source option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeFormat {
    /// Accept what comes: native timestamps, RFC 3339 strings, or integers taken as epoch
    /// milliseconds.
    #[default]
    Auto,
    /// RFC 3339 / ISO 8601 strings, e.g. `2026-11-28T12:00:00.250Z`.
    Rfc3339,
    /// Integer or fractional seconds since the Unix epoch.
    EpochSeconds,
    /// Integer milliseconds since the Unix epoch.
    EpochMillis,
}

impl TimeFormat {
    /// Parses the `time_format` option value.
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "rfc3339" | "iso8601" => Some(Self::Rfc3339),
            "epoch_s" | "epoch_seconds" | "unix" => Some(Self::EpochSeconds),
            "epoch_ms" | "epoch_millis" => Some(Self::EpochMillis),
            _ => None,
        }
    }
}

/// Event-time column and watermark delay declared by `WATERMARK FOR col AS col - INTERVAL …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTime {
    /// Column name in the source schema.
    pub column: String,
    /// Index of the column in the source schema.
    pub index: usize,
    /// Watermark delay: the watermark is max event time minus this.
    pub delay_ms: i64,
}

/// A source's schema as the engine sees it. Every decoder produces batches with exactly
/// [`SourceSchema::arrow`] as schema, with event-time columns already converted to
/// [`EVENT_TIME_TYPE`].
#[derive(Debug, Clone)]
pub struct SourceSchema {
    /// Source name.
    pub name: String,
    /// Declared columns; timestamp columns have type [`EVENT_TIME_TYPE`].
    pub arrow: SchemaRef,
    /// Event-time column, when the source declares a watermark.
    pub event_time: Option<EventTime>,
    /// How timestamp columns are encoded in raw input.
    pub time_format: TimeFormat,
}

impl SourceSchema {
    /// Builds a source schema from its fields; `watermark` is `(column, delay_ms)`.
    pub fn new(
        name: impl Into<String>,
        fields: Vec<Field>,
        watermark: Option<(String, i64)>,
        time_format: TimeFormat,
    ) -> Result<Self, String> {
        let arrow = Arc::new(Schema::new(fields));
        let event_time = match watermark {
            None => None,
            Some((column, delay_ms)) => {
                let (index, field) = arrow.column_with_name(&column).ok_or_else(|| {
                    format!("WATERMARK FOR {column}: the source has no column '{column}'")
                })?;
                if field.data_type() != &EVENT_TIME_TYPE {
                    return Err(format!(
                        "WATERMARK FOR {column}: column '{column}' is {}, declare it as TIMESTAMP",
                        field.data_type()
                    ));
                }
                Some(EventTime {
                    column,
                    index,
                    delay_ms,
                })
            }
        };
        Ok(Self {
            name: name.into(),
            arrow,
            event_time,
            time_format,
        })
    }

    /// Names of the numeric (integer or floating point) columns, in schema order: the
    /// features of the long `(feature, value)` view.
    pub fn numeric_columns(&self) -> Vec<String> {
        self.arrow
            .fields()
            .iter()
            .filter(|f| f.data_type().is_numeric())
            .map(|f| f.name().clone())
            .collect()
    }
}
