//! Statement parsing tests.

use arrow::datatypes::{DataType, TimeUnit};
use driftwatch_sql::*;

const SCRIPT: &str = r#"
-- Driftwatch example (DESIGN.md §3)
CREATE SOURCE iris (
    request_id   VARCHAR,
    ts           TIMESTAMP NOT NULL,
    sepal_length DOUBLE, sepal_width DOUBLE, petal_length DOUBLE, petal_width DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '6 seconds'
) WITH (connector = 'kafka', brokers = 'localhost:9092', topic = 'iris-inference',
        format = 'inference-log', idle_timeout = '10 seconds');

CREATE BASELINE iris_train FROM 'examples/iris/train.csv';

CREATE MONITOR iris_stats AS
SELECT window_start, window_end, count(*) AS n,
       avg(sepal_length), stddev(sepal_length), approx_percentile_cont(sepal_length, 0.5)
FROM TUMBLE(iris, ts, INTERVAL '15 seconds')
GROUP BY window_start, window_end;

CREATE MONITOR iris_drift WITH (sink = 'kafka', topic = 'iris-drift') AS
SELECT window_start, window_end, feature,
       wasserstein(value, 'iris_train') AS w, ks_pvalue(value, 'iris_train') AS ks_p
FROM HOP(features(iris), ts, INTERVAL '5 seconds', INTERVAL '15 seconds')
GROUP BY window_start, window_end, feature;

CREATE MONITOR iris_outliers AS            -- no window: one result per request, at once
SELECT request_id, ts, mahalanobis(sepal_length, sepal_width, petal_length, petal_width,
                                   'iris_train') AS d
FROM iris WHERE zscore(sepal_length, 'iris_train') > 3;
"#;

fn one(sql: &str) -> Statement {
    let mut v = parse_statements(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(v.len(), 1, "{sql}");
    v.remove(0)
}

fn err(sql: &str) -> SqlError {
    match parse_statements(sql) {
        Ok(v) => panic!("expected an error for {sql}, got {v:?}"),
        Err(e) => e,
    }
}

fn loc(line: u64, column: u64) -> Option<Location> {
    Some(Location::new(line, column))
}

#[test]
fn design_script() {
    let stmts = parse_statements(SCRIPT).unwrap();
    assert_eq!(stmts.len(), 5);

    let Statement::CreateSource(src) = &stmts[0] else {
        panic!("{:?}", stmts[0])
    };
    assert_eq!(src.name, "iris");
    assert_eq!(src.location, Location::new(3, 1));
    let names: Vec<_> = src.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "request_id",
            "ts",
            "sepal_length",
            "sepal_width",
            "petal_length",
            "petal_width"
        ]
    );
    assert_eq!(src.columns[0].data_type, DataType::Utf8);
    assert_eq!(
        src.columns[1].data_type,
        DataType::Timestamp(TimeUnit::Millisecond, None)
    );
    assert!(!src.columns[1].nullable);
    assert!(src.columns[2].nullable);
    assert_eq!(src.columns[2].data_type, DataType::Float64);
    assert_eq!(src.columns[1].location, Location::new(5, 5));
    let wm = src.watermark.as_ref().unwrap();
    assert_eq!((wm.column.as_str(), wm.delay_ms), ("ts", 6_000));
    assert_eq!(wm.location, Location::new(7, 5));
    assert_eq!(src.options.get_str("connector").as_deref(), Some("kafka"));
    assert_eq!(
        src.options.get_str("brokers").as_deref(),
        Some("localhost:9092")
    );
    assert_eq!(
        src.options.get_duration_ms("idle_timeout").unwrap(),
        Some(10_000)
    );
    assert!(src.sql.starts_with("CREATE SOURCE iris ("));
    assert!(src.sql.ends_with("idle_timeout = '10 seconds')"));
    assert!(!src.or_replace && !src.if_not_exists);
    assert_eq!(src.arrow_schema().fields().len(), 6);

    let Statement::CreateBaseline(b) = &stmts[1] else {
        panic!()
    };
    assert_eq!(b.name, "iris_train");
    assert_eq!(
        b.input,
        BaselineInput::Path("examples/iris/train.csv".into())
    );
    assert_eq!(
        b.sql,
        "CREATE BASELINE iris_train FROM 'examples/iris/train.csv'"
    );

    let Statement::CreateMonitor(m) = &stmts[2] else {
        panic!()
    };
    assert_eq!(m.name, "iris_stats");
    assert!(m.options.is_empty());
    assert!(m.query_sql.starts_with("SELECT window_start"));
    assert!(m.query_sql.ends_with("GROUP BY window_start, window_end"));
    assert!(m.sql.starts_with("CREATE MONITOR iris_stats AS\nSELECT"));

    let Statement::CreateMonitor(m) = &stmts[3] else {
        panic!()
    };
    assert_eq!(m.options.get_str("sink").as_deref(), Some("kafka"));
    assert_eq!(m.options.get_str("topic").as_deref(), Some("iris-drift"));
    let input = analyze_monitor(&m.query).unwrap();
    assert!(input.long_view);
    assert_eq!(input.source, "iris");

    let Statement::CreateMonitor(m) = &stmts[4] else {
        panic!()
    };
    assert!(m.sql.ends_with("> 3"), "{}", m.sql);
    let input = analyze_monitor(&m.query).unwrap();
    assert_eq!(input.window, None);
    assert_eq!(input.source, "iris");
}

#[test]
fn create_source_variants() {
    let Statement::CreateSource(s) =
        one("create or replace source \"Mixed\" (\"Col\" int, b BIGINT NULL) with (Format = json, n = 3, flag = true)")
    else {
        panic!()
    };
    assert!(s.or_replace);
    assert_eq!(s.name, "Mixed");
    assert_eq!(s.columns[0].name, "Col");
    assert_eq!(s.columns[0].data_type, DataType::Int32);
    assert_eq!(s.columns[1].data_type, DataType::Int64);
    assert!(s.watermark.is_none());
    assert_eq!(
        s.options.get("format").unwrap().value,
        OptionLiteral::Ident("json".into())
    );
    assert_eq!(s.options.get_usize("n").unwrap(), Some(3));
    assert_eq!(s.options.get_bool("flag").unwrap(), Some(true));

    let Statement::CreateSource(s) =
        one("CREATE SOURCE IF NOT EXISTS Events (T timestamp(3), WATERMARK FOR t AS t)")
    else {
        panic!()
    };
    assert!(s.if_not_exists);
    assert_eq!(s.name, "events");
    assert_eq!(s.watermark.unwrap().delay_ms, 0);

    let Statement::CreateSource(s) = one("CREATE SOURCE s WITH (connector = 'http')") else {
        panic!()
    };
    assert!(s.columns.is_empty());

    let Statement::CreateSource(s) = one(
        "CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND, d DECIMAL(10,2))",
    ) else {
        panic!()
    };
    assert_eq!(s.watermark.unwrap().delay_ms, 2_000);
    assert_eq!(s.columns[1].data_type, DataType::Decimal128(10, 2));
}

#[test]
fn create_baseline_and_monitor_variants() {
    let Statement::CreateBaseline(b) = one(
        "CREATE OR REPLACE BASELINE b WITH (format = 'parquet') AS SELECT * FROM t WHERE x > 1",
    ) else {
        panic!()
    };
    assert!(b.or_replace);
    assert_eq!(b.options.get_str("format").as_deref(), Some("parquet"));
    let BaselineInput::Query { query, sql } = &b.input else {
        panic!()
    };
    assert_eq!(sql, "SELECT * FROM t WHERE x > 1");
    assert_eq!(query.to_string(), "SELECT * FROM t WHERE x > 1");

    let Statement::CreateMonitor(m) =
        one("create monitor M with (emit_delay = INTERVAL '3' SECOND) as (select 1 from s)")
    else {
        panic!()
    };
    assert_eq!(m.name, "m");
    assert_eq!(
        m.options.get_duration_ms("emit_delay").unwrap(),
        Some(3_000)
    );
    assert_eq!(m.query_sql, "(select 1 from s)");
}

#[test]
fn drop_show_other() {
    let stmts = parse_statements(
        "DROP SOURCE iris; drop baseline if exists T; DROP MONITOR m;\n\
         SHOW SOURCES; show baselines; SHOW MONITORS; SELECT * FROM t; SHOW TABLES; DROP TABLE t;;",
    )
    .unwrap();
    assert_eq!(stmts.len(), 9);
    assert_eq!(
        stmts[0],
        Statement::Drop {
            kind: ObjectKind::Source,
            name: "iris".into(),
            if_exists: false
        }
    );
    assert_eq!(
        stmts[1],
        Statement::Drop {
            kind: ObjectKind::Baseline,
            name: "t".into(),
            if_exists: true
        }
    );
    assert_eq!(
        stmts[2],
        Statement::Drop {
            kind: ObjectKind::Monitor,
            name: "m".into(),
            if_exists: false
        }
    );
    assert_eq!(stmts[3], Statement::Show(ObjectKind::Source));
    assert_eq!(stmts[4], Statement::Show(ObjectKind::Baseline));
    assert_eq!(stmts[5], Statement::Show(ObjectKind::Monitor));
    for s in &stmts[6..] {
        assert!(matches!(s, Statement::Other(_)), "{s:?}");
    }
    assert!(parse_statements("").unwrap().is_empty());
    assert!(parse_statements("  -- only a comment\n ; /* block */ ")
        .unwrap()
        .is_empty());
}

#[test]
fn error_bad_keyword() {
    let e = err("SELECT 1;\n  CREATE MONITR m AS SELECT 1");
    assert_eq!(e.location, loc(2, 10));
    assert!(e.message.contains("did you mean MONITOR?"), "{e}");
    let e = err("SHOW SOURCE");
    assert_eq!(e.location, loc(1, 6));
    assert!(e.message.contains("did you mean SOURCES?"), "{e}");
    // sqlparser syntax errors keep their location
    let e = err("SELECT 1;\nSELEC x FROM t");
    assert_eq!(e.location, loc(2, 1));
    assert!(e.to_string().starts_with("line 2, column 1: "), "{e}");
}

#[test]
fn error_unknown_type() {
    let e = err("CREATE SOURCE s (\n  a INT,\n  b   BLOB\n)");
    assert_eq!(e.location, loc(3, 7));
    assert!(e.message.contains("unsupported column type BLOB"), "{e}");
}

#[test]
fn error_watermark() {
    // missing delay interval
    let e = err("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts)");
    assert_eq!(e.location, loc(1, 48));
    assert!(e.message.contains("expected AS"), "{e}");
    let e = err("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts - 6)");
    assert_eq!(e.location, loc(1, 57));
    assert!(e.message.contains("INTERVAL"), "{e}");
    let e = err("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts -)");
    assert_eq!(e.location, loc(1, 56));
    let e = err("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts + INTERVAL '1' SECOND)");
    assert_eq!(e.location, loc(1, 52));
    let e = err("CREATE SOURCE s (ts TIMESTAMP, x INT, WATERMARK FOR x AS x)");
    assert_eq!(e.location, loc(1, 53));
    assert!(e.message.contains("TIMESTAMP"), "{e}");
    let e = err("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR tss AS tss)");
    assert_eq!(e.location, loc(1, 46));
    let e = err("CREATE SOURCE s (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' MONTH)");
    assert!(e.message.contains("months"), "{e}");
    assert_eq!(e.location, loc(1, 66));
}

#[test]
fn error_option_values() {
    let e = err("CREATE SOURCE s (x INT)\nWITH (topic = 'a',\n      brokers = )");
    assert_eq!(e.location, loc(3, 17));
    assert!(
        e.message.contains("invalid value for option 'brokers'"),
        "{e}"
    );
    let e = err("CREATE SOURCE s (x INT) WITH (topic = 'a', topic = 'b')");
    assert_eq!(e.location, loc(1, 44));
    let Statement::CreateSource(s) =
        one("CREATE SOURCE s (x INT)\n  WITH (idle_timeout = 'ten seconds', n = 'x')")
    else {
        panic!()
    };
    let e = s.options.get_duration_ms("idle_timeout").unwrap_err();
    assert_eq!(e.location, loc(2, 24));
    let e = s.options.get_usize("n").unwrap_err();
    assert_eq!(e.location, loc(2, 43));
    let e = s
        .options
        .check_known(&["idle_timeout", "m"], "source")
        .unwrap_err();
    assert_eq!(e.location, loc(2, 39));
    assert!(e.message.contains("did you mean 'm'"), "{e}");
}

#[test]
fn error_misc() {
    let e = err("CREATE SOURCE s (x INT PRIMARY KEY)");
    assert_eq!(e.location, loc(1, 24));
    let e = err("CREATE SOURCE s (x INT, x DOUBLE)");
    assert_eq!(e.location, loc(1, 25));
    let e = err("CREATE MONITOR m SELECT 1");
    assert_eq!(e.location, loc(1, 18));
    let e = err("CREATE BASELINE b FROM t");
    assert_eq!(e.location, loc(1, 24));
    assert!(e.message.contains("AS SELECT * FROM t"), "{e}");
    let e = err("CREATE OR REPLACE SOURCE IF NOT EXISTS s (x INT)");
    assert_eq!(e.location, loc(1, 26));
    let e = err("CREATE SOURCE a.b (x INT)");
    assert_eq!(e.location, loc(1, 15));
    let e = err("DROP SOURCE s t");
    assert_eq!(e.location, loc(1, 15));
    let e = err("CREATE MONITOR m AS SELECT");
    assert_eq!(e.location, loc(1, 27));
    let e = err("SELECT 'unterminated");
    assert_eq!(e.location, loc(1, 8));
}

#[test]
fn explain_and_show_create() {
    assert_eq!(
        one("EXPLAIN MONITOR Iris_Drift"),
        Statement::Explain(ExplainTarget::Monitor("iris_drift".into()))
    );
    assert_eq!(
        one("explain monitor \"M\";"),
        Statement::Explain(ExplainTarget::Monitor("M".into()))
    );
    let sql = "EXPLAIN  CREATE OR REPLACE MONITOR m WITH (allowed_lateness = '1 second') AS \
               SELECT window_start, count(*) FROM TUMBLE(s, ts, INTERVAL '5 seconds') \
               GROUP BY window_start";
    let Statement::Explain(ExplainTarget::Create(m)) = one(sql) else {
        panic!("EXPLAIN CREATE MONITOR")
    };
    assert_eq!(m.name, "m");
    assert!(m.or_replace);
    assert!(
        m.sql.starts_with("CREATE OR REPLACE MONITOR m WITH"),
        "{}",
        m.sql
    );
    assert!(m.query_sql.starts_with("SELECT window_start"));
    for (sql, kind, name) in [
        ("SHOW CREATE SOURCE Iris", ObjectKind::Source, "iris"),
        (
            "show create baseline \"Train\"",
            ObjectKind::Baseline,
            "Train",
        ),
        ("SHOW CREATE MONITOR m", ObjectKind::Monitor, "m"),
    ] {
        assert_eq!(
            one(sql),
            Statement::ShowCreate {
                kind,
                name: name.into()
            },
            "{sql}"
        );
    }
    // Other EXPLAIN / SHOW CREATE statements stay sqlparser's.
    assert!(matches!(one("EXPLAIN SELECT 1"), Statement::Other(_)));
    assert!(matches!(one("SHOW CREATE TABLE t"), Statement::Other(_)));
    let e = err("EXPLAIN CREATE SOURCE s (x INT)");
    assert_eq!(e.location, loc(1, 16));
    assert!(e.message.contains("SHOW CREATE SOURCE"), "{}", e.message);
    let e = err("EXPLAIN MONITOR");
    assert!(e.location.is_some(), "{e}");
    let e = err("EXPLAIN CREATE MONITOR m SELECT 1");
    assert!(e.message.contains("expected AS SELECT"), "{}", e.message);
}
