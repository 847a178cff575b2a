//! analyze_monitor tests.

use driftwatch_sql::*;

fn query(select: &str) -> sqlparser::ast::Query {
    let sql = format!("CREATE MONITOR m AS {select}");
    let mut stmts = parse_statements(&sql).unwrap_or_else(|e| panic!("{select}: {e}"));
    let Statement::CreateMonitor(m) = stmts.remove(0) else {
        panic!()
    };
    *m.query
}

fn analyze(select: &str) -> MonitorInput {
    analyze_monitor(&query(select)).unwrap_or_else(|e| panic!("{select}: {e}"))
}

fn analyze_err(select: &str) -> SqlError {
    match analyze_monitor(&query(select)) {
        Ok(m) => panic!("expected an error for {select}, got {m:?}"),
        Err(e) => e,
    }
}

/// Column of `needle` in `CREATE MONITOR m AS {select}` (1-based, line 1).
fn col(select: &str, needle: &str) -> Option<Location> {
    let prefix = "CREATE MONITOR m AS ".len();
    let at = select.find(needle).unwrap();
    Some(Location::new(1, (prefix + at + 1) as u64))
}

#[test]
fn tumble() {
    let m = analyze(
        "SELECT window_start, window_end, count(*) FROM TUMBLE(Iris, TS, INTERVAL '15 seconds') GROUP BY window_start, window_end",
    );
    assert_eq!(m.source, "iris");
    assert_eq!(
        m.window,
        Some(WindowSpec::Tumble {
            time_column: "ts".into(),
            size_ms: 15_000
        })
    );
    assert!(!m.long_view);
    assert_eq!(
        m.query.to_string(),
        "SELECT window_start, window_end, count(*) FROM Iris GROUP BY window_start, window_end"
    );
    assert_eq!(m.tables_referenced, vec!["iris".to_string()]);
    assert_eq!(m.location, Some(Location::new(1, 68)));
}

#[test]
fn interval_spellings() {
    for (iv, ms) in [
        ("INTERVAL '15 seconds'", 15_000),
        ("INTERVAL '15' SECOND", 15_000),
        ("INTERVAL '1 minute'", 60_000),
        ("INTERVAL '500 milliseconds'", 500),
        ("INTERVAL '1' HOUR", 3_600_000),
    ] {
        let m = analyze(&format!(
            "SELECT count(*) FROM TUMBLE(s, ts, {iv}) GROUP BY window_start"
        ));
        assert_eq!(
            m.window,
            Some(WindowSpec::Tumble {
                time_column: "ts".into(),
                size_ms: ms
            }),
            "{iv}"
        );
    }
}

#[test]
fn hop_and_session() {
    let m = analyze("SELECT * FROM HOP(s, ts, INTERVAL '5 seconds', INTERVAL '15 seconds')");
    assert_eq!(
        m.window,
        Some(WindowSpec::Hop {
            time_column: "ts".into(),
            slide_ms: 5_000,
            size_ms: 15_000
        })
    );
    assert_eq!(m.window.as_ref().unwrap().pane_ms(), Some(5_000));
    let m = analyze("SELECT * FROM HOP(s, ts, INTERVAL '4 seconds', INTERVAL '10 seconds')");
    assert_eq!(m.window.as_ref().unwrap().pane_ms(), Some(2_000));
    let m = analyze("SELECT * FROM SESSION(s, ts, INTERVAL '30 seconds') AS x");
    assert_eq!(
        m.window,
        Some(WindowSpec::Session {
            time_column: "ts".into(),
            gap_ms: 30_000
        })
    );
    assert_eq!(m.query.to_string(), "SELECT * FROM s AS x");
}

#[test]
fn features_and_nested() {
    let m = analyze("SELECT feature, value FROM features(iris) WHERE value > 1");
    assert!(m.long_view);
    assert_eq!(m.window, None);
    assert_eq!(
        m.query.to_string(),
        "SELECT feature, value FROM iris WHERE value > 1"
    );
    // A group of a stream is never complete: GROUP BY needs a window.
    let q = "SELECT feature, avg(value) FROM features(iris) GROUP BY feature";
    let e = analyze_err(q);
    let by = col(q, "BY feature").unwrap();
    assert_eq!(e.location, Some(Location::new(1, by.column + 3)));
    assert!(e.message.contains("GROUP BY needs a window"), "{e}");

    let m = analyze(
        "SELECT window_start, feature FROM HOP(features(iris), ts, INTERVAL '5 seconds', INTERVAL '15 seconds') f \
         GROUP BY window_start, feature",
    );
    assert!(m.long_view);
    assert_eq!(m.source, "iris");
    assert!(matches!(m.window, Some(WindowSpec::Hop { .. })));
    assert!(
        m.query.to_string().contains("FROM iris f GROUP BY"),
        "{}",
        m.query
    );
}

#[test]
fn alias_and_row_level() {
    let m = analyze("SELECT t.x FROM TUMBLE(s, ts, INTERVAL '1' MINUTE) AS t WHERE t.x > 1");
    assert_eq!(m.query.to_string(), "SELECT t.x FROM s AS t WHERE t.x > 1");

    let m = analyze("SELECT request_id, zscore(x, 'b') FROM iris WHERE x > 3");
    assert_eq!(m.source, "iris");
    assert_eq!(m.window, None);
    assert!(!m.long_view);
    assert_eq!(
        m.query.to_string(),
        "SELECT request_id, zscore(x, 'b') FROM iris WHERE x > 3"
    );

    // A table next to the source: the first table is the source unless told otherwise.
    let q = query("SELECT * FROM (SELECT * FROM iris) AS i WHERE i.x > 1");
    let m = analyze_monitor(&q).unwrap();
    assert_eq!(m.source, "iris");
    assert_eq!(m.tables_referenced, vec!["iris".to_string()]);
    // Joins are not supported (yet), with any table.
    let sql = "SELECT * FROM iris i JOIN labels l ON i.id = l.id";
    let e = analyze_monitor(&query(sql)).unwrap_err();
    assert_eq!(e.location, col(sql, "labels"));
    assert!(e.message.contains("JOIN is not supported"), "{e}");
}

#[test]
fn flink_spellings_cte_and_subquery() {
    let m = analyze("SELECT * FROM TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '10' SECOND)");
    assert_eq!(
        m.window,
        Some(WindowSpec::Tumble {
            time_column: "ts".into(),
            size_ms: 10_000
        })
    );
    assert_eq!(m.query.to_string(), "SELECT * FROM s");

    let m = analyze("SELECT * FROM TABLE(HOP(TABLE s, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '2' SECOND)) w");
    assert!(matches!(
        m.window,
        Some(WindowSpec::Hop {
            slide_ms: 1_000,
            size_ms: 2_000,
            ..
        })
    ));
    assert_eq!(m.query.to_string(), "SELECT * FROM s w");

    let m = analyze(
        "WITH w AS (SELECT window_start, count(*) AS n FROM TUMBLE(s, ts, INTERVAL '5 seconds') GROUP BY window_start) \
         SELECT * FROM w WHERE n > 10",
    );
    assert_eq!(m.source, "s");
    assert!(m.window.is_some());
    assert_eq!(m.tables_referenced, vec!["s".to_string()]);
    assert!(
        m.query.to_string().contains("FROM s GROUP BY"),
        "{}",
        m.query
    );

    let m = analyze("SELECT * FROM (SELECT x FROM SESSION(s, ts, INTERVAL '1' MINUTE)) AS sub");
    assert!(matches!(
        m.window,
        Some(WindowSpec::Session { gap_ms: 60_000, .. })
    ));
    assert_eq!(
        m.query.to_string(),
        "SELECT * FROM (SELECT x FROM s) AS sub"
    );
}

#[test]
fn errors() {
    let q = "SELECT * FROM HOP(s, ts, INTERVAL '20 seconds', INTERVAL '15 seconds')";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "'20 seconds'"));
    assert!(e.message.contains("did you swap"), "{e}");

    let q = "SELECT * FROM TUMBLING(s, ts, INTERVAL '15 seconds')";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "TUMBLING"));
    assert!(e.message.contains("did you mean TUMBLE?"), "{e}");

    let q = "SELECT * FROM TUMBLE(s, ts + 1, INTERVAL '15 seconds')";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "ts + 1"));
    assert!(e.message.contains("time column"), "{e}");

    let q = "SELECT * FROM TUMBLE(s, ts, INTERVAL '1' MONTH)";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "'1'"));
    assert!(e.message.contains("months"), "{e}");

    let q = "SELECT * FROM TUMBLE(s, ts, INTERVAL '0 seconds')";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "'0 seconds'"));
    assert!(e.message.contains("positive"), "{e}");

    let q = "SELECT * FROM TUMBLE(s, ts)";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "TUMBLE"));
    assert!(e.message.contains("takes 3 arguments"), "{e}");

    let q = "SELECT * FROM TUMBLE(s, ts, INTERVAL '1' SECOND) a JOIN HOP(t, ts, INTERVAL '1' SECOND, INTERVAL '2' SECOND) b ON a.x = b.x";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "HOP"));

    let q = "SELECT * FROM TUMBLE(s, ts, INTERVAL '1' SECOND) a JOIN other b ON a.x = b.x";
    let e = analyze_monitor_with(&query(q), &|n| n == "s" || n == "other").unwrap_err();
    assert_eq!(e.location, col(q, "other"));
    assert!(e.message.contains("exactly one source"), "{e}");
    // ... and joining a non-source table is not supported either
    let e = analyze_monitor_with(&query(q), &|n| n == "s").unwrap_err();
    assert_eq!(e.location, col(q, "other"));
    assert!(e.message.contains("JOIN is not supported"), "{e}");

    let e = analyze_err("SELECT 1");
    assert!(e.message.contains("must read a source"), "{e}");

    let q = "SELECT * FROM TUMBLE(features(s), ts, INTERVAL '1' SECOND) JOIN features(t) ON true";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "features(t)"));

    let q = "SELECT count(*) FROM s GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "TUMBLE"));
    assert!(
        e.message.contains("GROUP BY window_start, window_end"),
        "{e}"
    );

    // other table functions are left alone by the window analysis, but a join with one
    // would collect the stream before producing anything
    let q = "SELECT * FROM s CROSS JOIN generate_series(1, 3)";
    let e = analyze_err(q);
    assert_eq!(e.location, col(q, "generate_series"));
    assert!(e.message.contains("JOIN is not supported"), "{e}");
}
