//! What `driftwatch run` prints on stdout: every result a monitor emits, complete — each
//! window as a compact table under a header line naming the monitor, the window's bounds
//! and its row count, or as JSON lines (one object per row, with the monitor's name).

use std::io::Write;

use arrow::array::{Array, AsArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// How `run` prints results on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultFormat {
    /// Each window as a compact, aligned table under a header line.
    Table,
    /// One JSON object per result row and line: `{"monitor": …, "window_start": …, …}`.
    Json,
}

/// Timestamps as UTC with their date: `2030-01-01 12:00:00Z` (milliseconds when not 0).
const TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S%.fZ";

/// Prints one emitted result batch to stdout (a closed pipe is ignored: results stay in the
/// data dir).
pub fn print_result(monitor: &str, batch: &RecordBatch, format: ResultFormat) {
    let text = match format {
        ResultFormat::Table => table(monitor, batch),
        ResultFormat::Json => json_lines(monitor, batch),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The window bounds of `batch` when every row has the same ones.
fn window_bounds(batch: &RecordBatch) -> Option<(i64, i64)> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .filter(|c| c.null_count() == 0 && !c.is_empty())
    };
    let (start, end) = (col("window_start")?, col("window_end")?);
    let (s, e) = (start.value(0), end.value(0));
    let same = start.values().iter().all(|v| *v == s) && end.values().iter().all(|v| *v == e);
    same.then_some((s, e))
}

fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format(TIMESTAMP).to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A float with 4 significant digits, without trailing zeros (`0.0441`, `8.26e-19`); the
/// data dir keeps the full value.
fn float(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if (-4..6).contains(&exp) {
        let decimals = (3 - exp).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.3e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if mantissa.contains('.') => format!(
                "{}e{exp}",
                mantissa.trim_end_matches('0').trim_end_matches('.')
            ),
            _ => s,
        }
    }
}

/// The cells of one column, and whether it is right-aligned (numbers).
fn cells(column: &dyn Array) -> (Vec<String>, bool) {
    let null = |i: usize| column.is_null(i);
    match column.data_type() {
        DataType::Float64 => {
            let a = column.as_primitive::<Float64Type>();
            let v = (0..a.len())
                .map(|i| {
                    if null(i) {
                        "NULL".into()
                    } else {
                        float(a.value(i))
                    }
                })
                .collect();
            (v, true)
        }
        DataType::Float32 => {
            let a = column.as_primitive::<Float32Type>();
            let v = (0..a.len())
                .map(|i| {
                    if null(i) {
                        "NULL".into()
                    } else {
                        float(a.value(i) as f64)
                    }
                })
                .collect();
            (v, true)
        }
        t => {
            let options = FormatOptions::default()
                .with_null("NULL")
                .with_timestamp_format(Some(TIMESTAMP));
            let right = t.is_numeric();
            let v = match ArrayFormatter::try_new(column, &options) {
                Ok(f) => (0..column.len()).map(|i| f.value(i).to_string()).collect(),
                Err(_) => vec!["?".into(); column.len()],
            };
            (v, right)
        }
    }
}

/// `monitor  [start, end)  N rows` and the rows as an aligned table (window columns shown in
/// the header when every row shares them).
pub fn table(monitor: &str, batch: &RecordBatch) -> String {
    let bounds = window_bounds(batch);
    let rows = batch.num_rows();
    let plural = if rows == 1 { "row" } else { "rows" };
    let mut out = match bounds {
        Some((s, e)) => format!(
            "{monitor}  [{}, {})  {rows} {plural}\n",
            timestamp(s),
            timestamp(e)
        ),
        None => format!("{monitor}  {rows} {plural}\n"),
    };
    let schema = batch.schema();
    let columns: Vec<(String, Vec<String>, bool)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| {
            bounds.is_none() || !matches!(f.name().as_str(), "window_start" | "window_end")
        })
        .map(|(f, c)| {
            let (cells, right) = cells(c.as_ref());
            (f.name().clone(), cells, right)
        })
        .collect();
    if columns.is_empty() || rows == 0 {
        return out;
    }
    let widths: Vec<usize> = columns
        .iter()
        .map(|(name, cells, _)| {
            cells
                .iter()
                .map(|c| c.chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cell: &dyn Fn(usize) -> (String, bool)| {
        let mut l = String::from(" ");
        for (i, w) in widths.iter().enumerate() {
            let (text, right) = cell(i);
            let pad = w.saturating_sub(text.chars().count());
            l.push(' ');
            if right {
                l.push_str(&" ".repeat(pad));
                l.push_str(&text);
            } else {
                l.push_str(&text);
                if i + 1 < widths.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
            l.push(' ');
        }
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    out.push_str(&line(&|i| (columns[i].0.clone(), columns[i].2)));
    for r in 0..rows {
        out.push_str(&line(&|i| (columns[i].1[r].clone(), columns[i].2)));
    }
    out
}

/// One JSON object per row, the monitor's name first (as `monitor`, or `_monitor` when the
/// result has a `monitor` column); timestamps in RFC 3339 UTC, NULLs written out.
pub fn json_lines(monitor: &str, batch: &RecordBatch) -> String {
    let key = if batch.schema().column_with_name("monitor").is_some() {
        "_monitor"
    } else {
        "monitor"
    };
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.3fZ".into())
            .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        if let Err(e) = writer.write(batch).and_then(|()| writer.finish()) {
            tracing::warn!(monitor, error = %e, "result not printable as JSON");
            return String::new();
        }
    }
    let prefix = format!(
        "{{{}:{},",
        serde_json::Value::from(key),
        serde_json::Value::from(monitor)
    );
    let mut out = String::with_capacity(buf.len() + batch.num_rows() * prefix.len());
    for line in String::from_utf8_lossy(&buf).lines() {
        match line.strip_prefix('{') {
            Some("}") => out.push_str(&format!("{}}}", &prefix[..prefix.len() - 1])),
            Some(rest) => {
                out.push_str(&prefix);
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    fn window() -> RecordBatch {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let schema = Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("feature", DataType::Utf8, false),
            Field::new("w", DataType::Float64, true),
        ]));
        let t0 = 1_893_499_200_000; // 2030-01-01 12:00:00Z
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![t0; 3])),
                Arc::new(TimestampMillisecondArray::from(vec![t0 + 10_000; 3])),
                Arc::new(StringArray::from(vec!["alcohol", "ash", "magnesium"])),
                Arc::new(Float64Array::from(vec![
                    Some(0.044123456),
                    None,
                    Some(1.5e-19),
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_window_prints_every_row_under_its_bounds() {
        let text = table("drift", &window());
        assert_eq!(
            text,
            "drift  [2030-01-01 12:00:00Z, 2030-01-01 12:00:10Z)  3 rows\n  \
             feature          w\n  \
             alcohol    0.04412\n  \
             ash           NULL\n  \
             magnesium  1.5e-19\n"
        );
    }

    #[test]
    fn json_rows_carry_the_monitor() {
        let text = json_lines("drift", &window());
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["monitor"], "drift");
        assert_eq!(rows[0]["window_start"], "2030-01-01T12:00:00.000Z");
        assert_eq!(rows[1]["w"], serde_json::Value::Null);
        assert_eq!(rows[2]["feature"], "magnesium");
    }

    #[test]
    fn floats_are_compact() {
        assert_eq!(float(0.5), "0.5");
        assert_eq!(float(150.0), "150");
        assert_eq!(float(123456.0), "123456");
        assert_eq!(float(0.98765), "0.9877");
        assert_eq!(float(8.2567e-19), "8.257e-19");
        assert_eq!(float(-1234567.0), "-1.235e6");
        assert_eq!(float(0.0), "0");
    }
}
