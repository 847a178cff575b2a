//! `WITH (key = value, …)` option lists.

use datafusion::sql::sqlparser::{keywords::Keyword, tokenizer::Token};

use super::DwParser;
use crate::error::SqlError;
use crate::options::{OptionLiteral, OptionValue, Options};

impl DwParser<'_, '_> {
    pub(super) fn parse_optional_with(&mut self) -> Result<Options, SqlError> {
        if self.parser.parse_keyword(Keyword::WITH) {
            self.parse_options()
        } else {
            Ok(Options::new())
        }
    }

    /// `( key = value, … )` after `WITH`.
    pub(super) fn parse_options(&mut self) -> Result<Options, SqlError> {
        let mut options = Options::new();
        if self.parser.peek_token_ref().token != Token::LParen {
            let found = self.parser.peek_token();
            return Err(self.err_here(format!("expected '(' after WITH, found {found}")));
        }
        self.parser.next_token();
        if self.parser.consume_token(&Token::RParen) {
            return Ok(options);
        }
        loop {
            let key_location = self.peek_loc();
            let key = self.parse_option_key()?;
            if self.parser.peek_token_ref().token != Token::Eq {
                let found = self.parser.peek_token();
                return Err(
                    self.err_here(format!("expected '=' after option '{key}', found {found}"))
                );
            }
            self.parser.next_token();
            let location = self.peek_loc();
            let value = self.parse_option_value(&key)?;
            let v = OptionValue {
                value,
                location,
                key_location,
            };
            if options.insert(&key, v).is_some() {
                return Err(SqlError::at(
                    key_location,
                    format!("option '{key}' is given twice"),
                ));
            }
            if self.parser.consume_token(&Token::Comma) {
                continue;
            }
            if self.parser.consume_token(&Token::RParen) {
                return Ok(options);
            }
            let found = self.parser.peek_token();
            return Err(self.err_here(format!(
                "expected ',' or ')' in the WITH option list, found {found}"
            )));
        }
    }

    pub(super) fn parse_option_key(&mut self) -> Result<String, SqlError> {
        let tok = self.parser.next_token();
        let key = match tok.token {
            Token::Word(w) => {
                let mut parts = vec![w.value];
                while self.parser.consume_token(&Token::Period) {
                    match self.parser.next_token().token {
                        Token::Word(w) => parts.push(w.value),
                        _ => {
                            self.parser.prev_token();
                            return Err(self.err_here("expected a key name after '.'"));
                        }
                    }
                }
                parts.join(".")
            }
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
            other => {
                return Err(SqlError::at(
                    self.loc(&self.parser.get_current_token().clone()),
                    format!("expected an option name, found {other}"),
                ))
            }
        };
        Ok(key.to_ascii_lowercase())
    }

    pub(super) fn parse_option_value(&mut self, key: &str) -> Result<OptionLiteral, SqlError> {
        let tok = self.parser.next_token();
        let loc = self.loc(&tok);
        Ok(match tok.token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => OptionLiteral::String(s),
            Token::Number(n, _) => OptionLiteral::Number(n),
            Token::Minus => match self.parser.next_token().token {
                Token::Number(n, _) => OptionLiteral::Number(format!("-{n}")),
                _ => return Err(SqlError::at(loc, format!("expected a number after '-' in option '{key}'"))),
            },
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::TRUE => OptionLiteral::Bool(true),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::FALSE => OptionLiteral::Bool(false),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::INTERVAL => {
                match self.parser.next_token().token {
                    Token::SingleQuotedString(s) => {
                        let unit = match &self.parser.peek_token_ref().token {
                            Token::Word(u) if u.quote_style.is_none() => Some(u.value.clone()),
                            _ => None,
                        };
                        if let Some(u) = unit {
                            self.parser.next_token();
                            OptionLiteral::String(format!("{s} {u}"))
                        } else {
                            OptionLiteral::String(s)
                        }
                    }
                    _ => return Err(SqlError::at(loc, format!("expected INTERVAL '…' in option '{key}'"))),
                }
            }
            Token::Word(w) => OptionLiteral::Ident(w.value),
            other => {
                return Err(SqlError::at(
                    loc,
                    format!(
                        "invalid value for option '{key}': expected a 'string', a number, an identifier, TRUE or FALSE, found {other}"
                    ),
                ))
            }
        })
    }
}
