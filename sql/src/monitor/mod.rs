//! Analysis of a monitor's `SELECT`: finds its stream input and window table function, and
//! rewrites the query into plain SQL DataFusion can plan.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, GroupByExpr, Ident, ObjectName, ObjectNamePart, Query, SetExpr, Spanned,
    TableAlias, TableFactor, TableWithJoins,
};

mod args;
mod streamable;

use crate::error::{Location, SqlError};
use crate::interval::interval_ms;
use crate::options::did_you_mean;
use crate::parser::normalize_ident;
use args::{
    features_args, function_args, positional_args, reject_group_window, source_arg, time_column_arg,
};

/// A window table-valued function over the monitor's source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WindowSpec {
    /// `TUMBLE(src, ts, size)`: fixed, non-overlapping windows.
    Tumble {
        /// Event-time column (normalised).
        time_column: String,
        /// Window size in ms.
        size_ms: i64,
    },
    /// `HOP(src, ts, slide, size)` (Flink argument order): overlapping windows.
    Hop {
        /// Event-time column (normalised).
        time_column: String,
        /// Distance between window starts in ms.
        slide_ms: i64,
        /// Window size in ms (≥ slide).
        size_ms: i64,
    },
    /// `SESSION(src, ts, gap)`: a window closes after `gap` without rows.
    Session {
        /// Event-time column (normalised).
        time_column: String,
        /// Inactivity gap in ms.
        gap_ms: i64,
    },
}

impl WindowSpec {
    /// The event-time column the window is defined on.
    pub fn time_column(&self) -> &str {
        match self {
            WindowSpec::Tumble { time_column, .. }
            | WindowSpec::Hop { time_column, .. }
            | WindowSpec::Session { time_column, .. } => time_column,
        }
    }

    /// Pane length for incremental aggregation: the size for TUMBLE, gcd(slide, size) for
    /// HOP (each window is a union of whole panes), `None` for SESSION.
    ///
    /// ```
    /// use driftwatch_sql::WindowSpec;
    /// let hop = WindowSpec::Hop { time_column: "ts".into(), slide_ms: 5_000, size_ms: 15_000 };
    /// assert_eq!(hop.pane_ms(), Some(5_000));
    /// ```
    pub fn pane_ms(&self) -> Option<i64> {
        match self {
            WindowSpec::Tumble { size_ms, .. } => Some(*size_ms),
            WindowSpec::Hop {
                slide_ms, size_ms, ..
            } => Some(gcd(*slide_ms, *size_ms)),
            WindowSpec::Session { .. } => None,
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// Which source columns the long view `features(src, …)` unpivots.
///
/// Without `include`, the features are the source's numeric columns except the defaults left
/// out (metadata columns such as Kafka's `_partition` / `_offset`, the event-time column and
/// id columns; the engine applies the rule, see the README). `include => 'a, b'` lists exactly
/// the features (`'*'`: every numeric column, nothing left out); `exclude => 'c'` removes
/// columns in addition. Columns that are not features stay ordinary columns of the view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FeatureSelection {
    /// `include => …`, when given.
    pub include: Option<FeatureList>,
    /// `exclude => …`, when given.
    pub exclude: Option<FeatureList>,
}

/// The column names of an `include` / `exclude` argument of `features()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureList {
    /// Column names as written (trimmed); empty when `all`.
    pub names: Vec<String>,
    /// `'*'`: every numeric column.
    pub all: bool,
    /// Where the list is written, for errors.
    pub location: Option<Location>,
}

/// What [`analyze_monitor`] found in a monitor query.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorInput {
    /// The stream the monitor reads (normalised name).
    pub source: String,
    /// The window table function, `None` for a row-level monitor.
    pub window: Option<WindowSpec>,
    /// True if the input is the long `(feature, value)` view `features(src)`.
    pub long_view: bool,
    /// The columns the long view unpivots (`include` / `exclude` of `features()`; default
    /// when `long_view` is false).
    pub features: FeatureSelection,
    /// The query with the window / `features()` call replaced by a plain reference to
    /// `source` (alias kept); the caller registers a table provider under that name that adds
    /// `window_start` / `window_end` (and `feature` / `value` for the long view).
    pub query: Query,
    /// Every plain table named in a FROM clause (normalised, CTE names excluded, in order of
    /// appearance, without duplicates), the source included. A caller that knows which
    /// names are sources can reject joins of two streams with [`analyze_monitor_with`].
    pub tables_referenced: Vec<String>,
    /// Location of the FROM item that names the source.
    pub location: Option<Location>,
}

pub(crate) const WINDOW_FNS: [&str; 3] = ["TUMBLE", "HOP", "SESSION"];
pub(crate) const FEATURES_FN: &str = "FEATURES";

/// Analyses a monitor's query (see [`MonitorInput`]).
///
/// Accepted inputs: `src` (row level), `TUMBLE(src, ts, INTERVAL '15 seconds')`,
/// `HOP(src, ts, slide, size)`, `SESSION(src, ts, gap)`, `features(src)` and windows over
/// it (`TUMBLE(features(src), ts, …)`), Flink spellings `TUMBLE(TABLE src, DESCRIPTOR(ts), …)`
/// and `FROM TABLE(TUMBLE(…))`, in the top-level FROM, in CTEs and in derived tables.
/// Without knowing which names are sources, the first plain table is taken as the source of a
/// row-level monitor; use [`analyze_monitor_with`] to decide.
///
/// ```
/// use driftwatch_sql::{analyze_monitor, parse_statements, Statement, WindowSpec};
/// let sql = "CREATE MONITOR m AS SELECT window_start, count(*) \
///            FROM HOP(iris, ts, INTERVAL '5 seconds', INTERVAL '15 seconds') AS w \
///            GROUP BY window_start";
/// let Statement::CreateMonitor(m) = &parse_statements(sql).unwrap()[0] else { panic!() };
/// let input = analyze_monitor(&m.query).unwrap();
/// assert_eq!(input.source, "iris");
/// assert_eq!(input.window, Some(WindowSpec::Hop { time_column: "ts".into(), slide_ms: 5_000, size_ms: 15_000 }));
/// assert!(input.query.to_string().contains("FROM iris AS w"));
/// ```
pub fn analyze_monitor(query: &Query) -> Result<MonitorInput, SqlError> {
    analyze(query, None)
}

/// Like [`analyze_monitor`], with `is_source(name)` telling which (normalised) table names are
/// streams: a row-level monitor's source is the first source table, two stream inputs are
/// rejected (located at the second one), and a window over a non-source is an error.
pub fn analyze_monitor_with(
    query: &Query,
    is_source: &dyn Fn(&str) -> bool,
) -> Result<MonitorInput, SqlError> {
    analyze(query, Some(is_source))
}

/// `known`: which names are sources, if the caller knows; otherwise every plain table may be
/// the source (the first one is taken) and joins are not checked.
fn analyze(query: &Query, known: Option<&dyn Fn(&str) -> bool>) -> Result<MonitorInput, SqlError> {
    let is_source = |n: &str| known.is_none_or(|f| f(n));
    let mut query = query.clone();
    let mut w = Walker {
        cte_names: Vec::new(),
        found: None,
        tables: Vec::new(),
    };
    w.query(&mut query)?;

    let stream_tables: Vec<&(String, Location)> =
        w.tables.iter().filter(|(n, _)| is_source(n)).collect();
    let (source, window, features, location) = match w.found {
        Some(found) => {
            if !is_source(&found.source) {
                return Err(SqlError::at(
                    found.location,
                    format!("'{}' is not a source; windows and features() apply to sources (CREATE SOURCE)", found.source),
                ));
            }
            if let Some((other, loc)) = stream_tables
                .iter()
                .find(|(n, _)| known.is_some() && *n != found.source)
            {
                return Err(two_streams(&found.source, other, *loc));
            }
            (
                found.source,
                found.window,
                found.features,
                Some(found.location),
            )
        }
        None => {
            let Some((first, loc)) = stream_tables.first() else {
                return Err(SqlError::new(
                    "a monitor must read a source: FROM src, FROM TUMBLE(src, ts, INTERVAL '…'), \
                     FROM HOP(…), FROM SESSION(…) or FROM features(src)",
                ));
            };
            if let Some((other, loc2)) = stream_tables
                .iter()
                .find(|(n, _)| known.is_some() && n != first)
            {
                return Err(two_streams(first, other, *loc2));
            }
            (first.clone(), None, None, Some(*loc))
        }
    };
    streamable::check_streamable(&query, &source, window.is_some())?;
    let mut tables_referenced: Vec<String> = Vec::new();
    if !w.tables.iter().any(|(n, _)| *n == source) {
        tables_referenced.push(source.clone());
    }
    for (n, _) in &w.tables {
        if !tables_referenced.contains(n) {
            tables_referenced.push(n.clone());
        }
    }
    Ok(MonitorInput {
        source,
        window,
        long_view: features.is_some(),
        features: features.unwrap_or_default(),
        query,
        tables_referenced,
        location,
    })
}

fn two_streams(first: &str, other: &str, loc: Location) -> SqlError {
    SqlError::at(
        loc,
        format!(
            "a monitor reads exactly one source, but this query reads '{first}' and '{other}'; \
             joining two streams is not supported (join a source with baselines or tables instead)"
        ),
    )
}

/// The window / features() call found in the query.
struct Found {
    source: String,
    window: Option<WindowSpec>,
    /// The long view's column selection, `None` when not `features()`.
    features: Option<FeatureSelection>,
    location: Location,
}

struct Walker {
    cte_names: Vec<String>,
    found: Option<Found>,
    tables: Vec<(String, Location)>,
}

pub(crate) fn last_name(name: &ObjectName) -> Option<&Ident> {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => Some(id),
        _ => None,
    }
}

pub(crate) fn span_loc(s: &impl Spanned) -> Option<Location> {
    Location::from_span(s.span())
}

impl Walker {
    fn query(&mut self, q: &mut Query) -> Result<(), SqlError> {
        if let Some(with) = &mut q.with {
            for cte in &mut with.cte_tables {
                self.cte_names.push(normalize_ident(&cte.alias.name));
                self.query(&mut cte.query)?;
            }
        }
        self.set_expr(&mut q.body)
    }

    fn set_expr(&mut self, body: &mut SetExpr) -> Result<(), SqlError> {
        match body {
            SetExpr::Select(select) => {
                for twj in &mut select.from {
                    self.table_with_joins(twj)?;
                }
                if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
                    exprs.iter().try_for_each(reject_group_window)?;
                }
                Ok(())
            }
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left)?;
                self.set_expr(right)
            }
            _ => Ok(()),
        }
    }

    fn table_with_joins(&mut self, twj: &mut TableWithJoins) -> Result<(), SqlError> {
        self.factor(&mut twj.relation)?;
        for join in &mut twj.joins {
            self.factor(&mut join.relation)?;
        }
        Ok(())
    }

    fn factor(&mut self, f: &mut TableFactor) -> Result<(), SqlError> {
        let replacement = match f {
            TableFactor::Table {
                name, args: None, ..
            } => {
                if name.0.len() == 1 {
                    if let Some(id) = last_name(name) {
                        let n = normalize_ident(id);
                        if !self.cte_names.contains(&n) {
                            let loc = Location::from_span(id.span).unwrap_or_default();
                            self.tables.push((n, loc));
                        }
                    }
                } else {
                    let n = name.to_string();
                    self.tables.push((n, span_loc(name).unwrap_or_default()));
                }
                None
            }
            TableFactor::Table {
                name,
                alias,
                args: Some(args),
                ..
            } => {
                let loc = span_loc(name).unwrap_or_default();
                self.call(name, &args.args, loc, alias.clone())?
            }
            TableFactor::TableFunction {
                expr: Expr::Function(func),
                alias,
            } => {
                let loc = span_loc(&func.name).unwrap_or_default();
                let args = function_args(&func.args);
                let name = func.name.clone();
                self.call(&name, &args, loc, alias.clone())?
            }
            TableFactor::Derived { subquery, .. } => {
                self.query(subquery)?;
                None
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.table_with_joins(table_with_joins)?;
                None
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *f = r;
        }
        Ok(())
    }

    /// A table function call in FROM. Returns the plain table reference replacing it, or `None`
    /// when the function is not one of ours.
    fn call(
        &mut self,
        name: &ObjectName,
        args: &[FunctionArg],
        loc: Location,
        alias: Option<TableAlias>,
    ) -> Result<Option<TableFactor>, SqlError> {
        let fname = last_name(name)
            .filter(|id| id.quote_style.is_none() && name.0.len() == 1)
            .map(|id| id.value.to_ascii_uppercase());
        let Some(fname) = fname else {
            return Ok(None);
        };
        let is_window = WINDOW_FNS.contains(&fname.as_str());
        if !is_window && fname != FEATURES_FN {
            let mut candidates = WINDOW_FNS.to_vec();
            candidates.push(FEATURES_FN);
            let looks_like_window = ["TUMBL", "HOP", "SESSION", "SLID", "WINDOW", "FEATURE"]
                .iter()
                .any(|p| fname.contains(p));
            let by_prefix = candidates
                .iter()
                .find(|c| {
                    fname.len() >= 3
                        && fname.len() <= c.len() + 3
                        && (fname.get(..3).is_some_and(|p| c.starts_with(p))
                            || fname.starts_with(&c[..3]))
                })
                .copied();
            if let Some(s) = by_prefix.or_else(|| did_you_mean(&fname, &candidates)) {
                return Err(SqlError::at(
                    loc,
                    format!("unknown window function {fname}; did you mean {s}?"),
                ));
            }
            if looks_like_window {
                return Err(SqlError::at(
                    loc,
                    format!("unknown window function {fname}; supported: TUMBLE(src, ts, size), HOP(src, ts, slide, size), SESSION(src, ts, gap), features(src)"),
                ));
            }
            // Some other table function (e.g. generate_series): leave it to DataFusion.
            return Ok(None);
        }
        if let Some(prev) = &self.found {
            return Err(two_streams(
                &prev.source,
                "a second window or features() input",
                loc,
            ));
        }
        let (source_id, features, window) = if fname == FEATURES_FN {
            let (src, selection) = features_args(args, loc)?;
            (src, Some(selection), None)
        } else {
            let args = positional_args(args, &fname, loc)?;
            let usage = match fname.as_str() {
                "TUMBLE" => "TUMBLE(src, ts, INTERVAL '15 seconds')",
                "HOP" => "HOP(src, ts, INTERVAL '5 seconds' /* slide */, INTERVAL '15 seconds' /* size */)",
                _ => "SESSION(src, ts, INTERVAL '30 seconds' /* gap */)",
            };
            let want = if fname == "HOP" { 4 } else { 3 };
            if args.len() != want {
                return Err(SqlError::at(
                    loc,
                    format!(
                        "{fname} takes {want} arguments, got {}: {usage}",
                        args.len()
                    ),
                ));
            }
            let (src, long) = source_arg(args[0], &fname, loc, true)?;
            let time_column = time_column_arg(args[1], &fname, usage)?;
            let positive = |e: &Expr, what: &str| -> Result<i64, SqlError> {
                let ms = interval_ms(e)?;
                if ms <= 0 {
                    return Err(SqlError::at(
                        span_loc(e),
                        format!("{fname} {what} must be positive, got {ms} ms"),
                    ));
                }
                Ok(ms)
            };
            let window = match fname.as_str() {
                "TUMBLE" => WindowSpec::Tumble {
                    time_column,
                    size_ms: positive(args[2], "size")?,
                },
                "HOP" => {
                    let slide_ms = positive(args[2], "slide")?;
                    let size_ms = positive(args[3], "size")?;
                    if slide_ms > size_ms {
                        return Err(SqlError::at(
                            span_loc(args[2]),
                            format!(
                                "HOP slide ({slide_ms} ms) is larger than the window size ({size_ms} ms), so rows \
                                 between windows would be dropped; the arguments are HOP(src, ts, slide, size) — \
                                 did you swap them?"
                            ),
                        ));
                    }
                    WindowSpec::Hop {
                        time_column,
                        slide_ms,
                        size_ms,
                    }
                }
                _ => WindowSpec::Session {
                    time_column,
                    gap_ms: positive(args[2], "gap")?,
                },
            };
            (src, long, Some(window))
        };
        let source = normalize_ident(&source_id);
        self.found = Some(Found {
            source,
            window,
            features,
            location: loc,
        });
        Ok(Some(TableFactor::Table {
            name: ObjectName::from(vec![source_id]),
            alias,
            args: None,
            with_hints: vec![],
            version: None,
            with_ordinality: false,
            partitions: vec![],
            json_path: None,
            sample: None,
            index_hints: vec![],
        }))
    }
}
