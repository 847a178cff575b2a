//! `EXPLAIN MONITOR name`, `EXPLAIN CREATE MONITOR …` and `SHOW CREATE SOURCE | BASELINE |
//! MONITOR name` return rows: the streaming plan, the definitions (secrets redacted).

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use driftwatch::runtime::{Driftwatch, Outcome, RuntimeConfig};

const SCRIPT: &str = "
CREATE SOURCE s (ts TIMESTAMP, k VARCHAR, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second')
  WITH (connector = 'http');
CREATE SOURCE kafka_in (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second')
  WITH (connector = 'kafka', brokers = '127.0.0.1:1', topic = 't',
        properties.sasl.password = 'hunter2');
CREATE BASELINE b AS SELECT CAST(column1 AS DOUBLE) AS x FROM (VALUES (1.0), (2.0), (3.0));
CREATE MONITOR m AS
  SELECT window_start, window_end, k, count(*) AS n, ks_pvalue(x, 'b') AS p,
         page_hinkley(array_agg(x ORDER BY ts)) AS changes
  FROM HOP(s, ts, INTERVAL '5 seconds', INTERVAL '10 seconds')
  WHERE x > 0 GROUP BY window_start, window_end, k;
";

fn rows(outcome: &Outcome) -> Vec<(String, String)> {
    let Outcome::Rows(b) = outcome else {
        panic!("expected rows, got {outcome:?}")
    };
    pairs(b)
}

fn pairs(b: &RecordBatch) -> Vec<(String, String)> {
    let a = b.column(0).as_string::<i32>();
    let c = b.column(1).as_string::<i32>();
    (0..b.num_rows())
        .map(|i| (a.value(i).to_string(), c.value(i).to_string()))
        .collect()
}

#[tokio::test]
async fn explain_and_show_create_return_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().to_path_buf(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system.execute_script(SCRIPT).await.unwrap();

    let out = system.execute_script("EXPLAIN MONITOR m").await.unwrap();
    let plan = rows(&out[0]);
    assert_eq!(plan[0].0, "logical_plan");
    assert_eq!(plan[1].0, "physical_plan");
    assert!(
        plan[0]
            .1
            .contains("Aggregate: groupBy=[[s.window_start, s.window_end, s.k]]"),
        "{}",
        plan[0].1
    );
    let physical = &plan[1].1;
    for part in [
        "WindowAggregateExec: window=Hop",
        "count",
        "array_agg",
        "StreamingFilterExec",
        "MonitorInputExec",
    ] {
        assert!(physical.contains(part), "{part} missing in\n{physical}");
    }
    assert!(!physical.contains("SortExec"), "{physical}");

    // A definition not created yet: compiled, not created.
    let out = system
        .execute_script(
            "EXPLAIN CREATE MONITOR other AS SELECT k, zscore(x, 'b') AS z FROM s WHERE x > 2",
        )
        .await
        .unwrap();
    let plan = rows(&out[0]);
    assert!(plan[1].1.contains("MonitorInputExec"), "{}", plan[1].1);
    assert!(!plan[1].1.contains("WindowAggregateExec"), "{}", plan[1].1);
    let shown = system.execute_script("SHOW MONITORS").await.unwrap();
    assert_eq!(rows(&shown[0]).len(), 1, "EXPLAIN CREATE created nothing");
    // Errors are the ones CREATE gives.
    let err = system
        .execute_script("EXPLAIN CREATE MONITOR bad AS SELECT window_start, count(*) FROM TUMBLE(s, ts, INTERVAL '5 seconds')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("must GROUP BY window_start, window_end"),
        "{err}"
    );
    let err = system
        .execute_script("EXPLAIN MONITOR nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown monitor 'nope'"), "{err}");

    let out = system
        .execute_script("SHOW CREATE MONITOR m; SHOW CREATE SOURCE Kafka_In; SHOW CREATE BASELINE b; SHOW SOURCES")
        .await
        .unwrap();
    let monitor = rows(&out[0]);
    assert_eq!(monitor[0].0, "m");
    assert!(
        monitor[0].1.starts_with("CREATE MONITOR m AS"),
        "{}",
        monitor[0].1
    );
    assert!(monitor[0]
        .1
        .contains("page_hinkley(array_agg(x ORDER BY ts))"));
    let source = rows(&out[1]);
    assert!(
        source[0].1.starts_with("CREATE SOURCE kafka_in"),
        "{}",
        source[0].1
    );
    assert!(
        !source[0].1.contains("hunter2"),
        "secret redacted: {}",
        source[0].1
    );
    assert!(
        source[0].1.contains("properties.sasl.password"),
        "{}",
        source[0].1
    );
    let baseline = rows(&out[2]);
    assert!(
        baseline[0].1.starts_with("CREATE BASELINE b AS SELECT"),
        "{}",
        baseline[0].1
    );
    assert!(
        rows(&out[3]).iter().all(|r| !r.1.contains("hunter2")),
        "SHOW SOURCES redacts too"
    );
    let err = system
        .execute_script("SHOW CREATE BASELINE nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown baseline 'nope'"), "{err}");
    system.shutdown_token().cancel();
}
