//! Durations: SQL `INTERVAL` literals and duration text such as `'10 seconds'`.
//!
//! Driftwatch keeps every duration in whole milliseconds (`i64`). Months and years have no
//! fixed length and are rejected; so are sub-millisecond fractions.

use datafusion::sql::sqlparser::ast::{DateTimeField, Expr, Interval, Spanned, Value};

use crate::error::{Location, SqlError};

const MS_PER_SECOND: f64 = 1_000.0;

/// Milliseconds in one unit named `unit` (case-insensitive, singular, plural or short form).
fn unit_ms(unit: &str) -> Result<f64, String> {
    let u = unit.to_ascii_lowercase();
    let ms = match u.as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "us" | "usec" | "usecs" | "microsecond" | "microseconds" => 0.001,
        "s" | "sec" | "secs" | "second" | "seconds" => MS_PER_SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0 * MS_PER_SECOND,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600.0 * MS_PER_SECOND,
        "d" | "day" | "days" => 86_400.0 * MS_PER_SECOND,
        "w" | "week" | "weeks" => 7.0 * 86_400.0 * MS_PER_SECOND,
        "mon" | "mons" | "month" | "months" | "y" | "yr" | "yrs" | "year" | "years" => {
            return Err(format!(
                "'{unit}': months and years have no fixed length; use days, hours, minutes, seconds or milliseconds"
            ))
        }
        _ => {
            return Err(format!(
                "unknown time unit '{unit}' (expected milliseconds, seconds, minutes, hours, days or weeks)"
            ))
        }
    };
    Ok(ms)
}

/// `s` without `prefix` (ASCII, compared case-insensitively), if it starts with it.
fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn to_whole_ms(total: f64, text: &str) -> Result<i64, String> {
    if total.is_nan() {
        return Err(format!("duration '{text}' is not a number"));
    }
    let rounded = total.round();
    if (total - rounded).abs() > 1e-6 {
        return Err(format!(
            "duration '{text}' is not a whole number of milliseconds"
        ));
    }
    if rounded.abs() > i64::MAX as f64 / 2.0 {
        return Err(format!("duration '{text}' is too large"));
    }
    Ok(rounded as i64)
}

/// Parses duration text into milliseconds.
///
/// Accepts one or more `<number> <unit>` parts, with or without a space, e.g. `'10 seconds'`,
/// `'10s'`, `'500 ms'`, `'1 minute'`, `'2h'`, `'1 hour 30 minutes'`, `'1.5s'`, a leading
/// `INTERVAL` keyword (`"INTERVAL '5 seconds'"`) and a leading `-` sign.
///
/// ```
/// use driftwatch_sql::parse_duration_ms;
/// assert_eq!(parse_duration_ms("10 seconds").unwrap(), 10_000);
/// assert_eq!(parse_duration_ms("2h").unwrap(), 7_200_000);
/// assert_eq!(parse_duration_ms("INTERVAL '500 milliseconds'").unwrap(), 500);
/// assert!(parse_duration_ms("1 month").is_err());
/// ```
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let mut s = text.trim();
    if let Some(rest) = strip_prefix_ignore_case(s, "interval") {
        s = rest.trim().trim_matches('\'').trim();
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, s),
    };
    if body.is_empty() {
        return Err(format!("empty duration '{text}'"));
    }
    let mut total = 0.0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "invalid duration '{text}': expected a number, e.g. '10 seconds'"
            ));
        }
        let digits = &rest[..num_len];
        let number: f64 = digits
            .parse()
            .map_err(|_| format!("invalid number '{digits}' in duration '{text}'"))?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!(
                "duration '{text}' needs a unit, e.g. '{digits} seconds' or '{digits} ms'"
            ));
        }
        total += number * unit_ms(&rest[..unit_len])?;
        rest = rest[unit_len..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    let ms = to_whole_ms(total, text)?;
    Ok(if neg { -ms } else { ms })
}

fn field_ms(field: &DateTimeField) -> Result<f64, String> {
    use DateTimeField as F;
    Ok(match field {
        F::Millisecond | F::Milliseconds => 1.0,
        F::Microsecond | F::Microseconds => 0.001,
        F::Second | F::Seconds => MS_PER_SECOND,
        F::Minute | F::Minutes => 60.0 * MS_PER_SECOND,
        F::Hour | F::Hours => 3_600.0 * MS_PER_SECOND,
        F::Day | F::Days => 86_400.0 * MS_PER_SECOND,
        F::Week(_) | F::Weeks => 7.0 * 86_400.0 * MS_PER_SECOND,
        F::Month | F::Months | F::Year | F::Years | F::Quarter => {
            return Err(format!(
                "INTERVAL in {field}: months and years have no fixed length; use days, hours, minutes or seconds"
            ))
        }
        other => return Err(format!("unsupported INTERVAL unit {other}")),
    })
}

fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.to_string()),
            _ => None,
        },
        Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => literal_text(expr).map(|t| format!("-{t}")),
        _ => None,
    }
}

/// Milliseconds of a SQL `INTERVAL` expression, with a located error otherwise.
///
/// Supports `INTERVAL '15 seconds'`, `INTERVAL '15' SECOND`, `INTERVAL '1' HOUR`,
/// `INTERVAL '1 minute'`, `INTERVAL '500 milliseconds'`.
///
/// ```
/// use driftwatch_sql::interval_ms;
/// use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};
/// let expr = Parser::new(&GenericDialect {})
///     .try_with_sql("INTERVAL '15' SECOND").unwrap().parse_expr().unwrap();
/// assert_eq!(interval_ms(&expr).unwrap(), 15_000);
/// ```
pub fn interval_ms(expr: &Expr) -> Result<i64, SqlError> {
    let loc = Location::from_span(expr.span());
    let Expr::Interval(Interval {
        value,
        leading_field,
        last_field,
        ..
    }) = expr
    else {
        return Err(SqlError::at(
            loc,
            format!("expected an INTERVAL literal such as INTERVAL '15 seconds', found {expr}"),
        ));
    };
    if let Some(last) = last_field {
        return Err(SqlError::at(
            loc,
            format!("INTERVAL ranges (... TO {last}) are not supported; write e.g. INTERVAL '90 seconds'"),
        ));
    }
    let Some(text) = literal_text(value) else {
        return Err(SqlError::at(
            loc,
            format!("INTERVAL value must be a literal such as '15 seconds', found {value}"),
        ));
    };
    let result = match leading_field {
        Some(field) => {
            let unit = field_ms(field);
            let n: Result<f64, String> = text
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("INTERVAL '{text}' {field}: expected a number"));
            unit.and_then(|u| n.and_then(|n| to_whole_ms(n * u, &text)))
        }
        None => parse_duration_ms(&text),
    };
    result.map_err(|m| SqlError::at(loc, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};

    fn expr(sql: &str) -> Expr {
        Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    #[test]
    fn duration_text() {
        assert_eq!(parse_duration_ms("10 seconds").unwrap(), 10_000);
        assert_eq!(parse_duration_ms("10s").unwrap(), 10_000);
        assert_eq!(parse_duration_ms("500 ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("1 minute").unwrap(), 60_000);
        assert_eq!(parse_duration_ms("2h").unwrap(), 7_200_000);
        assert_eq!(parse_duration_ms("1 hour 30 minutes").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("1.5 s").unwrap(), 1_500);
        assert_eq!(parse_duration_ms("1 DAY").unwrap(), 86_400_000);
        assert_eq!(parse_duration_ms("-6 seconds").unwrap(), -6_000);
        assert_eq!(parse_duration_ms("interval '6 seconds'").unwrap(), 6_000);
        assert!(parse_duration_ms("10")
            .unwrap_err()
            .contains("needs a unit"));
        assert!(parse_duration_ms("2 months")
            .unwrap_err()
            .contains("months"));
        assert!(parse_duration_ms("5 parsecs")
            .unwrap_err()
            .contains("unknown time unit"));
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("0.5 ms").is_err());
    }

    #[test]
    fn interval_literals() {
        assert_eq!(interval_ms(&expr("INTERVAL '15 seconds'")).unwrap(), 15_000);
        assert_eq!(interval_ms(&expr("INTERVAL '15' SECOND")).unwrap(), 15_000);
        assert_eq!(interval_ms(&expr("INTERVAL '1 minute'")).unwrap(), 60_000);
        assert_eq!(
            interval_ms(&expr("INTERVAL '500 milliseconds'")).unwrap(),
            500
        );
        assert_eq!(interval_ms(&expr("INTERVAL '1' HOUR")).unwrap(), 3_600_000);
        assert_eq!(interval_ms(&expr("INTERVAL '2' MINUTE")).unwrap(), 120_000);
        let e = interval_ms(&expr("INTERVAL '1' MONTH")).unwrap_err();
        assert!(e.message.contains("months"), "{e}");
        let e = interval_ms(&expr("INTERVAL '1 year'")).unwrap_err();
        assert!(e.message.contains("months and years"), "{e}");
        assert_eq!(e.location, Some(Location::new(1, 10)));
        assert!(interval_ms(&expr("42")).is_err());
    }
}
