//! [`ResultShape`]: the roles of a monitor's result columns, read off its Arrow schema.
//!
//! A monitor's result is whatever its SELECT list says, so the roles are inferred by the
//! conventions the SQL dialect itself uses:
//!
//! - **time**: `window_start` and `window_end` of a windowed monitor, else the event-time
//!   column of a row-level one (`ts`, `event_time`, `time`, else the first timestamp);
//! - **keys**: text columns, the groups of a windowed monitor (`feature` in the long form);
//!   text columns named `id` or `…_id` are row identifiers ([`ResultShape::ids`]), not groups;
//! - **measures**: numeric columns, one chart each;
//! - **flag**: the Boolean that marks a drifted or alerting row: a column named `drift`,
//!   `drifted`, `drift_detected`, `alert` or `is_drift` (else the only Boolean column), or the
//!   `drifted` field of a `drift_test(…)` struct;
//! - **histogram**: a list of integer counts (`histogram(x, 'baseline', feature)`).
//!
//! ```
//! use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
//! use driftwatch::present::{ResultShape, TimeColumns};
//!
//! let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
//! let schema = Schema::new(vec![
//!     Field::new("window_start", ts.clone(), false),
//!     Field::new("window_end", ts, false),
//!     Field::new("feature", DataType::Utf8, false),
//!     Field::new("ks_p", DataType::Float64, true),
//!     Field::new("drift", DataType::Boolean, true),
//! ]);
//! let shape = ResultShape::of(&schema);
//! assert!(matches!(shape.time, TimeColumns::Window { .. }));
//! assert_eq!(shape.feature.as_deref(), Some("feature"));
//! assert_eq!(shape.measures, vec!["ks_p".to_string()]);
//! assert!(shape.is_drift());
//! ```

use arrow::datatypes::{DataType, Field, Schema};
use serde::Serialize;

/// Names of Boolean columns taken as the drift/alert flag, in order of preference.
const FLAG_NAMES: &[&str] = &["drift", "drifted", "drift_detected", "alert", "is_drift"];
/// Event-time column names of row-level monitors, in order of preference.
const EVENT_TIME_NAMES: &[&str] = &["ts", "event_time", "time", "timestamp"];

/// The time columns of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimeColumns {
    /// A windowed monitor: every row belongs to `[start, end)`.
    Window {
        /// The window start column.
        start: String,
        /// The window end column.
        end: String,
    },
    /// A row-level monitor: each row has its event time.
    Event {
        /// The event-time column.
        column: String,
    },
    /// No time column (charts use the order of arrival).
    None,
}

/// The Boolean that marks a drifted or alerting row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlagColumn {
    /// The result column.
    pub column: String,
    /// The struct field holding the Boolean (`drifted` of `drift_test`), or None when the
    /// column itself is Boolean.
    pub field: Option<String>,
}

/// The roles of a monitor's result columns (see the module docs for the rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultShape {
    /// Window or event-time columns.
    pub time: TimeColumns,
    /// Group columns (text), in schema order.
    pub keys: Vec<String>,
    /// The key named `feature` (case-insensitive), the rows of a drift heat map.
    pub feature: Option<String>,
    /// Row identifiers (text columns named `id` or `…_id`), not groups.
    pub ids: Vec<String>,
    /// Numeric columns, one chart each, in schema order.
    pub measures: Vec<String>,
    /// The drift/alert flag.
    pub flag: Option<FlagColumn>,
    /// A list-of-integer-counts column (`histogram(…)`).
    pub histogram: Option<String>,
}

impl ResultShape {
    /// Classifies the columns of `schema`.
    pub fn of(schema: &Schema) -> Self {
        let fields = schema.fields();
        let named = |name: &str| {
            fields
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(name) && is_timestamp(f.data_type()))
                .map(|f| f.name().clone())
        };
        let time = match (named("window_start"), named("window_end")) {
            (Some(start), Some(end)) => TimeColumns::Window { start, end },
            _ => EVENT_TIME_NAMES
                .iter()
                .find_map(|n| named(n))
                .or_else(|| {
                    fields
                        .iter()
                        .find(|f| is_timestamp(f.data_type()))
                        .map(|f| f.name().clone())
                })
                .map_or(TimeColumns::None, |column| TimeColumns::Event { column }),
        };
        let is_time = |name: &str| match &time {
            TimeColumns::Window { start, end } => name == start || name == end,
            TimeColumns::Event { column } => name == column,
            TimeColumns::None => false,
        };

        let mut shape = ResultShape {
            time: time.clone(),
            keys: Vec::new(),
            feature: None,
            ids: Vec::new(),
            measures: Vec::new(),
            flag: None,
            histogram: None,
        };
        let mut booleans: Vec<&Field> = Vec::new();
        let mut struct_flag: Option<FlagColumn> = None;
        for field in fields.iter() {
            let name = field.name();
            if is_time(name) {
                continue;
            }
            match field.data_type() {
                t if is_text(t) => {
                    if is_identifier(name) {
                        shape.ids.push(name.clone());
                    } else {
                        if name.eq_ignore_ascii_case("feature") && shape.feature.is_none() {
                            shape.feature = Some(name.clone());
                        }
                        shape.keys.push(name.clone());
                    }
                }
                t if t.is_numeric() => shape.measures.push(name.clone()),
                DataType::Boolean => booleans.push(field),
                DataType::Struct(children) => {
                    let drifted = children
                        .iter()
                        .find(|c| c.name() == "drifted" && c.data_type() == &DataType::Boolean);
                    if let (Some(c), None) = (drifted, &struct_flag) {
                        struct_flag = Some(FlagColumn {
                            column: name.clone(),
                            field: Some(c.name().clone()),
                        });
                    }
                }
                DataType::List(item) | DataType::LargeList(item)
                    if item.data_type().is_integer() && shape.histogram.is_none() =>
                {
                    shape.histogram = Some(name.clone());
                }
                _ => {}
            }
        }
        let by_name = FLAG_NAMES.iter().find_map(|n| {
            booleans
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(n))
                .map(|f| f.name().clone())
        });
        let only = (booleans.len() == 1).then(|| booleans[0].name().clone());
        shape.flag = by_name
            .or(only)
            .map(|column| FlagColumn {
                column,
                field: None,
            })
            .or(struct_flag);
        shape
    }

    /// A windowed result.
    pub fn is_windowed(&self) -> bool {
        matches!(self.time, TimeColumns::Window { .. })
    }

    /// A drift result: one row per feature and window with a drift flag (a heat map).
    pub fn is_drift(&self) -> bool {
        self.is_windowed() && self.feature.is_some() && self.flag.is_some()
    }
}

fn is_timestamp(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

fn is_identifier(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "id" || lower.ends_with("_id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Fields, TimeUnit};
    use std::sync::Arc;

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    #[test]
    fn row_level_monitor_has_event_time_and_ids() {
        let schema = Schema::new(vec![
            Field::new("request_id", DataType::Utf8, true),
            Field::new("ts", ts(), true),
            Field::new("petal_length_z", DataType::Float64, true),
        ]);
        let shape = ResultShape::of(&schema);
        assert_eq!(
            shape.time,
            TimeColumns::Event {
                column: "ts".into()
            }
        );
        assert_eq!(shape.ids, vec!["request_id"]);
        assert!(shape.keys.is_empty());
        assert_eq!(shape.measures, vec!["petal_length_z"]);
        assert!(!shape.is_drift());
    }

    #[test]
    fn drift_test_struct_and_histogram_are_found() {
        let verdict = Fields::from(vec![
            Field::new("method", DataType::Utf8, true),
            Field::new("statistic", DataType::Float64, true),
            Field::new("drifted", DataType::Boolean, true),
        ]);
        let schema = Schema::new(vec![
            Field::new("window_start", ts(), false),
            Field::new("window_end", ts(), false),
            Field::new("Feature", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
            Field::new("t", DataType::Struct(verdict), true),
            Field::new(
                "hist",
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                true,
            ),
        ]);
        let shape = ResultShape::of(&schema);
        assert!(shape.is_drift());
        assert_eq!(shape.feature.as_deref(), Some("Feature"));
        assert_eq!(
            shape.flag,
            Some(FlagColumn {
                column: "t".into(),
                field: Some("drifted".into())
            })
        );
        assert_eq!(shape.histogram.as_deref(), Some("hist"));
        assert_eq!(shape.measures, vec!["n"]);
    }

    #[test]
    fn named_flag_wins_over_other_booleans() {
        let schema = Schema::new(vec![
            Field::new("window_start", ts(), false),
            Field::new("window_end", ts(), false),
            Field::new("feature", DataType::Utf8, false),
            Field::new("tiny", DataType::Boolean, true),
            Field::new("drift", DataType::Boolean, true),
        ]);
        let shape = ResultShape::of(&schema);
        assert_eq!(shape.flag.unwrap().column, "drift");
        // Two unnamed Booleans: no flag is guessed.
        let schema = Schema::new(vec![
            Field::new("window_start", ts(), false),
            Field::new("window_end", ts(), false),
            Field::new("a", DataType::Boolean, true),
            Field::new("b", DataType::Boolean, true),
        ]);
        assert_eq!(ResultShape::of(&schema).flag, None);
    }
}
