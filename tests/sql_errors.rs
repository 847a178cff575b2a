//! Mistakes in monitor files are rejected at CREATE time with messages that locate them,
//! name the monitor and say how to fix them.

use driftwatch::runtime::{Driftwatch, RuntimeConfig};

const SOURCE: &str = "CREATE SOURCE iris (request_id VARCHAR, ts TIMESTAMP, x DOUBLE, y DOUBLE,\n\
                      WATERMARK FOR ts AS ts - INTERVAL '6 seconds') WITH (connector = 'http');\n";

async fn error_of(sql: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().to_path_buf(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let err = system
        .execute_script(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("expected an error for:\n{sql}"));
    system.shutdown_token().cancel();
    err.to_string()
}

fn assert_contains(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "message {message:?} lacks {p:?}");
    }
}

#[tokio::test]
async fn syntax_error_points_at_line_and_column() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS\nSELECT count(* FROM iris"
    ))
    .await;
    assert_contains(&msg, &["line 4"]);
    assert!(msg.contains("column"), "{msg}");
}

#[tokio::test]
async fn unknown_column_is_named_with_the_monitor() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT window_start, window_end, avg(sepal) \
         FROM TUMBLE(iris, ts, INTERVAL '15 seconds') GROUP BY window_start, window_end"
    ))
    .await;
    assert_contains(&msg, &["monitor 'm'", "sepal"]);
}

#[tokio::test]
async fn unknown_function_is_named_with_the_monitor() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT frobnicate(x) FROM iris"
    ))
    .await;
    assert_contains(&msg, &["monitor 'm'", "frobnicate"]);
}

#[tokio::test]
async fn unknown_source_lists_the_known_ones() {
    let msg = error_of(&format!("{SOURCE}CREATE MONITOR m AS SELECT x FROM irsi")).await;
    assert_contains(&msg, &["irsi"]);
}

#[tokio::test]
async fn unknown_baseline_is_named_with_the_monitor() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT window_start, window_end, wasserstein(x, 'nope') \
         FROM TUMBLE(iris, ts, INTERVAL '15 seconds') GROUP BY window_start, window_end"
    ))
    .await;
    assert_contains(&msg, &["monitor 'm'", "nope"]);
}

#[tokio::test]
async fn window_over_source_without_watermark_says_how_to_declare_one() {
    let msg = error_of(
        "CREATE SOURCE s (ts TIMESTAMP, x DOUBLE) WITH (connector = 'http');\n\
         CREATE MONITOR m AS SELECT window_start, window_end, count(*) \
         FROM TUMBLE(s, ts, INTERVAL '15 seconds') GROUP BY window_start, window_end",
    )
    .await;
    assert_contains(&msg, &["monitor 'm'", "no watermark", "WATERMARK FOR ts"]);
}

#[tokio::test]
async fn window_over_a_column_other_than_the_watermark() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT window_start, window_end, count(*) \
         FROM TUMBLE(iris, x, INTERVAL '15 seconds') GROUP BY window_start, window_end"
    ))
    .await;
    assert_contains(&msg, &["monitor 'm'", "'x'", "'ts'"]);
}

#[tokio::test]
async fn watermark_on_a_non_timestamp_column() {
    let msg = error_of(
        "CREATE SOURCE s (ts VARCHAR, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second') \
         WITH (connector = 'http')",
    )
    .await;
    assert!(msg.to_lowercase().contains("timestamp"), "{msg}");
}

#[tokio::test]
async fn hop_slide_larger_than_size_is_located() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT window_start, window_end, count(*)\n\
         FROM HOP(iris, ts, INTERVAL '20 seconds', INTERVAL '10 seconds') GROUP BY window_start, window_end"
    ))
    .await;
    assert_contains(&msg, &["line 4", "slide"]);
}

#[tokio::test]
async fn aggregate_without_window_is_rejected() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT count(*) FROM iris"
    ))
    .await;
    assert_contains(&msg, &["monitor 'm'", "window"]);
}

#[tokio::test]
async fn windowed_monitor_must_group_by_window() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT request_id, count(*) \
         FROM TUMBLE(iris, ts, INTERVAL '15 seconds') GROUP BY request_id"
    ))
    .await;
    assert_contains(&msg, &["monitor 'm'", "window_start"]);
}

#[tokio::test]
async fn order_by_is_rejected_in_streaming_monitors() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT x FROM iris ORDER BY x"
    ))
    .await;
    assert_contains(&msg, &["monitor 'm'", "ORDER BY"]);
}

#[tokio::test]
async fn unknown_option_suggests_the_valid_ones() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m WITH (allowed_latenes = '1s') AS SELECT x FROM iris"
    ))
    .await;
    assert_contains(&msg, &["allowed_latenes", "allowed_lateness"]);
}

#[tokio::test]
async fn unknown_connector_lists_the_available_ones() {
    let msg = error_of("CREATE SOURCE s (x DOUBLE) WITH (connector = 'carrier-pigeon')").await;
    assert_contains(&msg, &["carrier-pigeon", "file", "http"]);
}

#[tokio::test]
async fn duplicate_monitor_suggests_or_replace() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT x FROM iris; CREATE MONITOR m AS SELECT y FROM iris"
    ))
    .await;
    assert_contains(&msg, &["already exists", "OR REPLACE"]);
}

#[tokio::test]
async fn missing_group_by_says_what_to_group_by() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT window_start, window_end, count(*) \
         FROM TUMBLE(iris, ts, INTERVAL '10 seconds')"
    ))
    .await;
    assert_contains(
        &msg,
        &[
            "monitor 'm'",
            "must GROUP BY window_start, window_end",
            "window_start is in the SELECT list",
        ],
    );
    assert!(!msg.contains("wildcard"), "{msg}");
}

#[tokio::test]
async fn ungrouped_column_is_named() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT window_start, window_end, request_id, count(*) \
         FROM TUMBLE(iris, ts, INTERVAL '10 seconds') AS w GROUP BY window_start, window_end"
    ))
    .await;
    assert_contains(
        &msg,
        &[
            "monitor 'm'",
            "column request_id must appear in GROUP BY",
            "any_value(request_id)",
        ],
    );
    assert!(!msg.contains("wildcard"), "{msg}");
    let msg = error_of(&format!(
        "{SOURCE}CREATE MONITOR m AS SELECT window_start, window_end, count(*) \
         FROM TUMBLE(iris, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end \
         HAVING x > 1"
    ))
    .await;
    assert_contains(
        &msg,
        &["column x must appear in GROUP BY", "used in HAVING"],
    );
}

// ---------------------------------------------------------------------------------------
// Plans that cannot stream: rejected at CREATE with the construct, its position (the
// monitor starts on line 3, after the two lines of SOURCE) and what to write instead.

/// The error of `CREATE MONITOR m AS\n<select>` (the select on line 4).
async fn stream_error(select: &str) -> String {
    error_of(&format!("{SOURCE}CREATE MONITOR m AS\n{select}")).await
}

/// `line 4, column C` of the first `needle` in `select`.
fn at(select: &str, needle: &str) -> String {
    after(select, needle, 0)
}

/// `line 4, column C` of the character `skip` characters into the first `needle`.
fn after(select: &str, needle: &str, skip: usize) -> String {
    let column = select
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {select}"))
        + 1
        + skip;
    format!("line 4, column {column}: monitor 'm': ")
}

#[tokio::test]
async fn over_window_function_is_rejected_with_the_alternative() {
    let q = "SELECT x, sum(x) OVER () AS total FROM iris";
    let msg = stream_error(q).await;
    assert_contains(
        &msg,
        &[
            &at(q, "sum"),
            "sum(…) OVER (…) cannot stream",
            "TUMBLE",
            "page_hinkley_stream",
        ],
    );
    let q = "SELECT x, row_number() OVER (PARTITION BY request_id ORDER BY ts) AS r FROM iris";
    assert_contains(&stream_error(q).await, &[&at(q, "row_number"), "OVER"]);
}

#[tokio::test]
async fn join_with_a_table_is_rejected_with_a_baseline_hint() {
    let q = "SELECT i.x FROM iris i JOIN (VALUES (1.0)) AS t(x) ON i.x = t.x";
    let msg = stream_error(q).await;
    assert_contains(
        &msg,
        &[
            &at(q, "(1.0)"),
            "JOIN is not supported in a monitor yet",
            "CREATE BASELINE",
            "zscore(x, 'ref')",
        ],
    );
}

#[tokio::test]
async fn self_join_of_the_stream_is_rejected() {
    let q = "SELECT a.x FROM iris a LEFT JOIN iris b ON a.request_id = b.request_id";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "iris b"), "JOIN is not supported"],
    );
}

#[tokio::test]
async fn comma_join_is_rejected() {
    let q = "SELECT x, n FROM iris, generate_series(1, 3) AS g(n)";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "generate_series"), "FROM a, b (a cross join)"],
    );
}

#[tokio::test]
async fn join_of_two_sources_is_rejected() {
    let msg = error_of(&format!(
        "{SOURCE}CREATE SOURCE other (ts TIMESTAMP, x DOUBLE) WITH (connector = 'http');\n\
         CREATE MONITOR m AS\nSELECT iris.x FROM iris JOIN other ON iris.x = other.x"
    ))
    .await;
    assert_contains(
        &msg,
        &[
            "line 5, column 30",
            "JOIN is not supported",
            "stream–stream join",
        ],
    );
}

#[tokio::test]
async fn union_is_rejected_with_one_monitor_per_branch() {
    let q = "SELECT x FROM iris WHERE x > 1 UNION ALL SELECT y FROM iris";
    let msg = stream_error(q).await;
    assert_contains(
        &msg,
        &[
            &at(q, "SELECT y"),
            "UNION is not supported",
            "one monitor per branch",
        ],
    );
    let q = "SELECT x FROM iris EXCEPT SELECT y FROM iris";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "SELECT y"), "EXCEPT is not supported"],
    );
    let q = "SELECT x FROM iris INTERSECT SELECT y FROM iris";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "SELECT y"), "INTERSECT is not supported"],
    );
}

#[tokio::test]
async fn order_by_is_located_and_points_at_the_result_table() {
    let q = "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(iris, ts, INTERVAL '1 minute') \
             GROUP BY window_start, window_end ORDER BY n";
    let msg = stream_error(q).await;
    assert_contains(
        &msg,
        &[
            &after(q, "ORDER BY n", 9),
            "ORDER BY cannot stream",
            "query the result table",
        ],
    );
}

#[tokio::test]
async fn limit_and_offset_are_rejected() {
    let q = "SELECT x FROM iris LIMIT 10";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "10"), "LIMIT cannot stream", "result table"],
    );
    let q = "SELECT x FROM iris OFFSET 5";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "5"), "OFFSET cannot stream"],
    );
}

#[tokio::test]
async fn distinct_without_a_window_is_rejected() {
    let q = "SELECT DISTINCT request_id FROM iris";
    let msg = stream_error(q).await;
    assert_contains(
        &msg,
        &[
            &at(q, "SELECT"),
            "SELECT DISTINCT cannot stream",
            "GROUP BY window_start, window_end",
        ],
    );
    let q =
        "SELECT DISTINCT window_start, count(*) AS n FROM TUMBLE(iris, ts, INTERVAL '1 minute') \
             GROUP BY window_start, window_end";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "SELECT"), "already gives each distinct combination"],
    );
}

#[tokio::test]
async fn subquery_over_the_stream_is_rejected() {
    let q = "SELECT x FROM iris WHERE x > (SELECT avg(x) FROM iris)";
    let msg = stream_error(q).await;
    assert_contains(
        &msg,
        &[&at(q, "SELECT avg"), "subquery over the stream", "baseline"],
    );
    let q = "SELECT x FROM iris WHERE request_id IN (SELECT request_id FROM iris WHERE y > 1)";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "SELECT request_id FROM"), "subquery over the stream"],
    );
}

#[tokio::test]
async fn recursive_cte_is_rejected() {
    let q = "WITH RECURSIVE r AS (SELECT x FROM iris UNION ALL SELECT x + 1 FROM r WHERE x < 3) SELECT x FROM r";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "WITH"), "WITH RECURSIVE cannot stream", "plain WITH"],
    );
}

#[tokio::test]
async fn grouping_sets_are_rejected_with_their_position() {
    let q = "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(iris, ts, INTERVAL '1 minute') \
             GROUP BY ROLLUP(window_start, window_end)";
    assert_contains(
        &stream_error(q).await,
        &[
            &after(q, "ROLLUP(", 7),
            "ROLLUP is not supported",
            "one monitor per grouping",
        ],
    );
    let q = "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(iris, ts, INTERVAL '1 minute') \
             GROUP BY GROUPING SETS ((window_start, window_end), (window_start))";
    assert_contains(
        &stream_error(q).await,
        &[
            &after(q, "GROUPING SETS ((", 16),
            "GROUPING SETS is not supported",
        ],
    );
}

#[tokio::test]
async fn group_by_without_a_window_is_located() {
    let q = "SELECT request_id, count(*) AS n FROM iris GROUP BY request_id";
    assert_contains(
        &stream_error(q).await,
        &[&after(q, "BY request_id", 3), "GROUP BY needs a window"],
    );
}

#[tokio::test]
async fn now_and_random_are_rejected() {
    let q = "SELECT x FROM iris WHERE ts > now() - INTERVAL '1 hour'";
    assert_contains(
        &stream_error(q).await,
        &[&at(q, "now"), "now() is not allowed", "event time"],
    );
    let q = "SELECT x, random() AS r FROM iris";
    assert_contains(
        &stream_error(q).await,
        &[
            &at(q, "random"),
            "random() is not allowed",
            "md5(request_id)",
        ],
    );
}

#[tokio::test]
async fn constructs_that_stream_still_compile() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().to_path_buf(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system
        .execute_script(&format!(
            "{SOURCE}CREATE MONITOR cte AS WITH w AS (SELECT * FROM TUMBLE(iris, ts, INTERVAL '1 minute') WHERE x > 0) \
             SELECT window_start, window_end, count(*) AS n, sum(CASE WHEN y > 1 THEN 1 ELSE 0 END) AS big, \
             count(DISTINCT request_id) AS ids FROM w GROUP BY window_start, window_end HAVING count(*) > 1;\n\
             CREATE MONITOR rows AS SELECT s.request_id, s.x FROM (SELECT * FROM iris WHERE x > 0) AS s \
             WHERE s.request_id IN ('a', 'b') OR s.x > (SELECT 2.0);"
        ))
        .await
        .unwrap();
    system.shutdown_token().cancel();
}
