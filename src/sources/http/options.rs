//! The `WITH (…)` options of a `connector = 'http'` source, checked when the source is
//! created (`driftwatch check` too): an unknown option or a bad value fails with its line
//! and column when the options come from SQL.
//!
//! | option | values | default |
//! |---|---|---|
//! | `log_type` | `'request'`, `'response'`, `'both'` | `'both'` |
//! | `wal_sync` | `'always'` (fsync before every answer), `'interval'` | `'always'` |
//! | `wal_sync_interval` | a duration (`'100 ms'`) | 100 ms |
//! | `strict` | `'true'` (refuse fields that match no column), `'false'` | `'false'` |

use driftwatch_sql::{did_you_mean, Location, Options, SqlError};

use super::ingest_log::SyncPolicy;
use crate::sources::connector::{SourceOptions, GENERIC_OPTIONS};
use crate::sources::decode::LogType;

/// Options the HTTP connector understands (besides the generic source options).
pub const HTTP_OPTIONS: &[&str] = &[
    "log_type",
    "format",
    "wal_sync",
    "wal_sync_interval",
    "strict",
];

/// Default `wal_sync_interval` of `wal_sync = 'interval'`.
pub const DEFAULT_WAL_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The checked options of an HTTP source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSourceOptions {
    /// Which inference-log messages are kept.
    pub log_type: LogType,
    /// When the write-ahead log is forced to disk.
    pub sync: SyncPolicy,
    /// Refuse (400) bodies with fields that match no column, instead of counting them.
    pub strict: bool,
}

/// A bad option: its key and what is wrong.
type Bad = (String, String);

impl HttpSourceOptions {
    /// Checks options written in SQL; errors carry the line and column of the key or value.
    pub fn from_sql(options: &Options) -> Result<Self, SqlError> {
        let known: Vec<&str> = HTTP_OPTIONS
            .iter()
            .chain(GENERIC_OPTIONS)
            .copied()
            .collect();
        options.check_known(&known, "connector 'http'")?;
        Self::parse(&|k| options.get_str(k)).map_err(|(key, message)| {
            let at: Option<Location> = options.get(&key).map(|v| v.location);
            SqlError::at(at, message)
        })
    }

    /// Checks options given as plain key/values (no locations).
    pub fn from_map(options: &SourceOptions) -> Result<Self, String> {
        for key in options.keys() {
            if !HTTP_OPTIONS.contains(&key.as_str()) && !GENERIC_OPTIONS.contains(&key.as_str()) {
                let hint = did_you_mean(key, HTTP_OPTIONS)
                    .map(|k| format!("did you mean '{k}'? "))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown option '{key}' for connector 'http'; {hint}valid: {}",
                    HTTP_OPTIONS.join(", ")
                ));
            }
        }
        Self::parse(&|k| options.get(k).cloned()).map_err(|(_, message)| message)
    }

    fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, Bad> {
        let bad = |key: &str, message: String| (key.to_string(), message);
        let log_type = match get("log_type") {
            Some(v) => LogType::parse(&v).ok_or_else(|| {
                bad(
                    "log_type",
                    format!("log_type must be 'request', 'response' or 'both', got '{v}'"),
                )
            })?,
            None => LogType::Both,
        };
        let interval = match get("wal_sync_interval") {
            Some(v) => humantime::parse_duration(&v).map_err(|e| {
                bad(
                    "wal_sync_interval",
                    format!("wal_sync_interval = '{v}': {e} (e.g. '100 ms')"),
                )
            })?,
            None => DEFAULT_WAL_SYNC_INTERVAL,
        };
        let sync = match get("wal_sync").map(|v| v.to_ascii_lowercase()) {
            None => SyncPolicy::Always,
            Some(v) if v == "always" => SyncPolicy::Always,
            Some(v) if v == "interval" => SyncPolicy::Interval(interval),
            Some(v) => {
                return Err(bad(
                    "wal_sync",
                    format!(
                        "wal_sync = '{v}' is not 'always' (fsync before every answer) or \
                         'interval' (fsync every wal_sync_interval)"
                    ),
                ))
            }
        };
        let strict = match get("strict").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(bad(
                    "strict",
                    format!(
                        "strict = '{v}' is not 'true' (refuse bodies with fields that match no \
                         column, 400) or 'false' (ignore and count them, the default)"
                    ),
                ))
            }
        };
        Ok(Self {
            log_type,
            sync,
            strict,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> SourceOptions {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_refuses() {
        let o = HttpSourceOptions::from_map(&map(&[("strict", "TRUE"), ("wal_sync", "interval")]))
            .unwrap();
        assert!(o.strict);
        assert_eq!(o.sync, SyncPolicy::Interval(DEFAULT_WAL_SYNC_INTERVAL));
        assert!(!HttpSourceOptions::from_map(&map(&[])).unwrap().strict);
        let e = HttpSourceOptions::from_map(&map(&[("strict", "yes")])).unwrap_err();
        assert!(e.contains("strict = 'yes'"), "{e}");
        let e = HttpSourceOptions::from_map(&map(&[("stirct", "true")])).unwrap_err();
        assert!(e.contains("did you mean 'strict'"), "{e}");
    }
}
