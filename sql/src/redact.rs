//! Secrets in statement text: [`redact_secrets`] replaces the values of secret options
//! (`sasl.password = '…'`, `ssl.key.pem`, `api_token`, …) with [`REDACTED`] wherever a
//! statement's text is shown — `SHOW SOURCES`, the `system.*` tables, logs and error
//! messages. The stored catalog keeps the real values (it is owner-only on disk).
//!
//! ```
//! use driftwatch_sql::redact_secrets;
//! let sql = "CREATE SOURCE s (x DOUBLE) WITH (connector = 'kafka', \"sasl.password\" = 'hunter2')";
//! let shown = redact_secrets(sql);
//! assert!(!shown.contains("hunter2"));
//! assert!(shown.contains("'kafka'") && shown.contains("\"sasl.password\" = '***'"));
//! ```

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// What a secret value is shown as.
pub const REDACTED: &str = "'***'";

/// Whether an option key names a secret: any part (split at `.`, `_`, `-`) is `password`,
/// `passwd`, `secret`, `token`, `credentials`, `pem` or `jaas`, or the last part is `key`
/// (`ssl.key.password`, `sasl.oauthbearer.client.secret`, `api_key`, but not `key_format`),
/// `url` or `headers` (a webhook URL carries its token in the path, as Slack's do, and
/// headers carry `Authorization`).
///
/// ```
/// use driftwatch_sql::is_secret_key;
/// assert!(is_secret_key("sasl.password") && is_secret_key("api_key") && is_secret_key("ssl.key.pem"));
/// assert!(is_secret_key("url") && is_secret_key("headers") && is_secret_key("webhook_url"));
/// assert!(!is_secret_key("key_column") && !is_secret_key("topic") && !is_secret_key("ssl.key.location"));
/// ```
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(['.', '_', '-']).collect();
    parts.iter().any(|p| {
        matches!(
            *p,
            "password" | "passwd" | "secret" | "token" | "credentials" | "pem" | "jaas"
        )
    }) || matches!(parts.last(), Some(&"key" | &"url" | &"headers"))
}

/// `sql` with the value of every secret option replaced by [`REDACTED`] (see the module
/// docs). Text that does not tokenize is shown as a placeholder, never as it was.
pub fn redact_secrets(sql: &str) -> String {
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return "<statement not shown: it does not tokenize>".into();
    };
    let mut out = String::with_capacity(sql.len());
    // Whether the last significant token was a secret key, and whether `=` followed it.
    let mut key_is_secret = false;
    let mut after_equals = false;
    for token in &tokens {
        let text = token.to_string();
        match token {
            Token::Whitespace(_) => {
                out.push_str(&text);
                continue;
            }
            Token::Eq => {
                after_equals = key_is_secret;
                key_is_secret = false;
                out.push_str(&text);
                continue;
            }
            _ => {}
        }
        if after_equals && is_literal(token) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&text);
        }
        after_equals = false;
        key_is_secret = match token {
            Token::Word(w) => is_secret_key(&w.value),
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => is_secret_key(s),
            _ => false,
        };
    }
    out
}

fn is_literal(token: &Token) -> bool {
    matches!(
        token,
        Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::Number(_, _)
            | Token::Word(_)
            | Token::EscapedStringLiteral(_)
            | Token::DollarQuotedString(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_hidden_in_every_spelling() {
        let sql = "CREATE SOURCE s (x DOUBLE)\nWITH (connector = 'kafka', topic = 'events',\n  'sasl.password' = 'p1', \"ssl.key.password\"='p2', sasl_jaas_config = 'p3',\n  api_token = p4, secret = 12345)";
        let shown = redact_secrets(sql);
        for secret in ["p1", "p2", "p3", "p4", "12345"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("'events'") && shown.contains("'kafka'"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), sql.lines().count(), "layout kept");
        // Over-redaction is harmless: a comparison with a secret-named column is hidden too.
        let q = "SELECT * FROM t WHERE token = 'x'";
        assert!(redact_secrets(q).contains("'***'"));
        assert_eq!(redact_secrets("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn webhook_urls_and_headers_are_hidden() {
        let sql = "CREATE MONITOR m WITH (sink = 'webhook', url = 'https://hooks.slack.com/services/T/B/XXXX', \
                   headers = 'Authorization: Bearer abc123', cooldown = '30 minutes') AS SELECT 1";
        let shown = redact_secrets(sql);
        assert!(
            !shown.contains("XXXX") && !shown.contains("abc123"),
            "{shown}"
        );
        assert!(
            shown.contains("url = '***'") && shown.contains("headers = '***'"),
            "{shown}"
        );
        assert!(
            shown.contains("'30 minutes'") && shown.contains("'webhook'"),
            "{shown}"
        );
    }
}
