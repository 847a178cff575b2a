//! `WITH (key = value, …)` option lists.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Location, SqlError};
use crate::interval::parse_duration_ms;

/// The literal written for an option value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionLiteral {
    /// `'text'` (single or double quoted).
    String(String),
    /// A number, kept as written (`10`, `0.5`).
    Number(String),
    /// A bare word (`kafka`, `csv`), as written.
    Ident(String),
    /// `TRUE` / `FALSE`.
    Bool(bool),
}

impl fmt::Display for OptionLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionLiteral::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            OptionLiteral::Number(n) => f.write_str(n),
            OptionLiteral::Ident(i) => f.write_str(i),
            OptionLiteral::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
        }
    }
}

/// One option value with where it was written (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionValue {
    /// The literal.
    pub value: OptionLiteral,
    /// Location of the value.
    pub location: Location,
    /// Location of the key.
    pub key_location: Location,
}

impl OptionValue {
    /// The value as text: string contents, the number or word as written, `true`/`false`.
    pub fn as_text(&self) -> String {
        match &self.value {
            OptionLiteral::String(s) | OptionLiteral::Number(s) | OptionLiteral::Ident(s) => {
                s.clone()
            }
            OptionLiteral::Bool(b) => b.to_string(),
        }
    }
}

/// Options of a `WITH (…)` clause. Keys are lower-cased; values keep their spelling.
///
/// ```
/// let stmts = driftwatch_sql::parse_statements(
///     "CREATE MONITOR m WITH (sink = 'kafka', Emit_Delay = '2s', parallel = 4) AS SELECT * FROM s",
/// ).unwrap();
/// let driftwatch_sql::Statement::CreateMonitor(m) = &stmts[0] else { panic!() };
/// assert_eq!(m.options.get_str("sink"), Some("kafka".to_string()));
/// assert_eq!(m.options.get_duration_ms("emit_delay").unwrap(), Some(2_000));
/// assert_eq!(m.options.get_usize("parallel").unwrap(), Some(4));
/// assert!(m.options.check_known(&["sink", "emit_delay", "parallelism"], "monitor").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options(pub BTreeMap<String, OptionValue>);

impl Options {
    /// An empty option list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The raw value of `key` (lower-case).
    pub fn get(&self, key: &str) -> Option<&OptionValue> {
        self.0.get(&key.to_ascii_lowercase())
    }

    /// True if `key` was given.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// True if no option was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of options.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over `(key, value)` in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &OptionValue)> {
        self.0.iter()
    }

    /// The value of `key` as text (any literal kind), if present.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get(key).map(OptionValue::as_text)
    }

    fn bad(&self, key: &str, v: &OptionValue, what: &str) -> SqlError {
        SqlError::at(
            v.location,
            format!("option '{key}' must be {what}, got {}", v.value),
        )
    }

    /// The value of `key` as a duration in milliseconds (`'10 seconds'`, `'10s'`, `'500 ms'`,
    /// `'1 minute'`, `'2h'`, `"INTERVAL '5 seconds'"`); error (at the value) if malformed.
    pub fn get_duration_ms(&self, key: &str) -> Result<Option<i64>, SqlError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match &v.value {
            OptionLiteral::String(s) | OptionLiteral::Ident(s) | OptionLiteral::Number(s) => {
                parse_duration_ms(s)
                    .map(Some)
                    .map_err(|m| SqlError::at(v.location, format!("option '{key}': {m}")))
            }
            OptionLiteral::Bool(_) => Err(self.bad(key, v, "a duration such as '10 seconds'")),
        }
    }

    /// The value of `key` as a boolean (`TRUE`/`FALSE`, or the strings `'true'`/`'false'`,
    /// `'on'`/`'off'`, `'yes'`/`'no'`, `1`/`0`).
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, SqlError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match &v.value {
            OptionLiteral::Bool(b) => Ok(Some(*b)),
            OptionLiteral::String(s) | OptionLiteral::Ident(s) | OptionLiteral::Number(s) => {
                match s.to_ascii_lowercase().as_str() {
                    "true" | "on" | "yes" | "1" => Ok(Some(true)),
                    "false" | "off" | "no" | "0" => Ok(Some(false)),
                    _ => Err(self.bad(key, v, "TRUE or FALSE")),
                }
            }
        }
    }

    /// The value of `key` as a non-negative integer.
    pub fn get_usize(&self, key: &str) -> Result<Option<usize>, SqlError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match &v.value {
            OptionLiteral::Number(s) | OptionLiteral::String(s) => s
                .trim()
                .replace('_', "")
                .parse::<usize>()
                .map(Some)
                .map_err(|_| self.bad(key, v, "a non-negative integer")),
            _ => Err(self.bad(key, v, "a non-negative integer")),
        }
    }

    /// Fails on the first key not in `known`, naming it, suggesting the closest valid key and
    /// listing all valid ones. `what` names the object for the message (e.g. "kafka source").
    pub fn check_known(&self, known: &[&str], what: &str) -> Result<(), SqlError> {
        for (key, v) in &self.0 {
            if known.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                continue;
            }
            let hint = did_you_mean(key, known)
                .map(|k| format!("did you mean '{k}'? "))
                .unwrap_or_default();
            let valid = if known.is_empty() {
                "it takes no options".to_string()
            } else {
                format!("valid options: {}", known.join(", "))
            };
            return Err(SqlError::at(
                v.key_location,
                format!("unknown option '{key}' for {what}; {hint}{valid}"),
            ));
        }
        Ok(())
    }

    /// Fails with a located error if `key` is missing: `"{what} requires option '{key}'"`.
    pub fn require_str(&self, key: &str, what: &str, at: Location) -> Result<String, SqlError> {
        self.get_str(key).ok_or_else(|| {
            SqlError::at(
                at,
                format!("{what} requires option '{key}' (WITH ({key} = …))"),
            )
        })
    }

    /// Inserts an option (key lower-cased); returns the previous value.
    pub fn insert(&mut self, key: &str, value: OptionValue) -> Option<OptionValue> {
        self.0.insert(key.to_ascii_lowercase(), value)
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len().max(w.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(v: OptionLiteral) -> OptionValue {
        OptionValue {
            value: v,
            location: Location::new(1, 10),
            key_location: Location::new(1, 2),
        }
    }

    #[test]
    fn helpers() {
        let mut o = Options::new();
        o.insert(
            "Idle_Timeout",
            opt(OptionLiteral::String("10 seconds".into())),
        );
        o.insert("flag", opt(OptionLiteral::Bool(true)));
        o.insert("n", opt(OptionLiteral::Number("12".into())));
        o.insert("bad_n", opt(OptionLiteral::Number("-1".into())));
        assert_eq!(o.get_duration_ms("idle_timeout").unwrap(), Some(10_000));
        assert_eq!(o.get_duration_ms("missing").unwrap(), None);
        assert_eq!(o.get_bool("flag").unwrap(), Some(true));
        assert_eq!(o.get_usize("n").unwrap(), Some(12));
        let e = o.get_usize("bad_n").unwrap_err();
        assert_eq!(e.location, Some(Location::new(1, 10)));
        assert!(o.get_bool("n").is_err());
        assert_eq!(o.get_str("n").as_deref(), Some("12"));
    }

    #[test]
    fn unknown_key_suggests() {
        let mut o = Options::new();
        o.insert("topik", opt(OptionLiteral::String("x".into())));
        let e = o
            .check_known(&["topic", "brokers"], "kafka source")
            .unwrap_err();
        assert_eq!(e.location, Some(Location::new(1, 2)));
        assert!(e.message.contains("unknown option 'topik'"), "{e}");
        assert!(e.message.contains("did you mean 'topic'?"), "{e}");
        assert!(e.message.contains("valid options: topic, brokers"), "{e}");
        assert_eq!(did_you_mean("zzzzzz", &["topic"]), None);
    }
}
