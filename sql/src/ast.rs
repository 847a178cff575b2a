//! Statement types of the Driftwatch dialect.

use std::fmt;

use arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast as sp;

use crate::error::Location;
use crate::options::Options;

/// One statement of a Driftwatch script.
///
/// ```
/// use driftwatch_sql::{parse_statements, Statement, ObjectKind};
/// let stmts = parse_statements("SHOW MONITORS; DROP SOURCE IF EXISTS iris; SELECT 1").unwrap();
/// assert!(matches!(stmts[0], Statement::Show(ObjectKind::Monitor)));
/// assert!(matches!(&stmts[1], Statement::Drop { kind: ObjectKind::Source, if_exists: true, .. }));
/// assert!(matches!(stmts[2], Statement::Other(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE SOURCE`.
    CreateSource(CreateSource),
    /// `CREATE BASELINE`.
    CreateBaseline(CreateBaseline),
    /// `CREATE MONITOR`.
    CreateMonitor(CreateMonitor),
    /// `DROP SOURCE | BASELINE | MONITOR [IF EXISTS] name`.
    Drop {
        /// What is dropped.
        kind: ObjectKind,
        /// Normalised name.
        name: String,
        /// `IF EXISTS` given.
        if_exists: bool,
    },
    /// `SHOW SOURCES | BASELINES | MONITORS`.
    Show(ObjectKind),
    /// `SHOW CREATE SOURCE | BASELINE | MONITOR name`: the object's definition.
    ShowCreate {
        /// What is shown.
        kind: ObjectKind,
        /// Normalised name.
        name: String,
    },
    /// `EXPLAIN MONITOR name` or `EXPLAIN CREATE [OR REPLACE] MONITOR … AS …`: the streaming
    /// plan the monitor compiles to, without running it.
    Explain(ExplainTarget),
    /// Any other statement DataFusion's parser accepts (plain SELECT for ad-hoc queries etc.)
    Other(Box<sp::Statement>),
}

/// What `EXPLAIN` plans.
///
/// ```
/// use driftwatch_sql::{parse_statements, ExplainTarget, ObjectKind, Statement};
/// let stmts = parse_statements(
///     "EXPLAIN MONITOR m; SHOW CREATE SOURCE S; \
///      EXPLAIN CREATE MONITOR n AS SELECT count(*) FROM TUMBLE(s, ts, INTERVAL '1' MINUTE) \
///      GROUP BY window_start, window_end",
/// ).unwrap();
/// assert_eq!(stmts[0], Statement::Explain(ExplainTarget::Monitor("m".into())));
/// assert_eq!(stmts[1], Statement::ShowCreate { kind: ObjectKind::Source, name: "s".into() });
/// let Statement::Explain(ExplainTarget::Create(m)) = &stmts[2] else { panic!() };
/// assert!(m.sql.starts_with("CREATE MONITOR n AS SELECT"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum ExplainTarget {
    /// `EXPLAIN MONITOR name`: a defined monitor.
    Monitor(String),
    /// `EXPLAIN CREATE MONITOR …`: a definition, compiled but not created.
    Create(Box<CreateMonitor>),
}

/// Kinds of Driftwatch catalog objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A stream of inference records.
    Source,
    /// A reference data set (training data) profiled once.
    Baseline,
    /// A continuous query.
    Monitor,
}

impl ObjectKind {
    /// Upper-case keyword (`SOURCE`, …).
    pub fn keyword(&self) -> &'static str {
        match self {
            ObjectKind::Source => "SOURCE",
            ObjectKind::Baseline => "BASELINE",
            ObjectKind::Monitor => "MONITOR",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.keyword().to_ascii_lowercase())
    }
}

/// `CREATE [OR REPLACE] SOURCE [IF NOT EXISTS] name (columns…, [WATERMARK FOR …]) [WITH (…)]`.
///
/// ```
/// use driftwatch_sql::{parse_statements, Statement};
/// let sql = "CREATE SOURCE iris (ts TIMESTAMP NOT NULL, x DOUBLE, \
///            WATERMARK FOR ts AS ts - INTERVAL '6 seconds') WITH (connector = 'kafka')";
/// let Statement::CreateSource(s) = &parse_statements(sql).unwrap()[0] else { panic!() };
/// assert_eq!(s.columns.len(), 2);
/// assert!(!s.columns[0].nullable);
/// assert_eq!(s.watermark.as_ref().unwrap().delay_ms, 6_000);
/// assert_eq!(s.sql, sql);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSource {
    /// Normalised name (lower-cased unless quoted).
    pub name: String,
    /// Declared columns, in order.
    pub columns: Vec<ColumnSpec>,
    /// `WATERMARK FOR` clause, if any.
    pub watermark: Option<WatermarkSpec>,
    /// `WITH (…)` options.
    pub options: Options,
    /// Location of `CREATE`.
    pub location: Location,
    /// The statement's own text (without the trailing `;`).
    pub sql: String,
    /// `OR REPLACE` given.
    pub or_replace: bool,
    /// `IF NOT EXISTS` given.
    pub if_not_exists: bool,
}

impl CreateSource {
    /// Arrow schema of the declared columns.
    pub fn arrow_schema(&self) -> arrow::datatypes::Schema {
        arrow::datatypes::Schema::new(
            self.columns
                .iter()
                .map(|c| arrow::datatypes::Field::new(&c.name, c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        )
    }
}

/// A declared source column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Normalised column name.
    pub name: String,
    /// Arrow type (see [`crate::sql_type_to_arrow`]; `TIMESTAMP` is UTC milliseconds).
    pub data_type: DataType,
    /// False when declared `NOT NULL`.
    pub nullable: bool,
    /// Location of the column name.
    pub location: Location,
}

/// `WATERMARK FOR col AS col [- INTERVAL '…']`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// Event-time column (normalised).
    pub column: String,
    /// How far the watermark trails the maximum event time, in ms (≥ 0).
    pub delay_ms: i64,
    /// Location of `WATERMARK`.
    pub location: Location,
}

/// `CREATE [OR REPLACE] BASELINE name FROM 'path' [WITH (…)]` or
/// `CREATE [OR REPLACE] BASELINE name [WITH (…)] AS SELECT …`.
///
/// ```
/// use driftwatch_sql::{parse_statements, Statement, BaselineInput};
/// let stmts = parse_statements("CREATE BASELINE t FROM 'train.csv' WITH (format = csv)").unwrap();
/// let Statement::CreateBaseline(b) = &stmts[0] else { panic!() };
/// assert_eq!(b.input, BaselineInput::Path("train.csv".into()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CreateBaseline {
    /// Normalised name.
    pub name: String,
    /// Where the data comes from.
    pub input: BaselineInput,
    /// `WITH (…)` options (validated by the parser; read them with
    /// [`CreateBaseline::baseline_options`]).
    pub options: Options,
    /// Location of `CREATE`.
    pub location: Location,
    /// The statement's own text.
    pub sql: String,
    /// `OR REPLACE` given.
    pub or_replace: bool,
}

/// Input of a baseline.
#[derive(Debug, Clone, PartialEq)]
pub enum BaselineInput {
    /// `FROM 'path'` (CSV / Parquet / JSON file or directory).
    Path(String),
    /// `AS SELECT …`.
    Query {
        /// The parsed query.
        query: Box<sp::Query>,
        /// Its text.
        sql: String,
    },
}

/// `CREATE [OR REPLACE] MONITOR name [WITH (…)] AS SELECT …`.
///
/// ```
/// use driftwatch_sql::{parse_statements, Statement};
/// let sql = "CREATE MONITOR m WITH (sink = 'kafka') AS SELECT count(*) FROM TUMBLE(s, ts, INTERVAL '1' MINUTE) GROUP BY window_start, window_end";
/// let Statement::CreateMonitor(m) = &parse_statements(sql).unwrap()[0] else { panic!() };
/// assert!(m.query_sql.starts_with("SELECT count(*)"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CreateMonitor {
    /// Normalised name.
    pub name: String,
    /// `WITH (…)` options (before `AS`).
    pub options: Options,
    /// The monitor query, as written (see [`crate::analyze_monitor`]).
    pub query: Box<sp::Query>,
    /// Text of the query.
    pub query_sql: String,
    /// Location of `CREATE`.
    pub location: Location,
    /// The statement's own text.
    pub sql: String,
    /// `OR REPLACE` given.
    pub or_replace: bool,
}
