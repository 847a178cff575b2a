//! Vectorised event-time conversion: whole Arrow arrays of raw time values (strings,
//! integers, floats, timestamps of any unit) become [`EVENT_TIME_TYPE`] arrays according to
//! the source's [`TimeFormat`].
//!
//! Conversion never fails as a whole: a value that cannot be converted becomes NULL and is
//! reported as a [`BadTime`] so callers can reject exactly that row. So does a value outside
//! [`MAX_TIME_MS`] (about ±259 000 years around 1970): scaling never wraps or saturates
//! into a bogus instant, and the engine's window and watermark arithmetic on event times
//! cannot overflow.

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::compute::kernels::cast_utils::string_to_datetime;
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt32Type, UInt64Type,
};
use chrono::Utc;

use crate::sources::schema::{TimeFormat, EVENT_TIME_TYPE};

/// Largest magnitude of an event time, in epoch milliseconds (year ±259 800 or so, inside
/// the range of calendar dates): values beyond it are rejected rather than converted.
pub const MAX_TIME_MS: i64 = 8_200_000_000_000_000;

/// `ms` if it is within ±[`MAX_TIME_MS`].
pub fn in_range(ms: i64) -> Option<i64> {
    (-MAX_TIME_MS..=MAX_TIME_MS).contains(&ms).then_some(ms)
}

/// The reason given for a time value outside ±[`MAX_TIME_MS`]; `value` is the raw value.
pub fn out_of_range(value: impl std::fmt::Display) -> String {
    format!("time value {value} is out of range (more than 259 000 years from 1970)")
}

/// A raw time value that could not be converted, by row index within the converted array.
#[derive(Debug, Clone, PartialEq)]
pub struct BadTime {
    /// Row index within the array.
    pub row: usize,
    /// What is wrong, e.g. `cannot parse "yesterday" as RFC 3339`.
    pub reason: String,
}

/// The Arrow type raw JSON time values are decoded into before conversion, per format:
/// the native timestamp decoder already implements `Auto` (RFC 3339 strings, integer ms).
pub fn json_raw_type(format: TimeFormat) -> DataType {
    match format {
        TimeFormat::Auto => EVENT_TIME_TYPE,
        TimeFormat::Rfc3339 => DataType::Utf8,
        TimeFormat::EpochSeconds => DataType::Float64,
        TimeFormat::EpochMillis => DataType::Int64,
    }
}

/// Human name of a format, used in error messages.
pub fn format_name(format: TimeFormat) -> &'static str {
    match format {
        TimeFormat::Auto => "a timestamp (RFC 3339 string or epoch milliseconds)",
        TimeFormat::Rfc3339 => "an RFC 3339 string",
        TimeFormat::EpochSeconds => "epoch seconds",
        TimeFormat::EpochMillis => "epoch milliseconds",
    }
}

/// Parses one string time value according to `format` into epoch milliseconds.
pub fn parse_str(format: TimeFormat, s: &str) -> Result<i64, String> {
    let ms = parse_unchecked(format, s)?;
    in_range(ms).ok_or_else(|| out_of_range(format!("{s:?}")))
}

fn parse_unchecked(format: TimeFormat, s: &str) -> Result<i64, String> {
    let t = s.trim();
    let as_rfc = |t: &str| {
        string_to_datetime(&Utc, t)
            .map(|d| d.timestamp_millis())
            .map_err(|_| format!("cannot parse {s:?} as RFC 3339"))
    };
    match format {
        TimeFormat::Rfc3339 => as_rfc(t),
        TimeFormat::Auto => match t.parse::<i64>() {
            Ok(ms) => Ok(ms),
            Err(_) => as_rfc(t),
        },
        TimeFormat::EpochMillis => t
            .parse::<i64>()
            .map_err(|_| format!("cannot parse {s:?} as epoch milliseconds")),
        TimeFormat::EpochSeconds => t
            .parse::<f64>()
            .ok()
            .and_then(seconds_to_ms)
            .ok_or_else(|| format!("cannot parse {s:?} as epoch seconds")),
    }
}

/// Converts fractional epoch seconds to milliseconds (rounded), `None` if not finite or
/// beyond ±[`MAX_TIME_MS`].
pub fn seconds_to_ms(secs: f64) -> Option<i64> {
    let ms = (secs * 1000.0).round();
    (ms.is_finite() && ms.abs() <= MAX_TIME_MS as f64).then_some(ms as i64)
}

/// Converts whole epoch seconds to milliseconds, `None` beyond ±[`MAX_TIME_MS`].
pub fn whole_seconds_to_ms(secs: i64) -> Option<i64> {
    secs.checked_mul(1000).and_then(in_range)
}

/// Converts a whole array of raw time values to [`EVENT_TIME_TYPE`]. Integers are taken as
/// seconds under [`TimeFormat::EpochSeconds`] and as milliseconds otherwise; floats likewise;
/// strings are parsed per format; timestamps of any unit are rescaled (keeping the instant).
pub fn to_event_time(array: &dyn Array, format: TimeFormat) -> (ArrayRef, Vec<BadTime>) {
    let mut bad = Vec::new();
    let secs = format == TimeFormat::EpochSeconds;
    let out: TimestampMillisecondArray = match array.data_type() {
        DataType::Timestamp(unit, _) => {
            // Overflow saturates to a value outside MAX_TIME_MS, rejected below.
            let scale = |v: i64| match unit {
                TimeUnit::Second => v.saturating_mul(1000),
                TimeUnit::Millisecond => v,
                TimeUnit::Microsecond => v.div_euclid(1000),
                TimeUnit::Nanosecond => v.div_euclid(1_000_000),
            };
            match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().unary(scale),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .reinterpret_cast(),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .unary(scale),
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().unary(scale)
                }
            }
        }
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            if secs {
                // Overflow saturates to a value outside MAX_TIME_MS, rejected below.
                a.unary(|v| v.saturating_mul(1000))
            } else {
                a.reinterpret_cast()
            }
        }
        DataType::Int32 => int_like(array.as_primitive::<Int32Type>(), secs),
        DataType::UInt32 => int_like(array.as_primitive::<UInt32Type>(), secs),
        DataType::UInt64 => int_like(array.as_primitive::<UInt64Type>(), secs),
        DataType::Float64 | DataType::Float32 => {
            let f64s;
            let a = if array.data_type() == &DataType::Float32 {
                f64s = array
                    .as_primitive::<Float32Type>()
                    .unary::<_, Float64Type>(|v| v as f64);
                &f64s
            } else {
                array.as_primitive::<Float64Type>()
            };
            let factor = if secs { 1.0 } else { 0.001 };
            let name = if secs {
                "epoch seconds"
            } else {
                "epoch milliseconds"
            };
            a.iter()
                .enumerate()
                .map(|(row, v)| {
                    let v = v?;
                    let ms = seconds_to_ms(v * factor);
                    if ms.is_none() {
                        bad.push(BadTime {
                            row,
                            reason: format!("{v} is not a valid {name} value"),
                        });
                    }
                    ms
                })
                .collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings: Box<dyn Iterator<Item = Option<&str>>> = match array.data_type() {
                DataType::Utf8 => Box::new(array.as_string::<i32>().iter()),
                DataType::LargeUtf8 => Box::new(array.as_string::<i64>().iter()),
                _ => Box::new(array.as_string_view().iter()),
            };
            strings
                .enumerate()
                .map(|(row, v)| match parse_str(format, v?) {
                    Ok(ms) => Some(ms),
                    Err(reason) => {
                        bad.push(BadTime { row, reason });
                        None
                    }
                })
                .collect()
        }
        DataType::Null => TimestampMillisecondArray::new_null(array.len()),
        other => {
            bad.extend((0..array.len()).map(|row| BadTime {
                row,
                reason: format!("a {other} value cannot be a timestamp"),
            }));
            TimestampMillisecondArray::new_null(array.len())
        }
    };
    let out = reject_out_of_range(out, array, &mut bad);
    (std::sync::Arc::new(out), bad)
}

/// Nulls (and reports) every value of `out` beyond ±[`MAX_TIME_MS`]; `raw` is the array it
/// was converted from, for the message. One vectorised pass when every value is in range.
fn reject_out_of_range(
    out: TimestampMillisecondArray,
    raw: &dyn Array,
    bad: &mut Vec<BadTime>,
) -> TimestampMillisecondArray {
    if out.values().iter().all(|v| in_range(*v).is_some()) {
        return out;
    }
    let checked: TimestampMillisecondArray = out
        .iter()
        .enumerate()
        .map(|(row, v)| {
            let v = v?;
            if in_range(v).is_none() {
                let value = arrow::util::display::array_value_to_string(raw, row)
                    .unwrap_or_else(|_| v.to_string());
                bad.push(BadTime {
                    row,
                    reason: out_of_range(value),
                });
            }
            in_range(v)
        })
        .collect();
    bad.sort_by_key(|b| b.row);
    checked
}

fn int_like<T>(a: &arrow::array::PrimitiveArray<T>, secs: bool) -> TimestampMillisecondArray
where
    T: arrow::datatypes::ArrowPrimitiveType,
    T::Native: TryInto<i64>,
{
    let m = if secs { 1000 } else { 1 };
    // A value that does not fit an i64, or overflows when scaled, saturates to a value
    // outside MAX_TIME_MS and is rejected by `reject_out_of_range`.
    a.iter()
        .map(|v| v.map(|v| v.try_into().unwrap_or(i64::MAX).saturating_mul(m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};

    #[test]
    fn converts_each_format() {
        let s = StringArray::from(vec![Some("2023-11-14T22:13:20.123Z"), None, Some("x")]);
        let (a, bad) = to_event_time(&s, TimeFormat::Rfc3339);
        let a = a.as_primitive::<TimestampMillisecondType>();
        assert_eq!(a.value(0), 1_700_000_000_123);
        assert!(a.is_null(1) && a.is_null(2));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].row, 2);

        let f = Float64Array::from(vec![1_700_000_000.5]);
        let (a, _) = to_event_time(&f, TimeFormat::EpochSeconds);
        assert_eq!(
            a.as_primitive::<TimestampMillisecondType>().value(0),
            1_700_000_000_500
        );

        let i = Int64Array::from(vec![1_700_000_000_123]);
        let (a, _) = to_event_time(&i, TimeFormat::EpochMillis);
        assert_eq!(
            a.as_primitive::<TimestampMillisecondType>().value(0),
            1_700_000_000_123
        );

        assert_eq!(
            parse_str(TimeFormat::Auto, "1700000000123"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_str(TimeFormat::EpochSeconds, "1700000000"),
            Ok(1_700_000_000_000)
        );
        assert!(parse_str(TimeFormat::Rfc3339, "yesterday").is_err());
    }
}
