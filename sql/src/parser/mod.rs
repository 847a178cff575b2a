//! Statement parser: Driftwatch DDL on top of sqlparser (the way DataFusion's `DFParser`
//! adds `CREATE EXTERNAL TABLE`), everything else falls through to sqlparser.

use datafusion::sql::sqlparser::{
    ast::Ident,
    dialect::GenericDialect,
    keywords::Keyword,
    parser::Parser,
    tokenizer::{Location as SpLocation, Token, TokenWithSpan, Tokenizer, Whitespace, Word},
};

mod source;
mod with_options;

use crate::ast::*;
use crate::error::{Location, SqlError};
use crate::options::did_you_mean;

/// Parses a `;`-separated script (comments allowed) into statements.
///
/// Driftwatch statements (`CREATE SOURCE | BASELINE | MONITOR`, `DROP …`, `SHOW …`) are
/// parsed here; anything else is handed to sqlparser's generic dialect (the one DataFusion
/// uses by default) and returned as [`Statement::Other`]. Keywords are case-insensitive;
/// names are lower-cased unless quoted. Every error carries a 1-based line and column.
///
/// ```
/// use driftwatch_sql::{parse_statements, Statement};
/// let stmts = parse_statements(
///     "-- a script\nCREATE BASELINE t FROM 'train.csv';\nSELECT 1;",
/// ).unwrap();
/// assert_eq!(stmts.len(), 2);
/// let err = parse_statements("CREATE SORUCE s (x INT)").unwrap_err();
/// assert_eq!(err.to_string(), "line 1, column 8: unknown object type SORUCE after CREATE; did you mean SOURCE?");
/// ```
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>, SqlError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location()?;
    let tokens = strip_flink_table_keyword(tokens);
    let text = SourceText::new(sql);
    let mut p = DwParser {
        parser: Parser::new(&dialect).with_tokens_with_locations(tokens),
        text: &text,
    };
    p.parse_all().map_err(|e| text.locate_eof(e))
}

/// Flink writes `TUMBLE(TABLE src, DESCRIPTOR(ts), …)`; sqlparser cannot parse `TABLE src` as a
/// function argument, so the `TABLE` keyword directly after `TUMBLE(` / `HOP(` / `SESSION(` /
/// `FEATURES(` is blanked out (replaced by a space token, keeping all locations).
fn strip_flink_table_keyword(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    for w in significant.windows(3) {
        let is_window_fn = matches!(&tokens[w[0]].token,
            Token::Word(Word { value, quote_style: None, .. })
                if ["tumble", "hop", "session", "features", "cumulate"]
                    .iter().any(|f| value.eq_ignore_ascii_case(f)));
        let is_table = matches!(
            &tokens[w[2]].token,
            Token::Word(Word {
                keyword: Keyword::TABLE,
                quote_style: None,
                ..
            })
        );
        if is_window_fn && tokens[w[1]].token == Token::LParen && is_table {
            tokens[w[2]].token = Token::Whitespace(Whitespace::Space);
        }
    }
    tokens
}

/// Line index of the input, to slice statement text out of token spans.
struct SourceText<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceText<'a> {
    fn new(sql: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self { sql, line_starts }
    }

    /// Byte offset of a 1-based (line, char column) location.
    fn offset(&self, loc: SpLocation) -> usize {
        let Some(&start) = self.line_starts.get((loc.line as usize).saturating_sub(1)) else {
            return self.sql.len();
        };
        let line = &self.sql[start..];
        let col = (loc.column as usize).saturating_sub(1);
        start
            + line
                .char_indices()
                .nth(col)
                .map(|(i, _)| i)
                .unwrap_or(line.len())
    }

    fn slice(&self, start: SpLocation, end: SpLocation) -> String {
        let (a, b) = (self.offset(start), self.offset(end));
        self.sql[a.min(b)..b].trim().to_string()
    }

    /// Location just past the last character of the input.
    fn end_location(&self) -> Location {
        let last = self.line_starts.len();
        let start = self.line_starts[last - 1];
        Location::new(last as u64, self.sql[start..].chars().count() as u64 + 1)
    }

    /// sqlparser reports "found: EOF" without a location: point at the end of the input.
    fn locate_eof(&self, mut e: SqlError) -> SqlError {
        if e.location.is_none() && e.message.contains("found: EOF") {
            e.location = Some(self.end_location());
        }
        e
    }
}

const DW_CREATE: [&str; 3] = ["SOURCE", "BASELINE", "MONITOR"];
const DW_SHOW: [&str; 3] = ["SOURCES", "BASELINES", "MONITORS"];
/// Object types sqlparser knows after CREATE / DROP / SHOW (never "did you mean"-corrected).
const SQL_OBJECTS: &[&str] = &[
    "TABLE",
    "TABLES",
    "VIEW",
    "VIEWS",
    "INDEX",
    "SCHEMA",
    "SCHEMAS",
    "DATABASE",
    "DATABASES",
    "FUNCTION",
    "FUNCTIONS",
    "ROLE",
    "ROLES",
    "SECRET",
    "SEQUENCE",
    "TYPE",
    "EXTERNAL",
    "TEMP",
    "TEMPORARY",
    "UNIQUE",
    "MACRO",
    "STAGE",
    "TRIGGER",
    "POLICY",
    "CONNECTOR",
    "EXTENSION",
    "DOMAIN",
    "PROCEDURE",
    "USER",
    "COLUMNS",
    "VARIABLES",
    "VARIABLE",
    "STATUS",
    "CREATE",
    "ALL",
    "SERVER",
    "COLLATION",
    "OPERATOR",
    "STREAM",
    "STREAMS",
];

fn word_is(tok: &TokenWithSpan, kw: &str) -> bool {
    matches!(&tok.token, Token::Word(Word { value, quote_style: None, .. }) if value.eq_ignore_ascii_case(kw))
}

fn unquoted_word(tok: &TokenWithSpan) -> Option<String> {
    match &tok.token {
        Token::Word(Word {
            value,
            quote_style: None,
            ..
        }) => Some(value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Normalises an identifier the way DataFusion does: lower-case unless quoted.
pub(crate) fn normalize_ident(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_ascii_lowercase()
    }
}

struct DwParser<'a, 'b> {
    parser: Parser<'a>,
    text: &'b SourceText<'b>,
}

impl DwParser<'_, '_> {
    fn loc(&self, tok: &TokenWithSpan) -> Location {
        Location::from_sqlparser(tok.span.start).unwrap_or_else(|| self.text.end_location())
    }

    fn peek_loc(&self) -> Location {
        self.loc(self.parser.peek_token_ref())
    }

    fn err_here(&self, msg: impl Into<String>) -> SqlError {
        SqlError::at(self.peek_loc(), msg)
    }

    fn parse_all(&mut self) -> Result<Vec<Statement>, SqlError> {
        let mut out = Vec::new();
        loop {
            while self.parser.consume_token(&Token::SemiColon) {}
            if self.parser.peek_token_ref().token == Token::EOF {
                return Ok(out);
            }
            let start = self.parser.peek_token_ref().span.start;
            let mut stmt = self.parse_statement()?;
            let end = self.parser.get_current_token().span.end;
            let sql = self.text.slice(start, end);
            match &mut stmt {
                Statement::CreateSource(s) => s.sql = sql,
                Statement::CreateBaseline(b) => b.sql = sql,
                Statement::CreateMonitor(m) => m.sql = sql,
                // The definition's own text starts after EXPLAIN.
                Statement::Explain(ExplainTarget::Create(m)) => {
                    m.sql = sql["EXPLAIN".len()..].trim_start().to_string()
                }
                _ => {}
            }
            out.push(stmt);
            // A statement must be followed by ';' or the end of input.
            let next = self.parser.peek_token_ref();
            if next.token != Token::SemiColon && next.token != Token::EOF {
                let found = self.parser.peek_token();
                return Err(self.err_here(format!(
                    "expected ';' or end of input after the statement, found {found}"
                )));
            }
        }
    }

    fn parse_statement(&mut self) -> Result<Statement, SqlError> {
        let first = self.parser.peek_token();
        if word_is(&first, "EXPLAIN") {
            if let Some(stmt) = self.parse_explain()? {
                return Ok(stmt);
            }
        }
        if word_is(&first, "CREATE") {
            let or_replace_len = if word_is(&self.parser.peek_nth_token(1), "OR") {
                2
            } else {
                0
            };
            let kind_tok = self.parser.peek_nth_token(1 + or_replace_len);
            if let Some(kind) = DW_CREATE.iter().find(|k| word_is(&kind_tok, k)) {
                let location = self.loc(&first);
                self.parser.next_token(); // CREATE
                let or_replace = self.parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
                self.parser.next_token(); // kind
                return match *kind {
                    "SOURCE" => self.parse_create_source(location, or_replace),
                    "BASELINE" => self.parse_create_baseline(location, or_replace),
                    _ => self.parse_create_monitor(location, or_replace),
                };
            }
            self.check_typo(&kind_tok, &DW_CREATE, "CREATE")?;
        } else if word_is(&first, "DROP") {
            let kind_tok = self.parser.peek_nth_token(1);
            if let Some(kind) = DW_CREATE.iter().find(|k| word_is(&kind_tok, k)) {
                self.parser.next_token();
                self.parser.next_token();
                let if_exists = self.parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
                let name = self.parse_name()?.0;
                return Ok(Statement::Drop {
                    kind: object_kind(kind),
                    name,
                    if_exists,
                });
            }
            self.check_typo(&kind_tok, &DW_CREATE, "DROP")?;
        } else if word_is(&first, "SHOW") {
            let kind_tok = self.parser.peek_nth_token(1);
            let object = self.parser.peek_nth_token(2);
            if word_is(&kind_tok, "CREATE") {
                if let Some(kind) = DW_CREATE.iter().find(|k| word_is(&object, k)) {
                    for _ in 0..3 {
                        self.parser.next_token();
                    }
                    let name = self.parse_name()?.0;
                    return Ok(Statement::ShowCreate {
                        kind: object_kind(kind),
                        name,
                    });
                }
            }
            if let Some(i) = DW_SHOW.iter().position(|k| word_is(&kind_tok, k)) {
                self.parser.next_token();
                self.parser.next_token();
                return Ok(Statement::Show(object_kind(DW_CREATE[i])));
            }
            // SHOW SOURCE → did you mean SOURCES?
            if let Some(w) = unquoted_word(&kind_tok) {
                if let Some(i) = DW_CREATE.iter().position(|k| *k == w) {
                    return Err(SqlError::at(
                        self.loc(&kind_tok),
                        format!(
                            "unknown object type {w} after SHOW; did you mean {}?",
                            DW_SHOW[i]
                        ),
                    ));
                }
            }
            self.check_typo(&kind_tok, &DW_SHOW, "SHOW")?;
        }
        let stmt = self.parser.parse_statement()?;
        Ok(Statement::Other(Box::new(stmt)))
    }

    /// `EXPLAIN MONITOR name` and `EXPLAIN CREATE [OR REPLACE] MONITOR …`; `None` for any
    /// other EXPLAIN (left to sqlparser: `EXPLAIN SELECT …`).
    fn parse_explain(&mut self) -> Result<Option<Statement>, SqlError> {
        let next = self.parser.peek_nth_token(1);
        if word_is(&next, "MONITOR") {
            self.parser.next_token();
            self.parser.next_token();
            let name = self.parse_name()?.0;
            return Ok(Some(Statement::Explain(ExplainTarget::Monitor(name))));
        }
        let (kind_tok, location) = if word_is(&next, "CREATE") {
            let or_replace_len = if word_is(&self.parser.peek_nth_token(2), "OR") {
                2
            } else {
                0
            };
            (
                self.parser.peek_nth_token(2 + or_replace_len),
                self.loc(&next),
            )
        } else {
            (next.clone(), self.loc(&next))
        };
        if word_is(&next, "CREATE") && word_is(&kind_tok, "MONITOR") {
            self.parser.next_token(); // EXPLAIN
            self.parser.next_token(); // CREATE
            let or_replace = self.parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
            self.parser.next_token(); // MONITOR
            let Statement::CreateMonitor(m) = self.parse_create_monitor(location, or_replace)?
            else {
                unreachable!("parse_create_monitor returns a CREATE MONITOR");
            };
            return Ok(Some(Statement::Explain(ExplainTarget::Create(Box::new(m)))));
        }
        if word_is(&kind_tok, "SOURCE") || word_is(&kind_tok, "BASELINE") {
            return Err(SqlError::at(
                self.loc(&kind_tok),
                "EXPLAIN shows monitor plans: EXPLAIN MONITOR name or EXPLAIN CREATE MONITOR … \
                 AS SELECT …; for a source or baseline use SHOW CREATE SOURCE | BASELINE name",
            ));
        }
        Ok(None)
    }

    /// `CREATE SORUCE` → "did you mean SOURCE?" (only for words sqlparser would not accept).
    fn check_typo(
        &self,
        tok: &TokenWithSpan,
        candidates: &[&str],
        after: &str,
    ) -> Result<(), SqlError> {
        let Some(w) = unquoted_word(tok) else {
            return Ok(());
        };
        if SQL_OBJECTS.contains(&w.as_str()) {
            return Ok(());
        }
        match did_you_mean(&w, candidates) {
            Some(s) => Err(SqlError::at(
                self.loc(tok),
                format!("unknown object type {w} after {after}; did you mean {s}?"),
            )),
            None => Ok(()),
        }
    }

    /// A single (unqualified) object name, normalised, and its location.
    fn parse_name(&mut self) -> Result<(String, Location), SqlError> {
        let loc = self.peek_loc();
        let id = self.parser.parse_identifier()?;
        if self.parser.peek_token_ref().token == Token::Period {
            return Err(SqlError::at(
                loc,
                format!(
                    "qualified names are not supported here: use a plain name such as {}",
                    id.value
                ),
            ));
        }
        let name = normalize_ident(&id);
        crate::names::validate_object_name(&name).map_err(|e| SqlError::at(loc, e))?;
        Ok((name, loc))
    }

    fn parse_create_baseline(
        &mut self,
        location: Location,
        or_replace: bool,
    ) -> Result<Statement, SqlError> {
        if word_is(&self.parser.peek_token(), "IF") {
            return Err(self.err_here(
                "IF NOT EXISTS is only supported for CREATE SOURCE; use CREATE OR REPLACE BASELINE",
            ));
        }
        let (name, _) = self.parse_name()?;
        let mut options = self.parse_optional_with()?;
        let input = if self.parser.parse_keyword(Keyword::FROM) {
            let tok = self.parser.peek_token();
            let path = match tok.token {
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
                _ => {
                    return Err(self.err_here(format!(
                        "expected a quoted file path after FROM, found {tok}; \
                         to build a baseline from a table write CREATE BASELINE {name} AS SELECT * FROM {tok}"
                    )))
                }
            };
            self.parser.next_token();
            if options.is_empty() {
                options = self.parse_optional_with()?;
            }
            BaselineInput::Path(path)
        } else if self.parser.parse_keyword(Keyword::AS) {
            let (query, sql) = self.parse_query_text()?;
            BaselineInput::Query { query, sql }
        } else {
            let found = self.parser.peek_token();
            return Err(self.err_here(format!(
                "expected FROM 'path' or AS SELECT … after CREATE BASELINE {name}, found {found}"
            )));
        };
        let baseline = CreateBaseline {
            name,
            input,
            options,
            location,
            sql: String::new(),
            or_replace,
        };
        // Reject bad options now, at their line and column, before any data is read.
        baseline.baseline_options()?;
        Ok(Statement::CreateBaseline(baseline))
    }

    fn parse_query_text(
        &mut self,
    ) -> Result<(Box<datafusion::sql::sqlparser::ast::Query>, String), SqlError> {
        let start = self.parser.peek_token_ref().span.start;
        let query = self.parser.parse_query()?;
        let end = self.parser.get_current_token().span.end;
        Ok((query, self.text.slice(start, end)))
    }

    fn parse_create_monitor(
        &mut self,
        location: Location,
        or_replace: bool,
    ) -> Result<Statement, SqlError> {
        if word_is(&self.parser.peek_token(), "IF") {
            return Err(self.err_here(
                "IF NOT EXISTS is only supported for CREATE SOURCE; use CREATE OR REPLACE MONITOR",
            ));
        }
        let (name, _) = self.parse_name()?;
        let options = self.parse_optional_with()?;
        if !self.parser.parse_keyword(Keyword::AS) {
            let found = self.parser.peek_token();
            return Err(self.err_here(format!(
                "expected AS SELECT … after CREATE MONITOR {name} [WITH (…)], found {found}"
            )));
        }
        let (query, query_sql) = self.parse_query_text()?;
        Ok(Statement::CreateMonitor(CreateMonitor {
            name,
            options,
            query,
            query_sql,
            location,
            sql: String::new(),
            or_replace,
        }))
    }
}

fn object_kind(kw: &str) -> ObjectKind {
    match kw {
        "SOURCE" => ObjectKind::Source,
        "BASELINE" => ObjectKind::Baseline,
        _ => ObjectKind::Monitor,
    }
}
