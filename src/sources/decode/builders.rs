//! Typed Arrow column builders fed one JSON scalar at a time (by the serde seeds in
//! `rows`), so HTTP bodies go straight into Arrow without a `serde_json::Value` per row.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};

use super::time;
use crate::sources::schema::TimeFormat;

/// One JSON scalar, buffered where a value cannot go straight into a builder (KServe v2
/// tensors, whose `data` may precede their `name` and `shape`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
}

/// A builder for one declared column.
#[derive(Debug)]
pub(crate) enum ColumnBuilder {
    Bool(BooleanBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Utf8(StringBuilder),
    Time(TimestampMillisecondBuilder, TimeFormat),
    /// Any other type: values kept as text and cast at the end.
    Other(StringBuilder, DataType),
}

fn describe_str(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("a string {head:?}…")
    } else {
        format!("a string {s:?}")
    }
}

impl ColumnBuilder {
    /// A builder for a column of type `dt`; timestamp values are read per `format`.
    pub fn new(dt: &DataType, format: TimeFormat, capacity: usize) -> Self {
        match dt {
            DataType::Boolean => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int32 => Self::I32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Self::I64(Int64Builder::with_capacity(capacity)),
            DataType::Float32 => Self::F32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Self::F64(Float64Builder::with_capacity(capacity)),
            DataType::Utf8 => Self::Utf8(StringBuilder::with_capacity(capacity, capacity * 8)),
            DataType::Timestamp(_, _) => {
                Self::Time(TimestampMillisecondBuilder::with_capacity(capacity), format)
            }
            other => Self::Other(StringBuilder::new(), other.clone()),
        }
    }

    fn expected(&self) -> &'static str {
        match self {
            Self::Bool(_) => "a boolean",
            Self::I32(_) | Self::I64(_) => "an integer",
            Self::F32(_) | Self::F64(_) => "a number",
            Self::Utf8(_) | Self::Other(..) => "a value",
            Self::Time(_, f) => time::format_name(*f),
        }
    }

    /// Appends NULL.
    pub fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::F32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::Utf8(b) | Self::Other(b, _) => b.append_null(),
            Self::Time(b, _) => b.append_null(),
        }
    }

    /// Appends a boolean.
    pub fn append_bool(&mut self, v: bool) -> Result<(), String> {
        match self {
            Self::Bool(b) => b.append_value(v),
            Self::Utf8(b) | Self::Other(b, _) => b.append_value(if v { "true" } else { "false" }),
            _ => return Err(format!("expected {}, got {v}", self.expected())),
        }
        Ok(())
    }

    /// Appends a signed integer.
    pub fn append_i64(&mut self, v: i64) -> Result<(), String> {
        match self {
            Self::I32(b) => b.append_value(
                i32::try_from(v).map_err(|_| format!("{v} does not fit a 32-bit integer"))?,
            ),
            Self::I64(b) => b.append_value(v),
            Self::F32(b) => b.append_value(v as f32),
            Self::F64(b) => b.append_value(v as f64),
            Self::Utf8(b) | Self::Other(b, _) => b.append_value(v.to_string()),
            Self::Time(b, f) => {
                let ms = match f {
                    TimeFormat::EpochSeconds => time::whole_seconds_to_ms(v),
                    TimeFormat::Auto | TimeFormat::EpochMillis => time::in_range(v),
                    TimeFormat::Rfc3339 => {
                        return Err(format!("expected an RFC 3339 string, got {v}"))
                    }
                };
                b.append_value(ms.ok_or_else(|| time::out_of_range(v))?);
            }
            Self::Bool(_) => return Err(format!("expected a boolean, got {v}")),
        }
        Ok(())
    }

    /// Appends an unsigned integer (JSON integers above `i64::MAX`).
    pub fn append_u64(&mut self, v: u64) -> Result<(), String> {
        match i64::try_from(v) {
            Ok(v) => self.append_i64(v),
            Err(_) => match self {
                Self::F32(_) | Self::F64(_) => self.append_f64(v as f64),
                Self::Utf8(b) | Self::Other(b, _) => {
                    b.append_value(v.to_string());
                    Ok(())
                }
                Self::Time(..) => Err(time::out_of_range(v)),
                _ => Err(format!("{v} is out of range")),
            },
        }
    }

    /// Appends a floating-point number.
    pub fn append_f64(&mut self, v: f64) -> Result<(), String> {
        match self {
            Self::F64(b) => b.append_value(v),
            Self::F32(b) => b.append_value(v as f32),
            Self::I32(_) | Self::I64(_) if v.fract() == 0.0 && v.abs() < 9.0e18 => {
                return self.append_i64(v as i64)
            }
            Self::Utf8(b) | Self::Other(b, _) => b.append_value(v.to_string()),
            Self::Time(b, f) => {
                let ms = match f {
                    TimeFormat::EpochSeconds => time::seconds_to_ms(v),
                    TimeFormat::Auto | TimeFormat::EpochMillis => time::seconds_to_ms(v / 1000.0),
                    TimeFormat::Rfc3339 => None,
                };
                b.append_value(
                    ms.ok_or_else(|| format!("expected {}, got {v}", time::format_name(*f)))?,
                );
            }
            _ => return Err(format!("expected {}, got {v}", self.expected())),
        }
        Ok(())
    }

    /// Appends a string (parsed for numeric, boolean and time columns).
    pub fn append_str(&mut self, v: &str) -> Result<(), String> {
        let bad = |what: &str| format!("expected {what}, got {}", describe_str(v));
        match self {
            Self::Utf8(b) | Self::Other(b, _) => b.append_value(v),
            Self::F64(b) => b.append_value(v.trim().parse().map_err(|_| bad("a number"))?),
            Self::F32(b) => b.append_value(v.trim().parse().map_err(|_| bad("a number"))?),
            Self::I64(b) => b.append_value(v.trim().parse().map_err(|_| bad("an integer"))?),
            Self::I32(b) => b.append_value(v.trim().parse().map_err(|_| bad("an integer"))?),
            Self::Bool(b) => b.append_value(v.trim().parse().map_err(|_| bad("a boolean"))?),
            Self::Time(b, f) => b.append_value(time::parse_str(*f, v)?),
        }
        Ok(())
    }

    /// Appends a buffered [`Cell`].
    pub fn append_cell(&mut self, cell: &Cell) -> Result<(), String> {
        match cell {
            Cell::Null => {
                self.append_null();
                Ok(())
            }
            Cell::Bool(v) => self.append_bool(*v),
            Cell::I64(v) => self.append_i64(*v),
            Cell::U64(v) => self.append_u64(*v),
            Cell::F64(v) => self.append_f64(*v),
            Cell::Str(v) => self.append_str(v),
        }
    }

    /// Finishes the column as an array of the declared type.
    pub fn finish(&mut self) -> Result<ArrayRef, String> {
        Ok(match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::F32(b) => Arc::new(b.finish()),
            Self::F64(b) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Time(b, _) => Arc::new(b.finish()),
            Self::Other(b, dt) => {
                let strings = b.finish();
                let target = match dt {
                    DataType::Timestamp(_, tz) => {
                        DataType::Timestamp(TimeUnit::Millisecond, tz.clone())
                    }
                    other => other.clone(),
                };
                let options = arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                };
                arrow::compute::cast_with_options(&strings, &target, &options)
                    .map_err(|e| e.to_string())?
            }
        })
    }
}
