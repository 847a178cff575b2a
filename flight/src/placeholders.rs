//! Query parameters as every client writes them: `?` (JDBC, ODBC, Python's DB-API and so
//! ADBC) as well as PostgreSQL's `$1, $2, …`.
//!
//! DataFusion numbers only `$n` placeholders; a bare `?` stays an unnamed placeholder that
//! no positional parameter list can bind ("Failed to parse placeholder id"). Before a query
//! is planned, [`number_placeholders`] therefore rewrites each `?` into `$1, $2, …` in the
//! order the placeholders appear in the text, and SQLite's numbered `?NNN` into `$NNN`.
//!
//! The placeholders are found in the parsed statement (the sandbox's parse, see
//! [`crate::sandbox::read_only_query`]), not by scanning the text, so a `?` inside a string,
//! a quoted identifier or a comment is never touched; only the placeholder tokens themselves
//! are replaced, so the rest of the text reaches DataFusion as the client wrote it.
//!
//! ```
//! use driftwatch_flight::sandbox::read_only_query;
//! let sql = read_only_query("SELECT ? + 1, '?' AS q FROM t WHERE a = ?").unwrap();
//! assert_eq!(sql, "SELECT $1 + 1, '?' AS q FROM t WHERE a = $2");
//! let mixed = read_only_query("SELECT ? + $1").unwrap_err();
//! assert!(mixed.contains("do not mix"), "{mixed}");
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::ControlFlow;

use arrow::datatypes::DataType;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Value, ValueWithSpan, Visit, Visitor};
use datafusion::sql::sqlparser::tokenizer::Location;

/// Why the placeholders of a query cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// Both `?` and numbered placeholders in one statement.
    #[error(
        "do not mix '?' and numbered placeholders ({numbered}) in one statement: use either '?' \
         (bound in the order they appear) or $1, $2, …"
    )]
    Mixed {
        /// The first numbered placeholder.
        numbered: String,
    },
    /// A named placeholder such as `$name`: Flight SQL binds parameters by position.
    #[error(
        "named placeholder {0} is not supported: Flight SQL binds parameters by position, use '?' \
         or $1, $2, …"
    )]
    Named(String),
    /// `$0` or `?0`: positions start at 1.
    #[error("placeholder {0} is invalid: parameter positions start at 1 ($1)")]
    Zero(String),
    /// The parser's location of a placeholder does not match the text (a parser bug).
    #[error("placeholder {0} could not be located in the query text")]
    NotLocated(String),
}

/// One placeholder of a statement: its text and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    text: String,
    at: Location,
}

#[derive(Default)]
struct Collect(Vec<Found>);

impl Visitor for Collect {
    type Break = ();

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        if let Value::Placeholder(text) = &value.value {
            self.0.push(Found {
                text: text.clone(),
                at: value.span.start,
            });
        }
        ControlFlow::Continue(())
    }
}

fn collect(statement: &DFStatement, out: &mut Collect) {
    match statement {
        DFStatement::Statement(s) => {
            let _ = s.visit(out);
        }
        DFStatement::Explain(e) => collect(&e.statement, out),
        // Refused by the sandbox before parameters matter.
        DFStatement::CreateExternalTable(_) | DFStatement::CopyTo(_) | DFStatement::Reset(_) => {}
    }
}

/// How a placeholder is numbered.
enum Kind {
    /// `?`: the next position.
    Positional,
    /// `$n` or `?n`.
    Numbered(usize),
}

fn kind(text: &str) -> Result<Kind, PlaceholderError> {
    if text == "?" {
        return Ok(Kind::Positional);
    }
    let digits = text
        .strip_prefix('$')
        .or_else(|| text.strip_prefix('?'))
        .unwrap_or(text);
    match digits.parse::<usize>() {
        Ok(0) => Err(PlaceholderError::Zero(text.to_string())),
        Ok(n) => Ok(Kind::Numbered(n)),
        Err(_) => Err(PlaceholderError::Named(text.to_string())),
    }
}

/// Byte offset of a 1-based line and column (counted in characters, as sqlparser does).
fn byte_offset(sql: &str, at: Location) -> Option<usize> {
    let line = usize::try_from(at.line).ok()?.checked_sub(1)?;
    let column = usize::try_from(at.column).ok()?.checked_sub(1)?;
    let line_start = if line == 0 {
        0
    } else {
        sql.match_indices('\n').nth(line - 1)?.0 + 1
    };
    let rest = &sql[line_start..];
    match rest.char_indices().nth(column) {
        Some((i, _)) => Some(line_start + i),
        None if rest.chars().count() == column => Some(sql.len()),
        None => None,
    }
}

/// Whether `c` can continue an identifier or a placeholder token (GenericDialect), so a
/// replacement next to it needs a space to stay a token of its own.
fn joins(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '@' | '#'))
}

/// `sql` with every `?` of `statement` numbered `$1, $2, …` in text order and every `?n`
/// written `$n` (see the module docs); borrowed unchanged when there is nothing to rewrite.
/// `statement` must be the parse of `sql`.
pub fn number_placeholders<'a>(
    sql: &'a str,
    statement: &DFStatement,
) -> Result<Cow<'a, str>, PlaceholderError> {
    let mut found = Collect::default();
    collect(statement, &mut found);
    let mut found = found.0;
    if found.is_empty() {
        return Ok(Cow::Borrowed(sql));
    }
    found.sort_by_key(|f| (f.at.line, f.at.column));
    let kinds = found
        .iter()
        .map(|f| kind(&f.text))
        .collect::<Result<Vec<_>, _>>()?;
    let positional = kinds.iter().any(|k| matches!(k, Kind::Positional));
    if positional {
        if let Some((f, _)) = found
            .iter()
            .zip(&kinds)
            .find(|(_, k)| matches!(k, Kind::Numbered(_)))
        {
            return Err(PlaceholderError::Mixed {
                numbered: f.text.clone(),
            });
        }
    }
    if !positional && found.iter().all(|f| f.text.starts_with('$')) {
        return Ok(Cow::Borrowed(sql));
    }
    let mut out = String::with_capacity(sql.len() + 2 * found.len());
    let mut copied = 0;
    let mut next = 0;
    for (f, k) in found.iter().zip(&kinds) {
        let start =
            byte_offset(sql, f.at).ok_or_else(|| PlaceholderError::NotLocated(f.text.clone()))?;
        let end = start + f.text.len();
        if start < copied || sql.get(start..end) != Some(f.text.as_str()) {
            return Err(PlaceholderError::NotLocated(f.text.clone()));
        }
        let n = match k {
            Kind::Positional => {
                next += 1;
                next
            }
            Kind::Numbered(n) => *n,
        };
        out.push_str(&sql[copied..start]);
        if joins(sql[..start].chars().next_back()) {
            out.push(' ');
        }
        out.push_str(&format!("${n}"));
        if joins(sql[end..].chars().next()) {
            out.push(' ');
        }
        copied = end;
    }
    out.push_str(&sql[copied..]);
    Ok(Cow::Owned(out))
}

/// The types of parameters `$1 … $n` of a plan from DataFusion's
/// [`get_parameter_types`](datafusion::logical_expr::LogicalPlan::get_parameter_types)
/// (`None`: the plan does not fix the type, as in `$2 - $1`, where DataFusion says `Null`).
/// Positions not used by the query get `None`.
pub fn positional_types(
    types: HashMap<String, Option<DataType>>,
) -> Result<Vec<Option<DataType>>, PlaceholderError> {
    let mut numbered = Vec::with_capacity(types.len());
    for (id, t) in types {
        match kind(&id)? {
            Kind::Numbered(n) => numbered.push((n, t.filter(|t| *t != DataType::Null))),
            // Not after number_placeholders; refuse rather than guess a position.
            Kind::Positional => return Err(PlaceholderError::Named(id)),
        }
    }
    let len = numbered.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut out = vec![None; len];
    for (n, t) in numbered {
        out[n - 1] = t;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    fn number(sql: &str) -> Result<String, PlaceholderError> {
        let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).unwrap();
        number_placeholders(sql, &statements[0]).map(|s| s.into_owned())
    }

    #[test]
    fn question_marks_are_numbered_in_text_order() {
        assert_eq!(number("SELECT ? + 1").unwrap(), "SELECT $1 + 1");
        assert_eq!(
            number("SELECT * FROM t WHERE a = ? AND b IN (?, ?) LIMIT ?").unwrap(),
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3) LIMIT $4"
        );
        // Text order, not the order of the syntax tree's fields.
        assert_eq!(
            number("SELECT ?\nFROM t\nWHERE x BETWEEN ? AND ?\nORDER BY ?").unwrap(),
            "SELECT $1\nFROM t\nWHERE x BETWEEN $2 AND $3\nORDER BY $4"
        );
        assert_eq!(
            number("WITH c AS (SELECT ? AS v) SELECT v, ? FROM c").unwrap(),
            "WITH c AS (SELECT $1 AS v) SELECT v, $2 FROM c"
        );
        assert_eq!(
            number("EXPLAIN SELECT ? = 'é?'").unwrap(),
            "EXPLAIN SELECT $1 = 'é?'"
        );
        assert_eq!(number("SELECT 'ü', ?").unwrap(), "SELECT 'ü', $1");
    }

    #[test]
    fn strings_identifiers_and_comments_keep_their_question_marks() {
        let sql = "SELECT '?', \"a?\" -- what?\n, ? /* ? */ FROM t WHERE s = 'x?y' AND v = ?";
        assert_eq!(
            number(sql).unwrap(),
            "SELECT '?', \"a?\" -- what?\n, $1 /* ? */ FROM t WHERE s = 'x?y' AND v = $2"
        );
        assert_eq!(number("SELECT '?'").unwrap(), "SELECT '?'");
    }

    #[test]
    fn dollar_and_sqlite_numbers_stay_numbered() {
        assert_eq!(number("SELECT $2, $1").unwrap(), "SELECT $2, $1");
        assert_eq!(number("SELECT ?2, ?1").unwrap(), "SELECT $2, $1");
        // A replacement never merges with its neighbours into one token.
        assert_eq!(number("SELECT ?AS x").unwrap(), "SELECT $1 AS x");
    }

    #[test]
    fn mixed_named_and_zero_placeholders_are_refused() {
        let e = number("SELECT ? + $1").unwrap_err();
        assert_eq!(
            e,
            PlaceholderError::Mixed {
                numbered: "$1".into()
            }
        );
        assert!(e.to_string().contains("do not mix"), "{e}");
        assert!(matches!(
            number("SELECT $1, ?"),
            Err(PlaceholderError::Mixed { .. })
        ));
        assert!(matches!(
            number("SELECT ?1, ?"),
            Err(PlaceholderError::Mixed { .. })
        ));
        assert!(matches!(
            number("SELECT $name"),
            Err(PlaceholderError::Named(_))
        ));
        assert!(matches!(
            number("SELECT $0"),
            Err(PlaceholderError::Zero(_))
        ));
    }

    #[test]
    fn parameter_types_by_position() {
        let types = HashMap::from([
            ("$2".to_string(), Some(DataType::Utf8)),
            ("$3".to_string(), Some(DataType::Int64)),
            ("$4".to_string(), Some(DataType::Null)),
        ]);
        assert_eq!(
            positional_types(types).unwrap(),
            vec![None, Some(DataType::Utf8), Some(DataType::Int64), None]
        );
        assert!(positional_types(HashMap::from([("?".to_string(), None)])).is_err());
        assert!(positional_types(HashMap::new()).unwrap().is_empty());
    }
}
