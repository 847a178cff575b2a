//! What a Flight SQL client may run: read-only queries over the catalog.
//!
//! Every query a client sends is checked twice before it touches data:
//!
//! 1. [`check_read_only`] parses it with DataFusion's own parser and allows exactly one
//!    `SELECT` / `WITH` query, `EXPLAIN [ANALYZE]` of one, `SHOW …` or `DESCRIBE`. Everything
//!    else — `CREATE EXTERNAL TABLE`, `CREATE TABLE/VIEW`, `COPY`, `INSERT`, `UPDATE`,
//!    `DELETE`, `DROP TABLE`, `SET`, `RESET`, `PREPARE`, transactions — is refused for every
//!    role with a message naming the statement.
//! 2. The statement is planned with [`read_only_options`] (DataFusion's [`SQLOptions`] with
//!    DDL, DML and statements off), so a form the first check did not foresee is still
//!    refused by DataFusion's plan verifier.
//!
//! Files are out of reach as well: the sessions handed to clients do not have DataFusion's
//! URL tables (`SELECT * FROM '/etc/passwd'` is "table not found"), and Driftwatch's own DDL
//! is checked by the backend (allowed directories, see the binary's `serve::ddl_policy`).
//!
//! ```
//! use driftwatch_flight::sandbox::check_read_only;
//! assert!(check_read_only("SELECT * FROM iris_drift WHERE p < 0.01").is_ok());
//! assert!(check_read_only("EXPLAIN SELECT 1").is_ok());
//! let refused = check_read_only("COPY (SELECT 1) TO '/tmp/x.csv'").unwrap_err();
//! assert!(refused.contains("COPY"), "{refused}");
//! ```

use std::borrow::Cow;

use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::placeholders::number_placeholders;

/// The [`SQLOptions`] client queries are planned with: no DDL, no DML, no `SET`.
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Checks that `sql` is one read-only statement (see the module docs); the error says which
/// statement was refused and what is allowed.
pub fn check_read_only(sql: &str) -> Result<(), String> {
    parse_one(sql).and_then(|s| check_statement(&s))
}

/// [`check_read_only`], then numbers the query's `?` placeholders `$1, $2, …` (see
/// [`crate::placeholders`]) from the same parse: the text to plan, as DataFusion numbers
/// parameters.
pub fn read_only_query(sql: &str) -> Result<Cow<'_, str>, String> {
    let statement = parse_one(sql)?;
    check_statement(&statement)?;
    number_placeholders(sql, &statement).map_err(|e| e.to_string())
}

fn parse_one(sql: &str) -> Result<DFStatement, String> {
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| e.strip_backtrace())?;
    match statements.len() {
        0 => Err("empty query".into()),
        1 => Ok(statements.pop_front().expect("one statement")),
        n => Err(format!(
            "send one query per request ({n} statements were given)"
        )),
    }
}

fn refuse(what: &str) -> Result<(), String> {
    Err(format!(
        "{what} is not allowed over Flight SQL: clients may only run SELECT, EXPLAIN, SHOW and \
         DESCRIBE over the monitor, late, error, baseline and system tables (Driftwatch's \
         CREATE/DROP SOURCE|BASELINE|MONITOR need the admin role)"
    ))
}

fn check_statement(statement: &DFStatement) -> Result<(), String> {
    match statement {
        DFStatement::Statement(s) => check_sql_statement(s),
        DFStatement::Explain(e) => check_statement(&e.statement),
        DFStatement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE"),
        DFStatement::CopyTo(_) => refuse("COPY"),
        DFStatement::Reset(_) => refuse("RESET"),
    }
}

fn check_sql_statement(statement: &Statement) -> Result<(), String> {
    match statement {
        Statement::Query(_) => Ok(()),
        Statement::Explain { statement, .. } => check_sql_statement(statement),
        Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCreate { .. } => Ok(()),
        other => {
            let text = other.to_string();
            let head: Vec<&str> = text.split_whitespace().take(2).collect();
            let what = match head.as_slice() {
                [first, second]
                    if matches!(
                        first.to_ascii_uppercase().as_str(),
                        "CREATE" | "DROP" | "ALTER" | "TRUNCATE"
                    ) =>
                {
                    format!(
                        "{} {}",
                        first.to_ascii_uppercase(),
                        second.to_ascii_uppercase()
                    )
                }
                [first, ..] => first.to_ascii_uppercase(),
                [] => "this statement".into(),
            };
            refuse(&what)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_allowed() {
        for sql in [
            "SELECT 1",
            "WITH t AS (SELECT 1 AS a) SELECT a FROM t",
            "select * from \"iris_drift\" order by window_start desc limit 5",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM t",
            "DESCRIBE t",
            "SELECT * FROM system.sources;",
        ] {
            assert!(
                check_read_only(sql).is_ok(),
                "{sql}: {:?}",
                check_read_only(sql)
            );
        }
    }

    #[test]
    fn writes_files_and_settings_are_refused() {
        for (sql, named) in [
            (
                "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("COPY (SELECT 1) TO '/tmp/f.csv'", "COPY"),
            ("INSERT INTO iris_drift VALUES (1)", "INSERT"),
            ("DELETE FROM iris_drift", "DELETE"),
            ("UPDATE iris_drift SET n = 1", "UPDATE"),
            ("DROP TABLE iris_drift", "DROP TABLE"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("RESET datafusion.execution.batch_size", "RESET"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/f.csv'", "COPY"),
            ("EXPLAIN INSERT INTO t VALUES (1)", "INSERT"),
            ("PREPARE p AS SELECT 1", "PREPARE"),
            ("BEGIN", "BEGIN"),
        ] {
            let e = check_read_only(sql).unwrap_err();
            assert!(e.contains(named), "{sql}: {e}");
            assert!(e.contains("not allowed over Flight SQL"), "{sql}: {e}");
        }
        assert!(check_read_only("SELECT 1; SELECT 2")
            .unwrap_err()
            .contains("one query"));
    }
}
