//! `CREATE SOURCE` column list and `WATERMARK FOR` clause.

use datafusion::sql::sqlparser::{
    ast::{BinaryOperator, Expr, Spanned},
    keywords::Keyword,
    tokenizer::Token,
};

use super::{normalize_ident, word_is, DwParser};
use crate::ast::*;
use crate::error::{Location, SqlError};
use crate::interval::interval_ms;
use crate::types::sql_type_to_arrow;

impl DwParser<'_, '_> {
    pub(super) fn parse_create_source(
        &mut self,
        location: Location,
        or_replace: bool,
    ) -> Result<Statement, SqlError> {
        let if_not_exists = self.parse_if_not_exists(or_replace)?;
        let (name, _) = self.parse_name()?;
        let mut columns: Vec<ColumnSpec> = Vec::new();
        let mut watermark: Option<(WatermarkSpec, Location)> = None;
        if self.parser.consume_token(&Token::LParen) {
            loop {
                let tok = self.parser.peek_token();
                if word_is(&tok, "WATERMARK") && word_is(&self.parser.peek_nth_token(1), "FOR") {
                    if watermark.is_some() {
                        return Err(SqlError::at(
                            self.loc(&tok),
                            "only one WATERMARK clause is allowed",
                        ));
                    }
                    watermark = Some(self.parse_watermark()?);
                } else {
                    let col = self.parse_column()?;
                    if columns.iter().any(|c| c.name == col.name) {
                        return Err(SqlError::at(
                            col.location,
                            format!("duplicate column '{}'", col.name),
                        ));
                    }
                    columns.push(col);
                }
                if self.parser.consume_token(&Token::Comma) {
                    continue;
                }
                if self.parser.consume_token(&Token::RParen) {
                    break;
                }
                let found = self.parser.peek_token();
                return Err(self.err_here(format!(
                    "expected ',' or ')' after a column definition, found {found} \
                     (columns are `name TYPE [NOT NULL]`; constraints and defaults are not supported)"
                )));
            }
        }
        let watermark = match watermark {
            None => None,
            Some((wm, col_loc)) => {
                let Some(col) = columns.iter().find(|c| c.name == wm.column) else {
                    return Err(SqlError::at(
                        col_loc,
                        format!(
                            "WATERMARK column '{}' is not a column of source {name}",
                            wm.column
                        ),
                    ));
                };
                if !matches!(
                    col.data_type,
                    arrow::datatypes::DataType::Timestamp(_, _) | arrow::datatypes::DataType::Int64
                ) {
                    return Err(SqlError::at(
                        col_loc,
                        format!(
                            "WATERMARK column '{}' must be a TIMESTAMP (or BIGINT epoch milliseconds), not {}",
                            wm.column, col.data_type
                        ),
                    ));
                }
                Some(wm)
            }
        };
        let options = self.parse_optional_with()?;
        Ok(Statement::CreateSource(CreateSource {
            name,
            columns,
            watermark,
            options,
            location,
            sql: String::new(),
            or_replace,
            if_not_exists,
        }))
    }

    pub(super) fn parse_if_not_exists(&mut self, or_replace: bool) -> Result<bool, SqlError> {
        let loc = self.peek_loc();
        let ine = self
            .parser
            .parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        if ine && or_replace {
            return Err(SqlError::at(
                loc,
                "OR REPLACE and IF NOT EXISTS cannot be combined",
            ));
        }
        Ok(ine)
    }

    pub(super) fn parse_column(&mut self) -> Result<ColumnSpec, SqlError> {
        let location = self.peek_loc();
        let id = self.parser.parse_identifier()?;
        let type_loc = self.peek_loc();
        let sql_type = self.parser.parse_data_type()?;
        let data_type = sql_type_to_arrow(&sql_type).map_err(|m| SqlError::at(type_loc, m))?;
        let mut nullable = true;
        loop {
            if self.parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                nullable = false;
            } else if self.parser.parse_keyword(Keyword::NULL) {
                nullable = true;
            } else {
                break;
            }
        }
        Ok(ColumnSpec {
            name: normalize_ident(&id),
            data_type,
            nullable,
            location,
        })
    }

    /// `WATERMARK FOR col AS col [- INTERVAL '…']`; returns the spec and the column's location.
    pub(super) fn parse_watermark(&mut self) -> Result<(WatermarkSpec, Location), SqlError> {
        let location = self.peek_loc();
        self.parser.next_token(); // WATERMARK
        self.parser.next_token(); // FOR
        let col_loc = self.peek_loc();
        let col = self.parser.parse_identifier()?;
        let column = normalize_ident(&col);
        let example = format!("WATERMARK FOR {column} AS {column} - INTERVAL '5 seconds'");
        if !self.parser.parse_keyword(Keyword::AS) {
            return Err(self.err_here(format!(
                "expected AS and the watermark delay after WATERMARK FOR {column}, e.g. {example}"
            )));
        }
        let expr_loc = self.peek_loc();
        let expr = self.parser.parse_expr()?;
        let is_col = |e: &Expr| matches!(e, Expr::Identifier(id) if normalize_ident(id) == column);
        let delay_ms = match &expr {
            e if is_col(e) => 0,
            Expr::BinaryOp { left, op: BinaryOperator::Minus, right } if is_col(left) => {
                let ms = interval_ms(right)?;
                if ms < 0 {
                    let at = Location::from_span(right.span()).unwrap_or(expr_loc);
                    return Err(SqlError::at(at, "the watermark delay must not be negative"));
                }
                ms
            }
            Expr::BinaryOp { left, .. } | Expr::Nested(left) if !is_col(left) => {
                let at = Location::from_span(left.span()).unwrap_or(expr_loc);
                return Err(SqlError::at(
                    at,
                    format!("the watermark expression must be based on column {column}: {example}"),
                ));
            }
            other => {
                return Err(SqlError::at(
                    expr_loc,
                    format!("unsupported watermark expression {other}; write {example} (or AS {column} for no delay)"),
                ))
            }
        };
        Ok((
            WatermarkSpec {
                column,
                delay_ms,
                location,
            },
            col_loc,
        ))
    }
}
