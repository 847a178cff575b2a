//! Persistence of DDL executed while the system runs: `<data dir>/catalog.sql`.
//!
//! The file is a normalised script: per object at most one entry, either its latest
//! `CREATE` statement or a `DROP` (a tombstone for an object the monitor file defines).
//! `driftwatch run FILE.sql` loads it together with the file ([`load_with_catalog`]): an
//! object in the catalog overrides the file's definition (it was changed later), a
//! tombstone removes it. Order: catalog sources and baselines, then the file, then catalog
//! monitors, so each may read what the other defines.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use driftwatch_sql::{parse_statements, ObjectKind, Statement};

use crate::runtime::script::MonitorScript;
use crate::runtime::{Driftwatch, Outcome, RuntimeError};

/// File name of the catalog in the data dir.
pub const CATALOG_FILE: &str = "catalog.sql";

/// `(kind, name)` of a CREATE or DROP statement.
fn key(stmt: &Statement) -> Option<(ObjectKind, String)> {
    match stmt {
        Statement::CreateSource(d) => Some((ObjectKind::Source, d.name.clone())),
        Statement::CreateBaseline(d) => Some((ObjectKind::Baseline, d.name.clone())),
        Statement::CreateMonitor(d) => Some((ObjectKind::Monitor, d.name.clone())),
        Statement::Drop { kind, name, .. } => Some((*kind, name.clone())),
        _ => None,
    }
}

/// Text of a CREATE or DROP statement.
fn text(stmt: &Statement) -> Option<String> {
    match stmt {
        Statement::CreateSource(d) => Some(d.sql.clone()),
        Statement::CreateBaseline(d) => Some(d.sql.clone()),
        Statement::CreateMonitor(d) => Some(d.sql.clone()),
        Statement::Drop { kind, name, .. } => {
            Some(format!("DROP {} IF EXISTS \"{name}\"", kind.keyword()))
        }
        _ => None,
    }
}

/// The catalog file of a data dir.
#[derive(Debug)]
pub struct CatalogFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl CatalogFile {
    /// The catalog of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(CATALOG_FILE),
            lock: Mutex::new(()),
        }
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored statements (none when the file does not exist).
    pub fn load(&self) -> Result<Vec<Statement>, RuntimeError> {
        driftwatch_flight::auth::warn_if_shared(&self.path);
        match std::fs::read_to_string(&self.path) {
            Ok(sql) if !sql.trim().is_empty() => Ok(parse_statements(&sql)?),
            Ok(_) => Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(RuntimeError::Invalid(format!(
                "reading {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Records executed DDL: each CREATE or DROP replaces what the catalog held for its object.
    pub fn record(&self, sql: &str) -> Result<(), RuntimeError> {
        let _guard = self.lock.lock().expect("catalog lock");
        let mut entries = self.load()?;
        for stmt in parse_statements(sql)? {
            let Some(k) = key(&stmt) else { continue };
            entries.retain(|e| key(e).as_ref() != Some(&k));
            entries.push(stmt);
        }
        let mut out = String::from(
            "-- Driftwatch catalog: DDL executed over Flight SQL, replayed by `driftwatch run`.\n\
             -- Written by the server; edit only while it is stopped.\n\n",
        );
        for e in &entries {
            if let Some(t) = text(e) {
                out.push_str(t.trim().trim_end_matches(';'));
                out.push_str(";\n\n");
            }
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // Owner-only: the catalog holds connector secrets (SASL passwords, keys).
        crate::durable::write_atomic_private(&self.path, out.as_bytes())
            .map_err(|e| RuntimeError::Invalid(format!("writing {}: {e}", self.path.display())))
    }
}

/// Executes the monitor file `script` together with the data dir's catalog (see the module
/// docs). Catalog statements that fail are logged and skipped: the file's errors are not
/// (they name the file, line and column, see [`MonitorScript::locate`]).
pub async fn load_with_catalog(
    system: &mut Driftwatch,
    script: &MonitorScript,
) -> Result<Vec<Outcome>, RuntimeError> {
    let catalog = CatalogFile::new(system.store().root()).load()?;
    let overridden: Vec<(ObjectKind, String)> = catalog.iter().filter_map(key).collect();
    if !catalog.is_empty() {
        tracing::info!(statements = catalog.len(), "replaying {CATALOG_FILE}");
    }
    let mut outcomes = Vec::new();
    let (monitors, others): (Vec<Statement>, Vec<Statement>) = catalog
        .into_iter()
        .filter(|s| !matches!(s, Statement::Drop { .. }))
        .partition(|s| matches!(s, Statement::CreateMonitor(_)));
    replay(system, others, &mut outcomes).await;
    for (stmt, at) in script.statements() {
        if key(stmt).is_some_and(|k| overridden.contains(&k)) {
            tracing::info!(statement = ?key(stmt), "defined by {CATALOG_FILE}; file statement skipped");
            continue;
        }
        let outcome = system.execute(stmt.clone()).await;
        outcomes.push(outcome.map_err(|e| script.locate(*at, e))?);
    }
    replay(system, monitors, &mut outcomes).await;
    Ok(outcomes)
}

async fn replay(system: &mut Driftwatch, stmts: Vec<Statement>, outcomes: &mut Vec<Outcome>) {
    for stmt in stmts {
        let what = key(&stmt);
        match system.execute(stmt).await {
            Ok(o) => outcomes.push(o),
            Err(e) => tracing::warn!(statement = ?what, error = %e, "catalog statement skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keeps_the_latest_statement_per_object() {
        let dir = tempfile::tempdir().unwrap();
        let c = CatalogFile::new(dir.path());
        c.record("CREATE BASELINE b FROM 'x.csv'").unwrap();
        c.record("CREATE BASELINE c FROM 'y.csv'").unwrap();
        c.record("CREATE OR REPLACE BASELINE b FROM 'z.csv'")
            .unwrap();
        c.record("DROP BASELINE c").unwrap();
        let stmts = c.load().unwrap();
        assert_eq!(stmts.len(), 2);
        assert!(matches!(&stmts[0], Statement::CreateBaseline(d) if d.sql.contains("z.csv")));
        assert!(matches!(&stmts[1], Statement::Drop { name, .. } if name == "c"));
    }
}
