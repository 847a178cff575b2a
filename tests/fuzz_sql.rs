//! Fuzz targets for the SQL dialect: the parser (`parse_statements`, then the analysis of
//! every statement it returns: monitor inputs, baseline options, source schemas, option
//! values) over random token soups and over mutated valid scripts; and the planner
//! (`plan_monitor`, as `driftwatch check` and CREATE MONITOR run it) over generated, often
//! mutated CREATE MONITOR statements against a fixed source and baseline.
//!
//! Each target must never panic; errors must say something and point inside the script.
//! `DRIFTWATCH_FUZZ_CASES` sets the cases per target (see `tests/fuzz_support`). The
//! `regressions` section at the end keeps every crash found, with the minimal input.

mod fuzz_support;

use std::sync::{Arc, LazyLock};

use arrow::array::{Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use driftwatch::engine::{plan_monitor, MonitorPlanOptions};
use driftwatch::runtime::sources::source_schema;
use driftwatch::sources::SourceSchema;
use driftwatch_sql::{
    analyze_monitor, analyze_monitor_with, parse_statements, SqlError, Statement,
};
use driftwatch_udfs::{BaselineProfile, BaselineRegistry, ProfileOptions};
use fuzz_support::{mutated, nested, outcome, run};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------
// Checks

/// An error has a message, and its location (if any) is inside the script.
fn check_error(sql: &str, e: &SqlError) -> Result<(), TestCaseError> {
    prop_assert!(!e.message.trim().is_empty(), "empty message for {:?}", sql);
    if let Some(loc) = e.location {
        let lines = sql.split('\n').count() as u64;
        prop_assert!(
            loc.line >= 1 && loc.line <= lines + 1 && loc.column >= 1,
            "location {:?} outside the script ({} lines): {}",
            loc,
            lines,
            e
        );
    }
    Ok(())
}

/// Parses `sql` and analyses every statement the way the runtime does before running it.
fn parse_and_analyse(sql: &str) -> Result<(), TestCaseError> {
    let statements = match parse_statements(sql) {
        Ok(s) => s,
        Err(e) => {
            outcome("parse error");
            return check_error(sql, &e);
        }
    };
    outcome(if statements.is_empty() {
        "empty"
    } else {
        "parsed"
    });
    for statement in &statements {
        match statement {
            Statement::CreateMonitor(m) => {
                if let Err(e) = analyze_monitor(&m.query) {
                    check_error(sql, &e)?;
                }
                if let Err(e) = analyze_monitor_with(&m.query, &|n| n == "src") {
                    check_error(sql, &e)?;
                }
                options(sql, &m.options)?;
            }
            Statement::CreateBaseline(b) => {
                if let Err(e) = b.baseline_options() {
                    check_error(sql, &e)?;
                }
            }
            Statement::CreateSource(s) => {
                let _ = source_schema(s);
                options(sql, &s.options)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads every option as each type the runtime may ask for.
fn options(sql: &str, options: &driftwatch_sql::Options) -> Result<(), TestCaseError> {
    for (key, _) in options.iter() {
        for e in [
            options.get_duration_ms(key).err(),
            options.get_bool(key).err(),
            options.get_usize(key).err(),
        ]
        .into_iter()
        .flatten()
        {
            check_error(sql, &e)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Parser targets

/// Tokens of the dialect and around it: keywords, punctuation, intervals and numbers at
/// the edges, unicode identifiers and unterminated quotes and comments.
const TOKENS: &[&str] = &[
    "CREATE",
    "OR",
    "REPLACE",
    "SOURCE",
    "BASELINE",
    "MONITOR",
    "DROP",
    "SHOW",
    "SOURCES",
    "MONITORS",
    "IF",
    "NOT",
    "EXISTS",
    "WITH",
    "AS",
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "ORDER",
    "LIMIT",
    "JOIN",
    "ON",
    "UNION",
    "WATERMARK",
    "FOR",
    "INTERVAL",
    "TABLE",
    "DESCRIPTOR",
    "TUMBLE",
    "HOP",
    "SESSION",
    "features",
    "CUMULATE",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "CAST",
    "NULL",
    "TRUE",
    "FALSE",
    "DOUBLE",
    "TIMESTAMP",
    "VARCHAR",
    "INT",
    "BIGINT",
    "DECIMAL(38, 10)",
    "DECIMAL(0)",
    "DECIMAL(39, 40)",
    "SECOND",
    "MINUTE",
    "DAY",
    "MONTH",
    "TO",
    "(",
    ")",
    "(",
    ")",
    ",",
    ",",
    ";",
    "=",
    "-",
    "+",
    "*",
    "/",
    ".",
    "::",
    "[",
    "]",
    "'",
    "\"",
    "--",
    "/*",
    "*/",
    "\n",
    "src",
    "src",
    "ts",
    "ts",
    "x",
    "label",
    "window_start",
    "window_end",
    "feature",
    "value",
    "'train'",
    "count(*)",
    "avg",
    "wasserstein_norm",
    "zscore",
    "ks_pvalue",
    "quantile",
    "top_k",
    "'15 seconds'",
    "'5 s'",
    "'1234567é'",
    "'1s\u{3000}1234'",
    "'NaN'",
    "'inf'",
    "'9223372036854775807 ms'",
    "'-5 s'",
    "'1 month'",
    "''",
    "'1 hour 30 minutes'",
    "'interval'",
    "'intervalé'",
    "0",
    "-1",
    "1e309",
    "99999999999999999999",
    "0.5",
    "\"Quoted Ident\"",
    "ééa",
    "tumblé",
    "ÄÖÜ",
    "connector",
    "'kafka'",
    "'http'",
    "'file'",
    "time_format",
    "idle_timeout",
    "bins",
    "'fd'",
    "bin_edges",
    "'1, 0'",
    "quantiles",
    "max_sample",
];

#[test]
fn fuzz_sql_token_soup() {
    let separator = select(&[" ", " ", "", "\n", "\t"][..]);
    let strategy = || vec((select(TOKENS), separator.clone()), 0..40);
    run("sql_token_soup", strategy, |tokens| {
        let sql: String = tokens.iter().flat_map(|(t, s)| [*t, *s]).collect();
        parse_and_analyse(&sql)
    });
}

/// Valid scripts: every statement kind, every window, options of every type.
fn script_seeds() -> Vec<Vec<u8>> {
    [
        include_str!("../examples/iris/monitors.sql"),
        "CREATE SOURCE IF NOT EXISTS src (request_id VARCHAR, ts TIMESTAMP NOT NULL, x DOUBLE, \
         d DECIMAL(10, 2), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'kafka', \
         topic = 't', 'kafka.bootstrap.servers' = 'h:9092', idle_timeout = INTERVAL '10' SECOND, \
         max_future = 'none', batch = 100, strict = TRUE);\nDROP SOURCE IF EXISTS old; SHOW MONITORS;",
        "CREATE OR REPLACE BASELINE train WITH (bins = 'fd', quantiles = '0.1, 0.5, 0.9', \
         max_sample = 1000) FROM 'train.csv';\nCREATE BASELINE b2 AS SELECT x FROM t WHERE x > 0;",
        "CREATE MONITOR m WITH (allowed_lateness = '2 s', retention = '1 day') AS SELECT \
         window_start, window_end, label, count(*) AS n FROM SESSION(TABLE src, DESCRIPTOR(ts), \
         INTERVAL '30 seconds') WHERE x IS NOT NULL GROUP BY window_start, window_end, label \
         HAVING count(*) > 1;",
        "-- comment\nCREATE MONITOR h AS SELECT window_start, window_end, feature, \
         psi(value, 'train', feature) FROM HOP(features(src), ts, INTERVAL '1 minute', \
         INTERVAL '1 hour 30 minutes') GROUP BY 1, 2, 3; /* tail */",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

static SQL_DICT: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut d: Vec<&'static str> = TOKENS.to_vec();
    d.extend([" ", "é", "\u{3000}", "\u{0}", "`", "$1", "@", "\\", "e"]);
    d.push(Box::leak(nested("(", ")", 300, "1").into_boxed_str()));
    d.push(Box::leak(nested("abs(", ")", 120, "x").into_boxed_str()));
    d.push(Box::leak("- ".repeat(300).into_boxed_str()));
    d
});

#[test]
fn fuzz_sql_mutated_scripts() {
    let input = || {
        prop_oneof![
            9 => mutated(script_seeds(), SQL_DICT.as_slice(), 6),
            1 => fuzz_support::raw_bytes(160),
        ]
    };
    run("sql_mutated_scripts", input, |bytes| {
        parse_and_analyse(&String::from_utf8_lossy(&bytes))
    });
}

// ---------------------------------------------------------------------------------------
// Planner target

const SOURCE_SQL: &str = "CREATE SOURCE src (request_id VARCHAR, ts TIMESTAMP NOT NULL, \
    x DOUBLE, y DOUBLE, label VARCHAR, n BIGINT, ok BOOLEAN, \
    WATERMARK FOR ts AS ts - INTERVAL '5 seconds') WITH (connector = 'http')";

/// The fixed source every generated monitor reads.
fn fuzz_source() -> Arc<SourceSchema> {
    let Statement::CreateSource(def) = &parse_statements(SOURCE_SQL).unwrap()[0] else {
        unreachable!("a CREATE SOURCE")
    };
    source_schema(def).unwrap()
}

/// A baseline `train` over x, y (numeric) and label (categorical).
fn fuzz_baselines() -> Arc<BaselineRegistry> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
    ]));
    let xs: Vec<f64> = (0..64).map(|i| (i as f64 * 0.37).sin()).collect();
    let ys: Vec<f64> = (0..64).map(|i| (i as f64 * 0.11).cos() * 3.0).collect();
    let labels: Vec<&str> = (0..64).map(|i| ["a", "b", "c"][i % 3]).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(xs)),
            Arc::new(Float64Array::from(ys)),
            Arc::new(StringArray::from(labels)),
        ],
    )
    .unwrap();
    let registry = BaselineRegistry::new();
    registry.insert(
        BaselineProfile::from_batches("train", &[batch], &ProfileOptions::default()).unwrap(),
    );
    Arc::new(registry)
}

const INTERVALS: &[&str] = &[
    "INTERVAL '15 seconds'",
    "INTERVAL '5 seconds'",
    "INTERVAL '1' SECOND",
    "INTERVAL '1 ms'",
    "INTERVAL '7 ms'",
    "INTERVAL '0 seconds'",
    "INTERVAL '-1 s'",
    "INTERVAL '4611686018427387903 ms'",
    "INTERVAL '4611686018427387904 ms'",
    "INTERVAL '1 month'",
    "INTERVAL '1 week'",
    "INTERVAL '1.5 s'",
    "INTERVAL '0.0001 s'",
    "INTERVAL 'NaN' SECOND",
    "INTERVAL '99999999999999' DAY",
    "'15 seconds'",
    "15",
];

/// Valid intervals, mostly (the edge cases are in [`INTERVALS`]).
const GOOD_INTERVALS: &[&str] = &[
    "INTERVAL '10 seconds'",
    "INTERVAL '1' MINUTE",
    "INTERVAL '250 ms'",
    "INTERVAL '1 hour 30 minutes'",
];

/// Aggregates over the source's columns: built-ins and Driftwatch functions, with valid
/// and invalid arguments.
const AGGREGATES: &[&str] = &[
    "count(*)",
    "count(DISTINCT label)",
    "avg(x)",
    "stddev(y)",
    "sum(n)",
    "min(ts)",
    "max(label)",
    "median(x)",
    "quantile(x, 0.5)",
    "quantile(x, 2)",
    "quantile(x, x)",
    "top_k(label, 3)",
    "top_k(label, -1)",
    "top_k(label, 0)",
    "histogram(x, 'train')",
    "wasserstein_norm(x, 'train')",
    "wasserstein(x, 'train', 'y')",
    "ks_pvalue(y, 'train')",
    "ks_stat(x, 'nope')",
    "psi(label, 'train')",
    "chi2_pvalue(label, 'train')",
    "kl_div(x, 'train')",
    "js_distance(label, 'train')",
    "hellinger(x, 'train')",
    "tvd(x, 'train')",
    "l_inf(x, 'train')",
    "energy_distance(x, 'train')",
    "cvm_pvalue(x, 'train')",
    "anderson_pvalue(y, 'train')",
    "mmd(x, y, 'train')",
    "mmd_pvalue(x, y, 'train', 0)",
    "covariance_matrix(x, y)",
    "correlation_matrix(x)",
    "missing_rate(x)",
    "missing_count(label)",
    "page_hinkley(array_agg(x))",
    "adwin(array_agg(x), 0.002, 0)",
    "cusum(array_agg(y), -1)",
    "ddm(array_agg(x), 30, 2.0, 3.0)",
    "approx_percentile_cont(x, 0.5)",
    "avg(x) FILTER (WHERE ok)",
    "avg(x) + max(y)",
    "wasserstein(x)",
    "ks_stat()",
    "energy_distance(x, 'train', 'x', 'y')",
    "first_value(x)",
    "sum(n * 9223372036854775807)",
];

/// Aggregates over the long view `features(src)`.
const LONG_AGGREGATES: &[&str] = &[
    "count(*)",
    "avg(value)",
    "wasserstein_norm(value, 'train', feature)",
    "ks_pvalue(value, 'train', feature)",
    "psi(value, 'train', feature)",
    "histogram(value, 'train', feature)",
    "quantile(value, 0.5)",
    "max(value) - min(value)",
    "iqr_outlier(value, 'train', feature)",
    "zscore(value, 'train', feature)",
];

/// Per-row expressions (monitors without a window).
const SCALARS: &[&str] = &[
    "request_id",
    "ts",
    "x",
    "label",
    "*",
    "x + 1",
    "CAST(x AS INT)",
    "n * 9223372036854775807",
    "CASE WHEN x > 1 THEN 1 ELSE 0 END",
    "x / 0",
    "zscore(x, 'train')",
    "zscore(x, 'nope')",
    "mahalanobis(x, y, 'train')",
    "isolation_forest_score(x, y, 'train')",
    "iqr_outlier(x, 'train', -1)",
    "out_of_range(x, 'train')",
    "row_number() OVER ()",
    "(SELECT 1)",
    "ok AND x > 0",
    "upper(label)",
    "date_trunc('minute', ts)",
];

const FROMS: &[&str] = &[
    "TUMBLE(src, ts, #)",
    "HOP(src, ts, #, #)",
    "SESSION(src, ts, #)",
    "features(src)",
    "HOP(features(src), ts, #, #)",
    "TUMBLE(TABLE src, DESCRIPTOR(ts), #)",
    "src",
    "(SELECT * FROM src) s",
    "src a JOIN src b ON a.x = b.x",
    "TUMBLE(src, x, #)",
    "TUMBLE(other, ts, #)",
    "TUMBLE(src, ts)",
    "src, generate_series(1, 3)",
];

const GROUPS: &[&str] = &[
    "",
    " GROUP BY window_start, window_end",
    " GROUP BY window_start, window_end, feature",
    " GROUP BY window_start, window_end, label",
    " GROUP BY window_end",
    " GROUP BY label",
    " GROUP BY ROLLUP(window_start, window_end)",
    " GROUP BY window_start, window_end, x + 1",
    " GROUP BY 1, 2",
];

const TAILS: &[&str] = &[
    "",
    "",
    " HAVING count(*) > 1",
    " ORDER BY window_start",
    " LIMIT 10",
    " UNION ALL SELECT * FROM src",
];

const PREDICATES: &[&str] = &[
    "x > 0",
    "label = 'a'",
    "abs(zscore(x, 'train')) > 3",
    "ts > now()",
    "x IN (SELECT x FROM src)",
    "n / 0 = 1",
    "label LIKE '%é%'",
];

/// A CREATE MONITOR statement: mostly coherent (a windowed monitor over `src`, one over
/// the long view, a per-row monitor), else any combination of the pieces above; a quarter
/// of them byte-mutated.
fn monitor_sql() -> impl Strategy<Value = String> {
    let interval = || prop_oneof![3 => select(GOOD_INTERVALS), 1 => select(INTERVALS)];
    let window = prop_oneof![
        Just("TUMBLE(src, ts, #)"),
        Just("HOP(src, ts, #, #)"),
        Just("SESSION(src, ts, #)"),
    ];
    let filter = || proptest::option::weighted(0.3, select(PREDICATES));
    let windowed = (
        window,
        vec(interval(), 2),
        vec(select(AGGREGATES), 1..4),
        filter(),
        prop_oneof![Just(""), Just(", label")],
        select(TAILS),
    )
        .prop_map(|(from, iv, aggs, predicate, key, tail)| {
            let from = from.replacen('#', iv[0], 1).replacen('#', iv[1], 1);
            let filter = predicate.map(|p| format!(" WHERE {p}")).unwrap_or_default();
            format!(
                "SELECT window_start, window_end{key}, {} FROM {from}{filter} \
                 GROUP BY window_start, window_end{key}{tail}",
                aggs.join(", ")
            )
        });
    let long = (
        prop_oneof![
            Just("TUMBLE(features(src), ts, #)"),
            Just("HOP(features(src), ts, #, #)"),
        ],
        vec(interval(), 2),
        vec(select(LONG_AGGREGATES), 1..4),
    )
        .prop_map(|(from, iv, aggs)| {
            let from = from.replacen('#', iv[0], 1).replacen('#', iv[1], 1);
            format!(
                "SELECT window_start, window_end, feature, {} FROM {from} \
                 GROUP BY window_start, window_end, feature",
                aggs.join(", ")
            )
        });
    let per_row = (vec(select(SCALARS), 1..4), filter()).prop_map(|(items, predicate)| {
        let filter = predicate.map(|p| format!(" WHERE {p}")).unwrap_or_default();
        format!("SELECT {} FROM src{filter}", items.join(", "))
    });
    let any_item = prop_oneof![select(AGGREGATES), select(SCALARS), select(LONG_AGGREGATES)];
    let anything = (
        vec(any_item, 1..5),
        select(FROMS),
        vec(select(INTERVALS), 2),
        filter(),
        select(GROUPS),
        select(TAILS),
    )
        .prop_map(|(items, from, iv, predicate, group, tail)| {
            let from = from.replacen('#', iv[0], 1).replacen('#', iv[1], 1);
            let filter = predicate.map(|p| format!(" WHERE {p}")).unwrap_or_default();
            format!(
                "SELECT {} FROM {from}{filter}{group}{tail}",
                items.join(", ")
            )
        });
    let generated = prop_oneof![3 => windowed, 2 => long, 2 => per_row, 2 => anything]
        .prop_map(|q| format!("CREATE MONITOR m AS {q}").into_bytes());
    prop_oneof![
        3 => generated.clone(),
        1 => (generated, fuzz_support::mutations(SQL_DICT.as_slice(), 2))
            .prop_map(|(sql, muts)| fuzz_support::apply(&sql, &muts)),
    ]
    .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[test]
fn fuzz_sql_planner() {
    let source = fuzz_source();
    let baselines = fuzz_baselines();
    thread_local! {
        /// One runtime per fuzz worker (a current-thread runtime runs one `block_on` at once).
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
    }
    let lateness = prop_oneof![4 => Just(0i64), 1 => Just(1_000), 1 => Just(i64::MAX / 2)];
    run(
        "sql_planner",
        || (monitor_sql(), lateness.clone()),
        |(sql, lateness)| {
            let statements = match parse_statements(&sql) {
                Ok(s) => s,
                Err(e) => {
                    outcome("parse error");
                    return check_error(&sql, &e);
                }
            };
            let Some(Statement::CreateMonitor(m)) = statements.first() else {
                outcome("not a monitor");
                return Ok(());
            };
            let input = match analyze_monitor_with(&m.query, &|n| n == "src") {
                Ok(i) if i.source == "src" => i,
                Ok(_) => {
                    outcome("other source");
                    return Ok(());
                }
                Err(e) => {
                    outcome("analysis error");
                    return check_error(&sql, &e);
                }
            };
            let options = MonitorPlanOptions {
                allowed_lateness_ms: lateness,
                ..Default::default()
            };
            let planned = RT.with(|rt| {
                rt.block_on(plan_monitor(
                    &m.name,
                    &input,
                    Arc::clone(&source),
                    None,
                    &options,
                    &baselines,
                ))
            });
            outcome(if planned.is_ok() {
                "planned"
            } else {
                "plan error"
            });
            match planned {
                Ok(plan) => {
                    prop_assert!(!plan.schema.fields().is_empty());
                    prop_assert_eq!(plan.window.is_some(), input.window.is_some());
                }
                Err(e) => prop_assert!(!e.message.trim().is_empty(), "empty plan error: {}", sql),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Regressions: every crash the targets found, with the minimal input.

fn parse_err(sql: &str) -> SqlError {
    match parse_statements(sql) {
        Err(e) => e,
        Ok(s) => panic!("expected an error for {sql:?}, got {s:?}"),
    }
}

fn analyse_err(sql: &str) -> SqlError {
    let statements = parse_statements(sql).unwrap();
    let Statement::CreateMonitor(m) = &statements[0] else {
        panic!("not a monitor: {sql}")
    };
    analyze_monitor(&m.query).unwrap_err()
}

/// `parse_duration_ms` sliced its input at byte 8 to look for a leading INTERVAL keyword,
/// inside a multi-byte character.
#[test]
fn duration_with_multibyte_character_at_byte_8() {
    let e =
        parse_err("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1234567é')");
    assert!(e.message.contains("1234567é"), "{e}");
    let e = driftwatch_sql::parse_duration_ms("intervalé").unwrap_err();
    assert!(e.contains("intervalé"), "{e}");
}

/// The "needs a unit" message sliced the whole duration text at the length of a later
/// number, inside a multi-byte space.
#[test]
fn duration_unit_message_after_multibyte_space() {
    let e = driftwatch_sql::parse_duration_ms("1s\u{3000}1234").unwrap_err();
    assert!(e.contains("needs a unit, e.g. '1234 seconds'"), "{e}");
}

/// The typo hint for table functions sliced the first 3 bytes of the name.
#[test]
fn table_function_with_multibyte_name() {
    let e = analyse_err("CREATE MONITOR m AS SELECT * FROM ééa(src)");
    assert!(!e.message.is_empty());
    let e = analyse_err("CREATE MONITOR m AS SELECT * FROM TUMBLÉ(src, ts, INTERVAL '1 s')");
    assert!(
        e.message.contains("TUMBLÉ") || e.message.contains("TUMBLE"),
        "{e}"
    );
}

/// `INTERVAL 'NaN' SECOND` was a zero-length duration (NaN rounds to 0 ms).
#[test]
fn nan_interval_is_an_error() {
    let e =
        parse_err("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL 'NaN' SECOND)");
    assert!(e.message.contains("not a number"), "{e}");
    let e = analyse_err(
        "CREATE MONITOR m AS SELECT window_start, window_end, count(*) \
         FROM TUMBLE(src, ts, INTERVAL 'NaN' SECOND) GROUP BY window_start, window_end",
    );
    assert!(e.message.contains("not a number"), "{e}");
}

/// Found by `sql_planner` (release, 108 242 runs): an empty SELECT list planned into a monitor
/// with no result column.
#[test]
fn empty_select_list_is_a_plan_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for sql in [
        "CREATE MONITOR m AS SELECT FROM src",
        "CREATE MONITOR m AS SELECT FROM TUMBLE(src, ts, INTERVAL '1 s') \
         GROUP BY window_start, window_end",
    ] {
        let statements = parse_statements(sql).unwrap();
        let Statement::CreateMonitor(m) = &statements[0] else {
            panic!("not a monitor: {sql}")
        };
        let input = analyze_monitor_with(&m.query, &|n| n == "src").unwrap();
        let options = MonitorPlanOptions::default();
        let planned = rt.block_on(plan_monitor(
            &m.name,
            &input,
            fuzz_source(),
            None,
            &options,
            &fuzz_baselines(),
        ));
        let Err(e) = planned else {
            panic!("{sql}: planned a monitor without columns")
        };
        assert!(e.message.contains("SELECT list is empty"), "{sql}: {e}");
    }
}
