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

    /// The value of `key` as a size in bytes (`'256MB'`, `'1GiB'`, `'512k'`, `1048576`; see
    /// [`parse_size`]); error (at the value, naming the option) if malformed.
    pub fn get_size(&self, key: &str) -> Result<Option<usize>, SqlError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match &v.value {
            OptionLiteral::String(s) | OptionLiteral::Ident(s) | OptionLiteral::Number(s) => {
                parse_size(s)
                    .map(Some)
                    .map_err(|m| SqlError::at(v.location, format!("option '{key}': {m}")))
            }
            OptionLiteral::Bool(_) => Err(self.bad(key, v, "a size such as '256MB'")),
        }
    }

    /// [`Options::get_size`] within `range` (bytes); the error names the option, the
    /// allowed range and where the value is written.
    pub fn get_size_in(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<Option<usize>, SqlError> {
        let Some(size) = self.get_size(key)? else {
            return Ok(None);
        };
        self.check_range(key, size, &range, format_size)?;
        Ok(Some(size))
    }

    /// [`Options::get_usize`] within `range`; the error names the option, the allowed
    /// range and where the value is written.
    pub fn get_usize_in(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<Option<usize>, SqlError> {
        let Some(n) = self.get_usize(key)? else {
            return Ok(None);
        };
        self.check_range(key, n, &range, |n| n.to_string())?;
        Ok(Some(n))
    }

    fn check_range(
        &self,
        key: &str,
        n: usize,
        range: &std::ops::RangeInclusive<usize>,
        show: fn(usize) -> String,
    ) -> Result<(), SqlError> {
        if range.contains(&n) {
            return Ok(());
        }
        let at = self.get(key).map(|v| v.location);
        Err(SqlError::at(
            at,
            format!(
                "option '{key}' must be between {} and {}, got {}",
                show(*range.start()),
                show(*range.end()),
                show(n)
            ),
        ))
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

/// Parses a size in bytes: a number (fractions allowed) and an optional unit, any case, a
/// space allowed between: `B`; `k`/`KiB`, `m`/`MiB`, `g`/`GiB`, `t`/`TiB` (powers of 1024);
/// `KB`, `MB`, `GB`, `TB` (powers of 1000). Zero is rejected. Used by `WITH (max_state = …)`
/// and by the command-line flags that take sizes.
///
/// ```
/// use driftwatch_sql::parse_size;
/// assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
/// assert_eq!(parse_size("256MB").unwrap(), 256_000_000);
/// assert_eq!(parse_size("512k").unwrap(), 512 << 10);
/// assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
/// assert!(parse_size("0").is_err() && parse_size("12 parsecs").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .replace('_', "")
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. '256MB', '1GiB', '512k', '65536')"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}' (B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)"
            ))
        }
    };
    let bytes = value * factor;
    if bytes < 1.0 {
        return Err(format!("size '{s}' must be at least 1 byte"));
    }
    if bytes > usize::MAX as f64 {
        return Err(format!("size '{s}' is out of range"));
    }
    Ok(bytes as usize)
}

/// A size as a short text: whole GiB, MiB or KiB when exact, bytes otherwise.
pub fn format_size(bytes: usize) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes} B")
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
    fn sizes() {
        let mut o = Options::new();
        o.insert("a", opt(OptionLiteral::String("256MB".into())));
        o.insert("b", opt(OptionLiteral::String("1 GiB".into())));
        o.insert("c", opt(OptionLiteral::Number("4096".into())));
        o.insert("z", opt(OptionLiteral::String("0".into())));
        o.insert("bad", opt(OptionLiteral::String("12 parsecs".into())));
        o.insert("flag", opt(OptionLiteral::Bool(true)));
        assert_eq!(o.get_size("a").unwrap(), Some(256_000_000));
        assert_eq!(o.get_size("b").unwrap(), Some(1 << 30));
        assert_eq!(o.get_size("c").unwrap(), Some(4096));
        assert_eq!(o.get_size("missing").unwrap(), None);
        for key in ["z", "bad", "flag"] {
            let e = o.get_size(key).unwrap_err();
            assert_eq!(e.location, Some(Location::new(1, 10)), "{e}");
            assert!(
                e.to_string().starts_with("line 1, column 10: option"),
                "{e}"
            );
        }
        let e = o.get_size_in("c", 1 << 16..=1 << 40).unwrap_err();
        assert!(
            e.message
                .contains("option 'c' must be between 64KiB and 1TiB, got 4KiB"),
            "{e}"
        );
        assert_eq!(o.get_usize_in("c", 1..=10_000).unwrap(), Some(4096));
        let e = o.get_usize_in("c", 1..=100).unwrap_err();
        assert!(e.message.contains("between 1 and 100, got 4096"), "{e}");
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("100_000").unwrap(), 100_000);
        assert!(parse_size("").is_err());
        assert!(parse_size("0.1").is_err());
        assert_eq!(format_size(256 << 20), "256MiB");
        assert_eq!(format_size(1000), "1000 B");
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
