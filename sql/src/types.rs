//! Mapping of SQL column types (as parsed by sqlparser) to Arrow types.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{DataType as SqlType, ExactNumberInfo};

/// Maps a SQL type of a `CREATE SOURCE` column to its Arrow type.
///
/// | SQL | Arrow |
/// |---|---|
/// | DOUBLE, DOUBLE PRECISION, FLOAT8, FLOAT64 | Float64 |
/// | FLOAT, REAL, FLOAT4, FLOAT32 | Float32 |
/// | INT, INTEGER, INT4 | Int32 |
/// | BIGINT, INT8, INT64 | Int64 |
/// | SMALLINT, INT2 | Int16 |
/// | TINYINT | Int8 |
/// | BOOLEAN, BOOL | Boolean |
/// | VARCHAR, TEXT, STRING, CHAR | Utf8 |
/// | TIMESTAMP \[(p)\] \[WITH\[OUT\] TIME ZONE\] | Timestamp(Millisecond, None) |
/// | DATE | Date32 |
/// | DECIMAL(p, s), NUMERIC(p, s) | Decimal128(p, s) |
///
/// Event time is always kept as UTC milliseconds since the epoch, whatever the declared
/// precision or time zone of a `TIMESTAMP` column.
///
/// Returns `Err(message)` for anything else; the caller adds the location.
///
/// ```
/// use driftwatch_sql::sql_type_to_arrow;
/// use datafusion::sql::sqlparser::ast::DataType as SqlType;
/// use arrow::datatypes::DataType;
/// assert_eq!(sql_type_to_arrow(&SqlType::DoublePrecision).unwrap(), DataType::Float64);
/// ```
pub fn sql_type_to_arrow(ty: &SqlType) -> Result<DataType, String> {
    use SqlType as T;
    Ok(match ty {
        T::Double(ExactNumberInfo::None) | T::DoublePrecision | T::Float8 | T::Float64 => {
            DataType::Float64
        }
        T::Float(ExactNumberInfo::None) | T::Real | T::Float4 | T::Float32 => DataType::Float32,
        T::Float(ExactNumberInfo::Precision(p)) => {
            // SQL standard: FLOAT(p) with p <= 24 is single precision.
            if *p <= 24 {
                DataType::Float32
            } else {
                DataType::Float64
            }
        }
        T::Int(_) | T::Integer(_) | T::Int4(_) | T::Int32 => DataType::Int32,
        T::BigInt(_) | T::Int8(_) | T::Int64 => DataType::Int64,
        T::SmallInt(_) | T::Int2(_) | T::Int16 => DataType::Int16,
        T::TinyInt(_) => DataType::Int8,
        T::Boolean | T::Bool => DataType::Boolean,
        T::Varchar(_)
        | T::CharacterVarying(_)
        | T::CharVarying(_)
        | T::Text
        | T::String(_)
        | T::Char(_)
        | T::Character(_) => DataType::Utf8,
        T::Timestamp(_, _) | T::Datetime(_) | T::TimestampNtz(_) => {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        }
        T::Date => DataType::Date32,
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => decimal(info)?,
        T::Custom(name, modifiers) if modifiers.is_empty() => {
            match name.to_string().to_ascii_lowercase().as_str() {
                "string" => DataType::Utf8,
                "float64" => DataType::Float64,
                "float32" => DataType::Float32,
                other => return Err(unsupported(other)),
            }
        }
        other => return Err(unsupported(&other.to_string())),
    })
}

fn decimal(info: &ExactNumberInfo) -> Result<DataType, String> {
    let (p, s) = match info {
        ExactNumberInfo::None => (38, 10),
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
    };
    if p == 0 || p > 38 {
        return Err(format!(
            "DECIMAL precision must be between 1 and 38, got {p}"
        ));
    }
    if s < 0 || s as u64 > p {
        return Err(format!(
            "DECIMAL scale must be between 0 and the precision ({p}), got {s}"
        ));
    }
    Ok(DataType::Decimal128(p as u8, s as i8))
}

fn unsupported(name: &str) -> String {
    format!(
        "unsupported column type {name}; supported: DOUBLE, FLOAT, REAL, INT, BIGINT, SMALLINT, \
         TINYINT, BOOLEAN, VARCHAR, TEXT, STRING, CHAR, TIMESTAMP, DATE, DECIMAL(p, s)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};

    fn map(sql: &str) -> Result<DataType, String> {
        let ty = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_data_type()
            .unwrap();
        sql_type_to_arrow(&ty)
    }

    #[test]
    fn maps_types() {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        for (sql, want) in [
            ("DOUBLE", DataType::Float64),
            ("DOUBLE PRECISION", DataType::Float64),
            ("FLOAT8", DataType::Float64),
            ("FLOAT", DataType::Float32),
            ("REAL", DataType::Float32),
            ("FLOAT4", DataType::Float32),
            ("INT", DataType::Int32),
            ("INTEGER", DataType::Int32),
            ("BIGINT", DataType::Int64),
            ("SMALLINT", DataType::Int16),
            ("TINYINT", DataType::Int8),
            ("BOOLEAN", DataType::Boolean),
            ("VARCHAR", DataType::Utf8),
            ("VARCHAR(20)", DataType::Utf8),
            ("TEXT", DataType::Utf8),
            ("STRING", DataType::Utf8),
            ("CHAR(3)", DataType::Utf8),
            ("TIMESTAMP", ms.clone()),
            ("TIMESTAMP(3)", ms.clone()),
            ("TIMESTAMP WITH TIME ZONE", ms.clone()),
            ("TIMESTAMP(6) WITHOUT TIME ZONE", ms.clone()),
            ("DATE", DataType::Date32),
            ("DECIMAL(10, 2)", DataType::Decimal128(10, 2)),
            ("NUMERIC(5)", DataType::Decimal128(5, 0)),
        ] {
            assert_eq!(map(sql).unwrap(), want, "{sql}");
        }
        assert!(map("BLOB")
            .unwrap_err()
            .contains("unsupported column type BLOB"));
        assert!(map("DECIMAL(50, 2)").is_err());
        assert!(map("INT[]").is_err());
    }
}
