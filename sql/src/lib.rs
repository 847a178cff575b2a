//! Driftwatch monitor dialect: parsing of `CREATE SOURCE` / `CREATE BASELINE` /
//! `CREATE MONITOR` / `DROP` / `SHOW` scripts on top of DataFusion's sqlparser, and analysis of
//! monitor queries (window table functions `TUMBLE` / `HOP` / `SESSION`, long view
//! `features(src)`).
//!
//! ```
//! use driftwatch_sql::{analyze_monitor, parse_statements, Statement, WindowSpec};
//! let script = "
//!     CREATE SOURCE iris (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '6 seconds')
//!         WITH (connector = 'kafka', topic = 'iris');
//!     CREATE MONITOR stats AS
//!         SELECT window_start, window_end, avg(x) FROM TUMBLE(iris, ts, INTERVAL '15 seconds')
//!         GROUP BY window_start, window_end;";
//! let stmts = parse_statements(script).unwrap();
//! let Statement::CreateMonitor(m) = &stmts[1] else { panic!() };
//! let input = analyze_monitor(&m.query).unwrap();
//! assert_eq!(input.window, Some(WindowSpec::Tumble { time_column: "ts".into(), size_ms: 15_000 }));
//! ```

#![warn(missing_docs)]

mod ast;
mod baseline;
mod error;
mod interval;
mod monitor;
mod names;
mod options;
mod parser;
mod redact;
mod types;

pub use ast::{
    BaselineInput, ColumnSpec, CreateBaseline, CreateMonitor, CreateSource, ExplainTarget,
    ObjectKind, Statement, WatermarkSpec,
};
pub use baseline::{
    BaselineOptions, BinSpec, BASELINE_FORMATS, BASELINE_OPTIONS, BIN_RULES, DEFAULT_BIN_COUNT,
    MAX_BIN_COUNT,
};
pub use error::{Location, SqlError};
pub use interval::{interval_ms, parse_duration_ms};
pub use monitor::{
    analyze_monitor, analyze_monitor_with, FeatureList, FeatureSelection, MonitorInput, WindowSpec,
};
pub use names::{validate_object_name, MAX_NAME_LEN};
pub use options::{did_you_mean, format_size, parse_size, OptionLiteral, OptionValue, Options};
pub use parser::parse_statements;
pub use redact::{is_secret_key, redact_secrets, REDACTED};
pub use types::sql_type_to_arrow;

/// The sqlparser version DataFusion uses (re-exported for callers' convenience).
pub use datafusion::sql::sqlparser;
