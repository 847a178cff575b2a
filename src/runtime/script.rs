//! A monitor file as `driftwatch run` and `driftwatch check` load it ([`MonitorScript`]):
//! its statements with the position of each, relative file paths resolved against the
//! file's own directory, and errors named `file.sql:LINE:COLUMN: …`.
//!
//! Which paths are resolved: a file source's `path` (and every option naming a file: keys
//! `path`, `*.location`, `*_path`, `*_file`, `*.file`, `*keytab*`), a baseline's
//! `FROM 'path'`, and files named as tables in a baseline's or monitor's query
//! (`FROM 'current.parquet'`). Absolute paths and URLs stay as written. DDL sent over Flight
//! SQL has no file: its relative paths resolve against the server's working directory, the
//! same directory its `--allow-dir` check resolves them against.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use driftwatch_sql::sqlparser::ast::{visit_relations_mut, Ident, ObjectNamePart, Query};
use driftwatch_sql::sqlparser::dialect::GenericDialect;
use driftwatch_sql::sqlparser::tokenizer::{Token, Tokenizer};
use driftwatch_sql::{parse_statements, BaselineInput, Location, OptionLiteral, Statement};

use super::control::Outcome;
use super::driver::Driftwatch;
use super::RuntimeError;

/// The statements of a monitor file, ready to execute.
///
/// ```
/// use driftwatch::runtime::script::MonitorScript;
/// use driftwatch_sql::{BaselineInput, Statement};
/// let script = MonitorScript::parse(
///     "CREATE BASELINE b FROM 'train.csv';\nCREATE BASELINE c FROM '/data/c.csv';",
///     Some(std::path::Path::new("/srv/monitors")),
///     Some("monitors.sql".into()),
/// )
/// .unwrap();
/// let paths: Vec<_> = script
///     .statements()
///     .iter()
///     .map(|(s, _)| match s {
///         Statement::CreateBaseline(b) => b.input.clone(),
///         _ => unreachable!(),
///     })
///     .collect();
/// assert_eq!(paths[0], BaselineInput::Path("/srv/monitors/train.csv".into()));
/// assert_eq!(paths[1], BaselineInput::Path("/data/c.csv".into()));
/// assert_eq!(script.statements()[1].1.unwrap().line, 2);
/// ```
#[derive(Debug, Clone)]
pub struct MonitorScript {
    /// How errors name the script (`examples/iris/monitors.sql`), if it is a file.
    origin: Option<String>,
    /// Each statement with the position of its first token.
    statements: Vec<(Statement, Option<Location>)>,
}

impl MonitorScript {
    /// Reads and parses the monitor file at `path`; relative paths in it resolve against
    /// the file's directory.
    pub fn read(path: &Path) -> Result<Self, RuntimeError> {
        let sql = std::fs::read_to_string(path).map_err(|e| {
            RuntimeError::Invalid(format!(
                "cannot read monitor file {}: {e}",
                absolute(path).display()
            ))
        })?;
        let dir = absolute(path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Self::parse(&sql, Some(&dir), Some(path.display().to_string()))
    }

    /// Parses `sql`; relative paths resolve against `base` when given (else they stay
    /// relative: the working directory). `origin` names the script in errors.
    pub fn parse(
        sql: &str,
        base: Option<&Path>,
        origin: Option<String>,
    ) -> Result<Self, RuntimeError> {
        let located = |e: driftwatch_sql::SqlError| {
            let where_ = prefix(origin.as_deref(), e.location);
            RuntimeError::Invalid(format!("{where_}{}", e.message))
        };
        let mut statements = parse_statements(sql).map_err(located)?;
        if let Some(base) = base {
            for s in &mut statements {
                resolve_paths(s, base);
            }
        }
        let starts = statement_starts(sql);
        let statements = if starts.len() == statements.len() {
            statements
                .into_iter()
                .zip(starts.into_iter().map(Some))
                .collect()
        } else {
            statements
                .into_iter()
                .map(|s| {
                    let at = create_location(&s);
                    (s, at)
                })
                .collect()
        };
        Ok(Self { origin, statements })
    }

    /// The statements, each with where it starts.
    pub fn statements(&self) -> &[(Statement, Option<Location>)] {
        &self.statements
    }

    /// `err` of the statement at `at`, named `file:LINE:COLUMN: …`: the error's own
    /// position when it has one (a column inside the statement), else the statement's.
    pub fn locate(&self, at: Option<Location>, err: RuntimeError) -> RuntimeError {
        let (inner, message) = match err {
            RuntimeError::Sql(e) => (e.location, e.message),
            other => split_location(&other.to_string()),
        };
        RuntimeError::Invalid(format!(
            "{}{message}",
            prefix(self.origin.as_deref(), inner.or(at))
        ))
    }
}

impl Driftwatch {
    /// Executes every statement of `script` in order; an error names the file, line and
    /// column of the statement (see [`MonitorScript::locate`]).
    pub async fn execute_monitor_script(
        &mut self,
        script: &MonitorScript,
    ) -> Result<Vec<Outcome>, RuntimeError> {
        let mut out = Vec::new();
        for (stmt, at) in script.statements() {
            out.push(
                self.execute(stmt.clone())
                    .await
                    .map_err(|e| script.locate(*at, e))?,
            );
        }
        Ok(out)
    }

    /// Abandons a system that was never started (its script failed to load): stops its
    /// monitors and waits for them, so nothing writes into the data dir afterwards.
    pub async fn discard(mut self) {
        self.inputs.cancel();
        self.engine.cancel();
        self.stop_requested.cancel();
        for (_, m) in std::mem::take(&mut self.monitors) {
            m.stop.cancel();
            let _ = m.task.await;
        }
        for s in self.sources.values_mut() {
            if let Some(task) = s.task.take() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

/// `path` made absolute against the working directory (not resolving links).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `file:LINE:COLUMN: `, `file: `, `line L, column C: ` or nothing.
fn prefix(origin: Option<&str>, at: Option<Location>) -> String {
    match (origin, at) {
        (Some(f), Some(l)) => format!("{f}:{}:{}: ", l.line, l.column),
        (Some(f), None) => format!("{f}: "),
        (None, Some(l)) => format!("{l}: "),
        (None, None) => String::new(),
    }
}

/// Splits a leading `line L, column C: ` off a message.
fn split_location(message: &str) -> (Option<Location>, String) {
    let parse = || -> Option<(Location, &str)> {
        let rest = message.strip_prefix("line ")?;
        let (line, rest) = rest.split_once(", column ")?;
        let (column, rest) = rest.split_once(": ")?;
        Some((
            Location::new(line.parse().ok()?, column.parse().ok()?),
            rest,
        ))
    };
    match parse() {
        Some((l, rest)) => (Some(l), rest.to_string()),
        None => (None, message.to_string()),
    }
}

/// Where `CREATE` of a CREATE statement is.
fn create_location(s: &Statement) -> Option<Location> {
    match s {
        Statement::CreateSource(d) => Some(d.location),
        Statement::CreateBaseline(d) => Some(d.location),
        Statement::CreateMonitor(d) => Some(d.location),
        _ => None,
    }
}

/// The position of the first token of every statement (statements are separated by `;`,
/// as [`parse_statements`] splits them; empty ones are skipped).
fn statement_starts(sql: &str) -> Vec<Location> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        return Vec::new();
    };
    let mut starts = Vec::new();
    let mut inside = false;
    for t in tokens {
        match t.token {
            Token::SemiColon => inside = false,
            Token::Whitespace(_) | Token::EOF => {}
            _ if !inside => {
                inside = true;
                if let Some(l) = Location::from_sqlparser(t.span.start) {
                    starts.push(l);
                }
            }
            _ => {}
        }
    }
    starts
}

/// Whether an option's value names a file, by its key: what is resolved against the
/// monitor file's directory here and checked against `--allow-dir` for Flight DDL.
pub fn names_a_file(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "path"
        || k.ends_with(".location")
        || k.ends_with("_path")
        || k.ends_with("_file")
        || k.ends_with(".file")
        || k.contains("keytab")
}

/// `path` against `base` when it is a relative local path (URLs stay).
fn resolved(path: &str, base: &Path) -> Option<String> {
    if path.is_empty() || path.contains("://") || Path::new(path).is_absolute() {
        return None;
    }
    Some(base.join(path).display().to_string())
}

/// Resolves the relative paths `stmt` names against `base` (see the module docs).
fn resolve_paths(stmt: &mut Statement, base: &Path) {
    match stmt {
        Statement::CreateSource(s) => {
            for (key, value) in s.options.0.iter_mut() {
                if let OptionLiteral::String(p) = &mut value.value {
                    if names_a_file(key) {
                        if let Some(r) = resolved(p, base) {
                            *p = r;
                        }
                    }
                }
            }
        }
        Statement::CreateBaseline(b) => match &mut b.input {
            BaselineInput::Path(p) => {
                if let Some(r) = resolved(p, base) {
                    *p = r;
                }
            }
            BaselineInput::Query { query, sql } => {
                if resolve_query_paths(query, base) {
                    *sql = query.to_string();
                }
            }
        },
        Statement::CreateMonitor(m) => {
            let changed = resolve_query_paths(&mut m.query, base);
            if changed {
                m.query_sql = m.query.to_string();
            }
        }
        _ => {}
    }
}

/// Files named as tables (`FROM 'x.csv'`) in `query`, resolved; true if any changed.
fn resolve_query_paths(query: &mut Query, base: &Path) -> bool {
    let mut changed = false;
    let _ = visit_relations_mut(query, |name| {
        if let [ObjectNamePart::Identifier(Ident {
            value,
            quote_style: Some('\''),
            ..
        })] = name.0.as_mut_slice()
        {
            if let Some(r) = resolved(value, base) {
                *value = r;
                changed = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_located_and_errors_named_by_file_line_column() {
        let sql = "-- header\nSHOW SOURCES;\n\n  DROP SOURCE x;;\nCREATE BASELINE b FROM 'a;b.csv'";
        let s = MonitorScript::parse(sql, None, Some("m.sql".into())).unwrap();
        let at: Vec<_> = s.statements().iter().map(|(_, l)| l.unwrap()).collect();
        assert_eq!(
            at,
            vec![
                Location::new(2, 1),
                Location::new(4, 3),
                Location::new(5, 1)
            ]
        );
        let e = s.locate(
            Some(at[1]),
            RuntimeError::Invalid("unknown source 'x'".into()),
        );
        assert_eq!(e.to_string(), "m.sql:4:3: unknown source 'x'");
        // An error's own position wins over the statement's.
        let e = s.locate(
            Some(at[2]),
            RuntimeError::Invalid("line 5, column 20: bad".into()),
        );
        assert_eq!(e.to_string(), "m.sql:5:20: bad");
        let e = MonitorScript::parse("CREATE SORUCE s (x INT)", None, Some("m.sql".into()))
            .unwrap_err();
        assert!(
            e.to_string().starts_with("m.sql:1:8: unknown object type"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_base_and_others_stay() {
        let base = Path::new("/srv/mon");
        let sql = "CREATE SOURCE s (x INT) WITH (connector = 'file', path = 'in/x.csv', topic = 'a/b');
                   CREATE SOURCE k (x INT) WITH (connector = 'kafka', properties.ssl.ca.location = 'ca.pem');
                   CREATE BASELINE q AS SELECT * FROM 'ref.parquet' JOIN t ON true;
                   CREATE MONITOR m AS SELECT * FROM s JOIN 's3://b/x.csv' ON true JOIN '/abs.csv' ON true";
        let s = MonitorScript::parse(sql, Some(base), None).unwrap();
        let st: Vec<_> = s.statements().iter().map(|(s, _)| s.clone()).collect();
        let Statement::CreateSource(src) = &st[0] else {
            panic!()
        };
        assert_eq!(src.options.get_str("path").unwrap(), "/srv/mon/in/x.csv");
        assert_eq!(src.options.get_str("topic").unwrap(), "a/b");
        let Statement::CreateSource(k) = &st[1] else {
            panic!()
        };
        assert_eq!(
            k.options.get_str("properties.ssl.ca.location").unwrap(),
            "/srv/mon/ca.pem"
        );
        let Statement::CreateBaseline(b) = &st[2] else {
            panic!()
        };
        let BaselineInput::Query { sql, .. } = &b.input else {
            panic!()
        };
        assert!(
            sql.contains("'/srv/mon/ref.parquet'") && sql.contains(" t "),
            "{sql}"
        );
        let Statement::CreateMonitor(m) = &st[3] else {
            panic!()
        };
        assert!(
            m.query_sql.contains("'s3://b/x.csv'") && m.query_sql.contains("'/abs.csv'"),
            "{}",
            m.query_sql
        );
    }
}
