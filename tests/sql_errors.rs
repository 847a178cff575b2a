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
