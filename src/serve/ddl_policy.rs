//! Which files DDL sent over Flight SQL may read: [`DdlPolicy`].
//!
//! A monitor file run by `driftwatch run` is the operator's own and keeps full access. DDL
//! an admin sends over Flight SQL is checked before it runs: every file it names — a file
//! source's `path`, a baseline's `FROM 'path'`, a file or directory named as a table in a
//! baseline's or monitor's query, and connector options naming files (`ssl.ca.location`,
//! `*keytab*`, `*_file`, `*_path`) — must lie under one of the allowed directories
//! (`--allow-dir`; by default the data dir and the monitor file's directory). Paths are
//! resolved (`..`, symbolic links) before they are compared, so a link inside an allowed
//! directory that points outside is refused too.

use std::ops::ControlFlow;
use std::path::{Component, Path, PathBuf};

use driftwatch_sql::sqlparser::ast::{visit_relations, ObjectNamePart, Query};
use driftwatch_sql::{parse_statements, BaselineInput, Statement};

/// The directories Flight DDL may read files from.
#[derive(Debug, Clone)]
pub struct DdlPolicy {
    allowed: Vec<PathBuf>,
}

impl DdlPolicy {
    /// A policy allowing files under `dirs` (made absolute and resolved; a directory that
    /// does not exist is kept as given, made absolute, and allows nothing until it does).
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        let allowed = dirs.into_iter().map(|d| resolve(&d)).collect();
        Self { allowed }
    }

    /// The allowed directories, resolved.
    pub fn allowed(&self) -> &[PathBuf] {
        &self.allowed
    }

    /// Checks every file `sql` names; the error says which file and what is allowed.
    pub fn check(&self, sql: &str) -> Result<(), String> {
        let statements = parse_statements(sql).map_err(|e| e.to_string())?;
        for statement in &statements {
            match statement {
                Statement::CreateSource(s) => {
                    for (key, value) in s.options.iter() {
                        if crate::runtime::script::names_a_file(key) {
                            self.check_path(
                                &value.as_text(),
                                &format!("option '{key}' of source '{}'", s.name),
                            )?;
                        }
                    }
                }
                Statement::CreateBaseline(b) => match &b.input {
                    BaselineInput::Path(p) => {
                        self.check_path(p, &format!("baseline '{}'", b.name))?
                    }
                    BaselineInput::Query { query, .. } => {
                        self.check_query(query, &format!("baseline '{}'", b.name))?
                    }
                },
                Statement::CreateMonitor(m) => {
                    self.check_query(&m.query, &format!("monitor '{}'", m.name))?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Table names in a query that are files (DataFusion reads a file named as a table).
    fn check_query(&self, query: &Query, what: &str) -> Result<(), String> {
        let mut result = Ok(());
        let _ = visit_relations(query, |name| {
            let Some(ObjectNamePart::Identifier(last)) = name.0.last() else {
                return ControlFlow::<()>::Continue(());
            };
            let value = &last.value;
            let quoted_path = last.quote_style == Some('\'')
                || value.contains('/')
                || value.contains('\\')
                || value.contains("://");
            if quoted_path || Path::new(value).exists() {
                if let Err(e) = self.check_path(value, what) {
                    result = Err(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        result
    }

    fn check_path(&self, path: &str, what: &str) -> Result<(), String> {
        if path.contains("://") && !path.starts_with("file://") {
            return Err(format!(
                "{what}: '{path}' is a URL; DDL sent over Flight SQL may only read local files \
                 under the allowed directories"
            ));
        }
        let local = path.strip_prefix("file://").unwrap_or(path);
        let resolved = resolve(Path::new(local));
        if self.allowed.iter().any(|dir| resolved.starts_with(dir)) {
            return Ok(());
        }
        Err(format!(
            "{what}: '{path}' is outside the directories DDL sent over Flight SQL may read ({}); \
             start the server with --allow-dir to allow another directory",
            self.allowed
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// `path` made absolute and resolved: symbolic links and `..` of the longest existing
/// prefix are resolved by the file system, the rest lexically (so a file that does not
/// exist yet is judged by where it would be created).
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    // Glob characters are not part of a directory name: judge the directory before them.
    let text = absolute.to_string_lossy();
    let absolute = match text.find(['*', '?', '[']) {
        Some(i) => PathBuf::from(&text[..i]),
        None => absolute.clone(),
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out = match part {
                    Component::ParentDir => out.parent().map(Path::to_path_buf).unwrap_or(out),
                    Component::Normal(p) => out.join(p),
                    _ => out,
                };
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(dir: &Path) -> DdlPolicy {
        DdlPolicy::new([dir.to_path_buf()])
    }

    #[test]
    fn files_under_allowed_dirs_pass_and_others_are_refused() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let inside = allowed.path().join("train.csv");
        std::fs::write(&inside, "x\n1\n").unwrap();
        let secret = outside.path().join("secret.csv");
        std::fs::write(&secret, "x\n1\n").unwrap();
        let p = policy(allowed.path());
        assert!(p
            .check(&format!("CREATE BASELINE b FROM '{}'", inside.display()))
            .is_ok());
        let e = p
            .check(&format!("CREATE BASELINE b FROM '{}'", secret.display()))
            .unwrap_err();
        assert!(e.contains("outside") && e.contains("--allow-dir"), "{e}");
        // `..` out of the allowed dir.
        let sneaky = format!(
            "{}/../{}/secret.csv",
            allowed.path().display(),
            outside.path().file_name().unwrap().to_string_lossy()
        );
        assert!(p
            .check(&format!("CREATE BASELINE b FROM '{sneaky}'"))
            .is_err());
        // A query naming a file as a table, in any schema.
        assert!(p
            .check(&format!(
                "CREATE BASELINE b AS SELECT * FROM '{}'",
                secret.display()
            ))
            .is_err());
        assert!(p
            .check(&format!(
                "CREATE BASELINE b AS SELECT * FROM baselines.\"{}\"",
                secret.display()
            ))
            .is_err());
        // File sources and connector options naming files.
        assert!(p
            .check(&format!(
                "CREATE SOURCE s (x DOUBLE) WITH (connector = 'file', path = '{}')",
                secret.display()
            ))
            .is_err());
        assert!(p
            .check(&format!(
                "CREATE SOURCE s (x DOUBLE) WITH (connector = 'kafka', topic = 't', \"ssl.ca.location\" = '{}')",
                secret.display()
            ))
            .is_err());
        assert!(p
            .check("CREATE BASELINE b FROM 's3://bucket/train.parquet'")
            .unwrap_err()
            .contains("URL"));
        // Catalog tables are not files.
        assert!(p
            .check("CREATE BASELINE b AS SELECT * FROM iris_stats")
            .is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_an_allowed_dir_is_refused() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.csv");
        std::fs::write(&secret, "x\n1\n").unwrap();
        let link = allowed.path().join("link.csv");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let e = policy(allowed.path())
            .check(&format!("CREATE BASELINE b FROM '{}'", link.display()))
            .unwrap_err();
        assert!(e.contains("outside"), "{e}");
    }
}
