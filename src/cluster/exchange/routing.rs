//! Which repartition partition a group goes to: a hash of its key values that every
//! process and version agrees on.

use arrow::array::{Array, ArrayData, ArrayRef, AsArray};
use arrow::datatypes::DataType;

use super::*;

enum KeyKind {
    Null,
    Bool,
    Fixed { data: ArrayData, width: usize },
    Str32,
    Str64,
    StrView,
    Bin32,
    Bin64,
    BinView,
    FixedBin,
}

/// The repartition partition (`0..partitions`) of each of `num_rows` groups, given their
/// key columns (none for a monitor without GROUP BY: every group goes to one partition).
///
/// The partition is the first 8 bytes of the BLAKE3 hash of a canonical encoding of the
/// row's key values, little endian, modulo `partitions`. Per column: a null is byte 0; a
/// value is byte 1 then: for strings (`Utf8`, `LargeUtf8`, `Utf8View`, or a dictionary of
/// them) and binaries, a u64 length and the bytes, so the physical encoding does not
/// matter; for booleans one byte; for fixed-width types (integers, floats, dates, times,
/// timestamps, durations, intervals, decimals) the native little-endian value. The
/// assignment is therefore the same in every process and every version of this format.
/// Other types (lists, structs, ...) are rejected with [`ExchangeError::UnsupportedKeyType`].
pub fn partition_rows(
    key_columns: &[ArrayRef],
    num_rows: usize,
    partitions: u32,
) -> Result<Vec<u32>, ExchangeError> {
    if partitions == 0 {
        return Err(invalid("partition count", "0"));
    }
    let mut arrays = Vec::with_capacity(key_columns.len());
    for column in key_columns {
        if column.len() != num_rows {
            return Err(invalid(
                "key column",
                format!("{} rows, expected {num_rows}", column.len()),
            ));
        }
        arrays.push(match column.data_type() {
            DataType::Dictionary(_, values) => arrow::compute::cast(column, values)
                .map_err(|e| ExchangeError::UnsupportedKeyType(e.to_string()))?,
            _ => column.clone(),
        });
    }
    let kinds = arrays
        .iter()
        .map(|a| key_kind(a.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut scratch = Vec::new();
    let mut out = Vec::with_capacity(num_rows);
    for row in 0..num_rows {
        scratch.clear();
        for (array, kind) in arrays.iter().zip(&kinds) {
            encode_key_value(&mut scratch, array.as_ref(), kind, row);
        }
        let hash = blake3::hash(&scratch);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        out.push((u64::from_le_bytes(first) % u64::from(partitions)) as u32);
    }
    Ok(out)
}

fn key_kind(array: &dyn Array) -> Result<KeyKind, ExchangeError> {
    Ok(match array.data_type() {
        DataType::Null => KeyKind::Null,
        DataType::Boolean => KeyKind::Bool,
        DataType::Utf8 => KeyKind::Str32,
        DataType::LargeUtf8 => KeyKind::Str64,
        DataType::Utf8View => KeyKind::StrView,
        DataType::Binary => KeyKind::Bin32,
        DataType::LargeBinary => KeyKind::Bin64,
        DataType::BinaryView => KeyKind::BinView,
        DataType::FixedSizeBinary(_) => KeyKind::FixedBin,
        t => match t.primitive_width() {
            Some(width) => KeyKind::Fixed {
                data: array.to_data(),
                width,
            },
            None => return Err(ExchangeError::UnsupportedKeyType(t.to_string())),
        },
    })
}

fn encode_key_value(out: &mut Vec<u8>, array: &dyn Array, kind: &KeyKind, row: usize) {
    if array.is_null(row) || matches!(kind, KeyKind::Null) {
        out.push(0);
        return;
    }
    out.push(1);
    let bytes: &[u8] = match kind {
        KeyKind::Null => return,
        KeyKind::Bool => {
            out.push(u8::from(array.as_boolean().value(row)));
            return;
        }
        KeyKind::Fixed { data, width } => {
            let start = (data.offset() + row) * width;
            out.extend_from_slice(&data.buffers()[0].as_slice()[start..start + width]);
            return;
        }
        KeyKind::Str32 => array.as_string::<i32>().value(row).as_bytes(),
        KeyKind::Str64 => array.as_string::<i64>().value(row).as_bytes(),
        KeyKind::StrView => array.as_string_view().value(row).as_bytes(),
        KeyKind::Bin32 => array.as_binary::<i32>().value(row),
        KeyKind::Bin64 => array.as_binary::<i64>().value(row),
        KeyKind::BinView => array.as_binary_view().value(row),
        KeyKind::FixedBin => array.as_fixed_size_binary().value(row),
    };
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}
