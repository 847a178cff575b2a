//! Facts about a monitor read off its `CREATE MONITOR` text, for the views that only have
//! the stored definition: whether its rows are alerts, and which baseline its histogram
//! column is on.
//!
//! ```
//! use driftwatch::present::definition::{filters_rows, histogram_baseline};
//!
//! let sql = "CREATE MONITOR d AS SELECT window_start, window_end, feature, \
//!            histogram(value, 'train', feature) AS hist \
//!            FROM TUMBLE(features(s), ts, INTERVAL '5 seconds') GROUP BY 1, 2, 3 \
//!            HAVING max(value) > 3";
//! assert!(filters_rows(sql));
//! assert_eq!(histogram_baseline(sql, "hist").as_deref(), Some("train"));
//! ```

use datafusion::sql::sqlparser::ast::SetExpr;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Whether the monitor keeps only some rows (`WHERE` or `HAVING` on its outer SELECT): then
/// each of its rows is an alert. False when the text does not parse as a `CREATE MONITOR`.
pub fn filters_rows(definition: &str) -> bool {
    let Ok(statements) = driftwatch_sql::parse_statements(definition) else {
        return false;
    };
    statements.iter().any(|s| match s {
        driftwatch_sql::Statement::CreateMonitor(m) => match m.query.body.as_ref() {
            SetExpr::Select(select) => select.having.is_some() || select.selection.is_some(),
            _ => false,
        },
        _ => false,
    })
}

fn tokens(definition: &str) -> Vec<Token> {
    Tokenizer::new(&GenericDialect {}, definition)
        .tokenize()
        .map(|t| {
            t.into_iter()
                .filter(|t| !matches!(t, Token::Whitespace(_)))
                .collect()
        })
        .unwrap_or_default()
}

/// The baseline named in the definition's `histogram(…, 'baseline' …)` call: the one
/// aliased as `column` when there are several, else the first.
pub fn histogram_baseline(definition: &str, column: &str) -> Option<String> {
    let tokens = tokens(definition);
    let word = |i: usize, w: &str| matches!(tokens.get(i), Some(Token::Word(x)) if x.value.eq_ignore_ascii_case(w));
    // (baseline, index of the closing parenthesis) per call.
    let mut calls = Vec::new();
    for i in 0..tokens.len() {
        if !word(i, "histogram") || tokens.get(i + 1) != Some(&Token::LParen) {
            continue;
        }
        let (mut depth, mut commas, mut baseline) = (0i32, 0, None);
        for (j, t) in tokens.iter().enumerate().skip(i + 1) {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        if let Some(b) = baseline.take() {
                            calls.push((b, j));
                        }
                        break;
                    }
                }
                Token::Comma if depth == 1 => commas += 1,
                Token::SingleQuotedString(s) if depth == 1 && commas == 1 => {
                    baseline = Some(s.clone())
                }
                _ => {}
            }
        }
    }
    let aliased = calls.iter().find(|(_, close)| {
        word(close + 1, column) || (word(close + 1, "as") && word(close + 2, column))
    });
    aliased.or(calls.first()).map(|(b, _)| b.clone())
}

/// The first of `known` baselines the definition names as a string literal (any function's
/// `'baseline'` argument), matched case-insensitively; returned as spelt in `known`.
pub fn first_baseline(definition: &str, known: &[String]) -> Option<String> {
    tokens(definition).iter().find_map(|t| match t {
        Token::SingleQuotedString(s) => known.iter().find(|b| b.eq_ignore_ascii_case(s)).cloned(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_baseline_is_read_from_the_definition() {
        let d = "CREATE MONITOR m AS SELECT window_start, window_end, feature, \
                 histogram(value, 'other', feature) AS h2, histogram(value, 'train', feature) AS hist \
                 FROM TUMBLE(features(s), ts, INTERVAL '5 seconds') GROUP BY 1, 2, 3";
        assert_eq!(histogram_baseline(d, "hist").as_deref(), Some("train"));
        assert_eq!(histogram_baseline(d, "nope").as_deref(), Some("other"));
        assert_eq!(histogram_baseline("SELECT 1", "hist"), None);
    }

    #[test]
    fn filtered_monitors_are_alerts() {
        assert!(filters_rows(
            "CREATE MONITOR a AS SELECT window_start, window_end, count(*) AS n \
             FROM TUMBLE(s, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end HAVING count(*) > 3"
        ));
        assert!(filters_rows(
            "CREATE MONITOR o AS SELECT id, ts FROM s\nWHERE\tabs(zscore(x, 'b')) > 3"
        ));
        assert!(!filters_rows(
            "CREATE MONITOR a AS SELECT window_start, window_end, count(*) AS n \
             FROM TUMBLE(s, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end"
        ));
        // Words in names or comments are not clauses.
        assert!(!filters_rows(
            "CREATE MONITOR a AS SELECT somewhere, having_x FROM s -- WHERE not here"
        ));
    }

    #[test]
    fn the_first_known_baseline_named_is_found() {
        let names = vec!["other".to_string(), "Iris_Train".to_string()];
        let sql =
            "CREATE MONITOR m AS SELECT zscore(x, 'iris_train'), ks_pvalue(v, 'other') FROM s";
        assert_eq!(first_baseline(sql, &names).as_deref(), Some("Iris_Train"));
        assert_eq!(first_baseline("SELECT 'nothing'", &names), None);
    }
}
