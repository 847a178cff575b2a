//! Result batches as the page's JSON: an array of row objects written by arrow-json, with
//! every timestamp as epoch milliseconds (what charts plot), and the frames of the API's
//! answers and events.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// `batch` with timestamp and date columns as Int64 epoch milliseconds.
pub fn with_epoch_ms(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| is_time(f.data_type())) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if is_time(field.data_type()) {
            let ms = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            columns.push(cast(&ms, &DataType::Int64)?);
            fields.push(Field::new(
                field.name(),
                DataType::Int64,
                field.is_nullable(),
            ));
        } else {
            columns.push(Arc::clone(column));
            fields.push(field.as_ref().clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn is_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
}

/// Appends `batches` to `out` as one JSON array of row objects (`[]` when empty). NULLs
/// are left out of a row; non-finite floats are written as `null`.
pub fn write_rows(out: &mut Vec<u8>, batches: &[RecordBatch]) -> Result<(), ArrowError> {
    let start = out.len();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut *out);
        for batch in batches {
            if batch.num_rows() == 0 {
                continue;
            }
            let converted = with_epoch_ms(batch)?;
            writer.write(&converted)?;
        }
        writer.finish()?;
    }
    if out.len() == start {
        out.extend_from_slice(b"[]");
    }
    Ok(())
}

/// `{"monitor":"…","rows":[…]}` for `batches` of `monitor`.
pub fn monitor_rows(monitor: &str, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut out = Vec::with_capacity(64 + rows * 96);
    out.extend_from_slice(b"{\"monitor\":");
    let name = serde_json::to_vec(monitor).map_err(|e| ArrowError::JsonError(e.to_string()))?;
    out.extend_from_slice(&name);
    out.extend_from_slice(b",\"rows\":");
    write_rows(&mut out, batches)?;
    out.push(b'}');
    Ok(out)
}

/// Rows of `batch` as JSON values (tests and small answers).
pub fn rows_value(batch: &RecordBatch) -> Result<serde_json::Value, ArrowError> {
    let mut out = Vec::new();
    write_rows(&mut out, std::slice::from_ref(batch))?;
    serde_json::from_slice(&out).map_err(|e| ArrowError::JsonError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray, TimestampMillisecondArray};

    #[test]
    fn timestamps_become_epoch_ms_and_nulls_are_left_out() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("feature", DataType::Utf8, false),
            Field::new("w", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Float64Array::from(vec![Some(0.5), None])),
            ],
        )
        .unwrap();
        let body = monitor_rows("m\"x", &[batch]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["monitor"], "m\"x");
        assert_eq!(v["rows"][0]["window_end"], 1000);
        assert_eq!(v["rows"][1]["feature"], "b");
        assert!(v["rows"][1].get("w").is_none());
        assert!(!body.contains(&b'\n'));
        assert_eq!(
            monitor_rows("m", &[]).unwrap(),
            b"{\"monitor\":\"m\",\"rows\":[]}"
        );
    }
}
