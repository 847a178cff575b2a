//! Error type of the Driftwatch SQL dialect.

use std::fmt;

use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Location as SpLocation, Span, TokenizerError};

/// A 1-based position in the SQL text (line and column, columns count characters).
///
/// ```
/// use driftwatch_sql::Location;
/// let loc = Location::new(3, 7);
/// assert_eq!(loc.to_string(), "line 3, column 7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Location {
    /// 1-based line number.
    pub line: u64,
    /// 1-based column number (in characters).
    pub column: u64,
}

impl Location {
    /// Creates a location from a 1-based line and column.
    pub fn new(line: u64, column: u64) -> Self {
        Self { line, column }
    }

    /// Converts a sqlparser location; `None` for the "unknown" location (line 0).
    pub fn from_sqlparser(loc: SpLocation) -> Option<Self> {
        (loc.line > 0).then(|| Self::new(loc.line, loc.column))
    }

    /// Start of a sqlparser span; `None` when the span is empty/unknown.
    pub fn from_span(span: Span) -> Option<Self> {
        Self::from_sqlparser(span.start)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// An error while parsing or analysing Driftwatch SQL, with the position of the
/// offending token when known.
///
/// ```
/// let err = driftwatch_sql::parse_statements("CREATE SOURCE s (x BLOB) WITH (connector = 'file')")
///     .unwrap_err();
/// assert_eq!(err.location.unwrap().column, 20);
/// assert!(err.to_string().starts_with("line 1, column 20: "));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SqlError {
    /// Human-readable description of the problem.
    pub message: String,
    /// Where the problem is, if known.
    pub location: Option<Location>,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl SqlError {
    /// An error at a known location.
    pub fn at(location: impl Into<Option<Location>>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: location.into(),
        }
    }

    /// An error without location.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: None,
        }
    }

    /// An error located at the start of a sqlparser span (unknown if the span is empty).
    pub fn at_span(span: Span, message: impl Into<String>) -> Self {
        Self::at(Location::from_span(span), message)
    }

    /// Converts a sqlparser error, extracting the trailing "at Line: X, Column: Y".
    pub fn from_parser(err: ParserError) -> Self {
        let raw = match err {
            ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
            ParserError::RecursionLimitExceeded => {
                return Self::new("SQL statement is nested too deeply (recursion limit exceeded)")
            }
        };
        split_location(&raw)
    }
}

impl From<ParserError> for SqlError {
    fn from(err: ParserError) -> Self {
        Self::from_parser(err)
    }
}

impl From<TokenizerError> for SqlError {
    fn from(err: TokenizerError) -> Self {
        Self::at(Location::from_sqlparser(err.location), err.message)
    }
}

/// Splits "message at Line: X, Column: Y" into message and location.
fn split_location(raw: &str) -> SqlError {
    const MARK: &str = " at Line: ";
    if let Some(pos) = raw.rfind(MARK) {
        let rest = &raw[pos + MARK.len()..];
        if let Some((line, col)) = rest.split_once(", Column: ") {
            let col_digits: String = col.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let (Ok(line), Ok(column)) = (line.trim().parse(), col_digits.parse()) {
                let tail = &col[col_digits.len()..];
                let message = format!("{}{}", &raw[..pos], tail);
                return SqlError::at(Location::new(line, column), message);
            }
        }
    }
    SqlError::new(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sqlparser_location() {
        let e = SqlError::from(ParserError::ParserError(
            "Expected: end of statement, found: foo at Line: 3, Column: 14".into(),
        ));
        assert_eq!(e.location, Some(Location::new(3, 14)));
        assert_eq!(e.message, "Expected: end of statement, found: foo");
        assert_eq!(
            e.to_string(),
            "line 3, column 14: Expected: end of statement, found: foo"
        );
    }

    #[test]
    fn keeps_message_without_location() {
        let e = SqlError::from(ParserError::ParserError("oops".into()));
        assert_eq!(e.location, None);
        assert_eq!(e.to_string(), "oops");
    }
}
