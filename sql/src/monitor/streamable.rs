//! Which monitor queries can stream. A monitor reads its source once, row by row (a
//! row-level monitor) or window by window (a windowed one), and emits results as rows arrive
//! or windows close. Constructs that need the whole input — or read the stream twice — would
//! compile and then buffer forever without output; they are rejected here, at CREATE
//! MONITOR (and in `driftwatch check` and `EXPLAIN CREATE MONITOR`), with their line and
//! column and what to write instead.
//!
//! | construct | instead |
//! |---|---|
//! | window functions `… OVER (…)` | TUMBLE / HOP / SESSION with GROUP BY window_start, window_end; streaming detectors per row |
//! | joins (any kind, also `FROM a, b`) over the stream | a baseline and the drift / outlier functions |
//! | UNION / INTERSECT / EXCEPT over the stream | one monitor per branch |
//! | ORDER BY, LIMIT, OFFSET, FETCH over the stream | the same clause when querying the result table |
//! | SELECT DISTINCT over the stream | GROUP BY window_start, window_end, columns |
//! | GROUP BY without a window | TUMBLE / HOP / SESSION |
//! | GROUPING SETS, CUBE, ROLLUP | one monitor per grouping |
//! | subqueries over the stream (`IN (SELECT … FROM src)`, `EXISTS`, scalar) | a condition on the row itself |
//! | WITH RECURSIVE | a plain WITH |
//! | now(), current_timestamp, current_date, current_time, random(), uuid() | event time (ts, window_end); a hash of the row |
//!
//! Subqueries, joins, ORDER BY and LIMIT that do not read the stream (over constants) stay
//! allowed, as do CTEs and derived tables over the stream, CASE, filters and HAVING.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_relations, Distinct, Expr, GroupByExpr, LimitClause, OrderByKind,
    Query, Select, SetExpr, SetOperator, TableFactor, TableWithJoins,
};

use super::{last_name, span_loc};
use crate::error::{Location, SqlError};
use crate::parser::normalize_ident;

/// Functions whose value depends on when or how often they are evaluated, not on the row.
const NONDETERMINISTIC: &[(&str, &str)] = &[
    ("now", "time"),
    ("current_timestamp", "time"),
    ("current_date", "time"),
    ("current_time", "time"),
    ("localtimestamp", "time"),
    ("localtime", "time"),
    ("random", "random"),
    ("uuid", "random"),
];

/// Checks that `query` — the monitor's query with its window / `features()` call already
/// replaced by a plain reference to `source` — can stream (see the module docs).
pub(super) fn check_streamable(
    query: &Query,
    source: &str,
    windowed: bool,
) -> Result<(), SqlError> {
    check_expressions(query, source)?;
    let mut checker = Checker {
        streams: vec![source.to_string()],
        windowed,
    };
    checker.query(query)
}

struct Checker {
    /// Names that read the stream: the source and the CTEs over it.
    streams: Vec<String>,
    windowed: bool,
}

/// Whether `q` reads one of `streams` anywhere (FROM, CTEs, nested subqueries).
fn reads(q: &impl datafusion::sql::sqlparser::ast::Visit, streams: &[String]) -> bool {
    visit_relations(q, |name| {
        let hit = name.0.len() == 1
            && last_name(name).is_some_and(|id| streams.contains(&normalize_ident(id)));
        if hit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

impl Checker {
    fn reads(&self, q: &impl datafusion::sql::sqlparser::ast::Visit) -> bool {
        reads(q, &self.streams)
    }

    fn query(&mut self, q: &Query) -> Result<(), SqlError> {
        if let Some(with) = &q.with {
            if with.recursive && self.reads(q) {
                return Err(SqlError::at(
                    Location::from_span(with.with_token.0.span),
                    "WITH RECURSIVE cannot stream: a recursive query iterates over its whole \
                     input until nothing changes, and a stream never ends; use a plain WITH",
                ));
            }
            for cte in &with.cte_tables {
                self.query(&cte.query)?;
                if self.reads(&*cte.query) {
                    self.streams.push(normalize_ident(&cte.alias.name));
                }
            }
        }
        let over_stream = self.reads(&*q.body);
        if over_stream {
            self.clauses(q)?;
        }
        self.set_expr(&q.body)
    }

    /// ORDER BY / LIMIT / OFFSET / FETCH of a query over the stream.
    fn clauses(&self, q: &Query) -> Result<(), SqlError> {
        let query_instead = "results are emitted as windows close (row-level monitors: as rows \
                             arrive), so apply it when you query the result table instead, e.g. \
                             SELECT * FROM <monitor> ORDER BY window_start DESC LIMIT 10";
        if let Some(order) = &q.order_by {
            let loc = match &order.kind {
                OrderByKind::Expressions(e) => e.first().and_then(|e| span_loc(&e.expr)),
                OrderByKind::All(_) => None,
            };
            return Err(SqlError::at(
                loc,
                format!(
                    "ORDER BY cannot stream: sorting needs the whole input, which a stream \
                     never completes; {query_instead}"
                ),
            ));
        }
        if let Some(limit) = &q.limit_clause {
            let (what, loc) = match limit {
                LimitClause::LimitOffset { limit: Some(l), .. } => ("LIMIT", span_loc(l)),
                LimitClause::LimitOffset {
                    offset: Some(o), ..
                } => ("OFFSET", span_loc(&o.value)),
                LimitClause::LimitOffset { .. } => ("LIMIT", None),
                LimitClause::OffsetCommaLimit { limit, .. } => ("LIMIT", span_loc(limit)),
            };
            return Err(SqlError::at(
                loc,
                format!(
                    "{what} cannot stream: a monitor runs as long as its source and would stop \
                     (or skip rows) for good after the first rows; {query_instead}"
                ),
            ));
        }
        if let Some(fetch) = &q.fetch {
            return Err(SqlError::at(
                fetch.quantity.as_ref().and_then(span_loc),
                format!("FETCH cannot stream; {query_instead}"),
            ));
        }
        Ok(())
    }

    fn set_expr(&mut self, body: &SetExpr) -> Result<(), SqlError> {
        match body {
            SetExpr::Select(select) => self.select(select),
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation {
                op, left, right, ..
            } => {
                if self.reads(&**left) || self.reads(&**right) {
                    let name = match op {
                        SetOperator::Union => "UNION",
                        SetOperator::Intersect => "INTERSECT",
                        SetOperator::Except => "EXCEPT",
                        SetOperator::Minus => "MINUS",
                    };
                    return Err(SqlError::at(
                        span_loc(&**right),
                        format!(
                            "{name} is not supported in a monitor: each branch would read the \
                             stream again{}; create one monitor per branch (each writes its own \
                             result table) and combine them when you query, e.g. SELECT … FROM \
                             m1 UNION ALL SELECT … FROM m2",
                            if matches!(op, SetOperator::Union) {
                                ""
                            } else {
                                ", and comparing the branches needs their whole input"
                            }
                        ),
                    ));
                }
                self.set_expr(left)?;
                self.set_expr(right)
            }
            _ => Ok(()),
        }
    }

    fn select(&mut self, select: &Select) -> Result<(), SqlError> {
        for twj in &select.from {
            self.relations(twj)?;
        }
        let over_stream = select.from.iter().any(|twj| self.reads(twj));
        if !over_stream {
            return Ok(());
        }
        if let Some(second) = select.from.get(1) {
            return Err(join_error(
                span_loc(&second.relation),
                "FROM a, b (a cross join)",
            ));
        }
        for twj in &select.from {
            if let Some(join) = twj.joins.first() {
                return Err(join_error(span_loc(&join.relation), "JOIN"));
            }
        }
        if let Some(Distinct::Distinct | Distinct::On(_)) = &select.distinct {
            return Err(SqlError::at(
                Location::from_span(select.select_token.0.span),
                if self.windowed {
                    "SELECT DISTINCT over a windowed monitor would compare rows of every window \
                     ever emitted and never finish; GROUP BY window_start, window_end, <columns> \
                     already gives each distinct combination once per window"
                } else {
                    "SELECT DISTINCT cannot stream: finding the distinct rows of a stream needs \
                     all of it; read the source through TUMBLE(src, ts, INTERVAL '1 minute') and \
                     GROUP BY window_start, window_end, <columns> for the distinct values of \
                     each window (count(DISTINCT x) per window works too)"
                },
            ));
        }
        let (exprs, modifiers) = match &select.group_by {
            GroupByExpr::All(m) => (&[][..], m),
            GroupByExpr::Expressions(e, m) => (&e[..], m),
        };
        for e in exprs {
            if let Expr::GroupingSets(_) | Expr::Cube(_) | Expr::Rollup(_) = e {
                let what = match e {
                    Expr::GroupingSets(_) => "GROUPING SETS",
                    Expr::Cube(_) => "CUBE",
                    _ => "ROLLUP",
                };
                return Err(grouping_error(what, span_loc(e)));
            }
        }
        if !modifiers.is_empty() {
            return Err(grouping_error(
                "GROUP BY … WITH ROLLUP / CUBE",
                span_loc(&select.group_by),
            ));
        }
        let groups = !exprs.is_empty() || matches!(select.group_by, GroupByExpr::All(_));
        if groups && !self.windowed {
            return Err(SqlError::at(
                exprs.first().and_then(span_loc),
                "GROUP BY needs a window: a group of a stream is never complete; read the source \
                 through TUMBLE(src, ts, INTERVAL '…'), HOP(…) or SESSION(…) and GROUP BY \
                 window_start, window_end, <columns>",
            ));
        }
        Ok(())
    }

    fn relations(&mut self, twj: &TableWithJoins) -> Result<(), SqlError> {
        for factor in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            match factor {
                TableFactor::Derived { subquery, .. } => self.query(subquery)?,
                TableFactor::NestedJoin {
                    table_with_joins, ..
                } if self.reads(&**table_with_joins) => {
                    return Err(join_error(span_loc(factor), "JOIN"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn join_error(loc: Option<Location>, what: &str) -> SqlError {
    SqlError::at(
        loc,
        format!(
            "{what} is not supported in a monitor yet: a monitor reads one stream once, and a \
             join would hold its rows back without bound (a stream–stream join) or need the \
             other side loaded and kept in step. To compare the stream with reference data, \
             create a baseline (CREATE BASELINE ref FROM 'reference.csv' or AS SELECT …) and use \
             the drift and outlier functions with its name, e.g. zscore(x, 'ref') per row or \
             ks_pvalue(value, 'ref', feature) per window"
        ),
    )
}

fn grouping_error(what: &str, loc: Option<Location>) -> SqlError {
    SqlError::at(
        loc,
        format!(
            "{what} is not supported in monitors: write one monitor per grouping, each with \
             GROUP BY window_start, window_end, <its columns>"
        ),
    )
}

/// Window functions, nondeterministic functions and subqueries over the stream, anywhere
/// in the query.
fn check_expressions(query: &Query, source: &str) -> Result<(), SqlError> {
    // CTEs over the stream, for subqueries that read the stream through them.
    let mut streams = vec![source.to_string()];
    let mut ctes = Vec::new();
    collect_ctes(query, &mut ctes);
    loop {
        let before = streams.len();
        for (name, q) in &ctes {
            if !streams.contains(name) && reads(*q, &streams) {
                streams.push(name.clone());
            }
        }
        if streams.len() == before {
            break;
        }
    }
    let flow = visit_expressions(query, |e| {
        let problem = match e {
            Expr::Function(f) => {
                let name = last_name(&f.name).map(|id| id.value.to_ascii_lowercase());
                let loc = span_loc(&f.name);
                if f.over.is_some() {
                    Some(SqlError::at(
                        loc,
                        format!(
                            "window function {}(…) OVER (…) cannot stream: OVER computes over a \
                             whole partition of the input, which a stream never completes; for \
                             aggregates per time window read the source through TUMBLE(src, ts, \
                             INTERVAL '…'), HOP(…) or SESSION(…) and GROUP BY window_start, \
                             window_end; for running statistics per row use a streaming detector \
                             (page_hinkley_stream, ddm_stream, cusum_stream, adwin_stream)",
                            f.name
                        ),
                    ))
                } else {
                    name.and_then(|n| {
                        NONDETERMINISTIC
                            .iter()
                            .find(|(f, _)| *f == n)
                            .map(|(f, kind)| nondeterministic(f, kind, loc))
                    })
                }
            }
            Expr::Subquery(q) if reads(&**q, &streams) => Some(subquery_error(span_loc(&**q))),
            Expr::InSubquery { subquery, .. } if reads(&**subquery, &streams) => {
                Some(subquery_error(span_loc(&**subquery)))
            }
            Expr::Exists { subquery, .. } if reads(&**subquery, &streams) => {
                Some(subquery_error(span_loc(&**subquery)))
            }
            _ => None,
        };
        match problem {
            Some(p) => ControlFlow::Break(p),
            None => ControlFlow::Continue(()),
        }
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn collect_ctes<'a>(q: &'a Query, out: &mut Vec<(String, &'a Query)>) {
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            out.push((normalize_ident(&cte.alias.name), &cte.query));
            collect_ctes(&cte.query, out);
        }
    }
}

fn subquery_error(loc: Option<Location>) -> SqlError {
    SqlError::at(
        loc,
        "a subquery over the stream cannot stream: it would read the source a second time and \
         need all of it before the first row could be answered; test the row itself (WHERE x > \
         …, CASE …), compare with a baseline (zscore(x, 'ref'), out_of_range(x, 'ref')), or use \
         a derived table (FROM (SELECT … FROM src) AS s)",
    )
}

fn nondeterministic(name: &str, kind: &str, loc: Option<Location>) -> SqlError {
    let message = if kind == "time" {
        format!(
            "{name}() is not allowed in a monitor: it is evaluated once when the monitor is \
             planned, so a monitor running for months would compare with its start time, and \
             windows emitted again after a restart would see another value; use event time \
             instead (the source's time column, or window_start / window_end)"
        )
    } else {
        format!(
            "{name}() is not allowed in a monitor: recovery emits windows again after a restart \
             and needs the same input to give the same results; derive the value from the row, \
             e.g. sample with substr(md5(request_id), 1, 1) = '0'"
        )
    };
    SqlError::at(loc, message)
}

#[cfg(test)]
mod tests {
    use crate::{analyze_monitor, parse_statements, Statement};

    fn error(sql: &str) -> crate::SqlError {
        let stmts = parse_statements(sql).unwrap();
        let Statement::CreateMonitor(m) = &stmts[0] else {
            panic!("not a monitor")
        };
        analyze_monitor(&m.query).unwrap_err()
    }

    fn accepted(sql: &str) {
        let stmts = parse_statements(sql).unwrap();
        let Statement::CreateMonitor(m) = &stmts[0] else {
            panic!("not a monitor")
        };
        analyze_monitor(&m.query).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    #[test]
    fn over_is_located_at_the_function() {
        let e = error("CREATE MONITOR m AS SELECT x,\n  sum(x) OVER () AS s FROM src");
        assert_eq!(e.location.unwrap().line, 2);
        assert_eq!(e.location.unwrap().column, 3);
        assert!(e.message.contains("sum(…) OVER (…)"), "{e}");
    }

    #[test]
    fn constructs_that_stream_are_kept() {
        accepted(
            "CREATE MONITOR m AS WITH w AS (SELECT * FROM TUMBLE(src, ts, INTERVAL '1 minute')) \
             SELECT window_start, window_end, count(*) AS n, \
             sum(CASE WHEN x > 1 THEN 1 ELSE 0 END) AS big FROM w \
             WHERE x IN (SELECT 1 UNION SELECT 2) \
             GROUP BY window_start, window_end HAVING count(*) > 1",
        );
        accepted("CREATE MONITOR m AS SELECT s.x FROM (SELECT * FROM src WHERE x > 0) AS s");
        accepted(
            "CREATE MONITOR m AS SELECT window_start, window_end, count(DISTINCT x), \
             array_agg(x ORDER BY ts) FROM TUMBLE(src, ts, INTERVAL '1 second') \
             GROUP BY window_start, window_end",
        );
    }

    #[test]
    fn a_subquery_through_a_cte_is_found() {
        let e = error(
            "CREATE MONITOR m AS WITH a AS (SELECT x FROM src), b AS (SELECT x FROM a) \
             SELECT x FROM src WHERE x IN (SELECT x FROM b)",
        );
        assert!(e.message.contains("subquery over the stream"), "{e}");
    }
}
