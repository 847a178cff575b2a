//! Per-monitor state limits (`WITH (max_state, max_groups, max_open_windows)`) are parsed and
//! checked at CREATE (and by `driftwatch check`), and a monitor that crosses one at run time
//! fails alone: the run reads to the end for the other monitors, and `wait` then returns an
//! error naming the failed monitor.

use std::io::Write;

use driftwatch::engine::window_agg::StateLimits;
use driftwatch::runtime::driver::state_limits;
use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use driftwatch_sql::Statement;

const SOURCE: &str = "CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,\n\
                      WATERMARK FOR ts AS ts - INTERVAL '1 second') WITH (connector = 'http');\n";

fn monitor(options: &str) -> String {
    format!(
        "{SOURCE}CREATE MONITOR m WITH ({options}) AS\n\
         SELECT window_start, window_end, id, count(*) AS n\n\
         FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end, id"
    )
}

fn limits_of(options: &str) -> Result<StateLimits, String> {
    let stmts = driftwatch_sql::parse_statements(&monitor(options)).map_err(|e| e.to_string())?;
    let Statement::CreateMonitor(m) = &stmts[1] else {
        panic!("a monitor")
    };
    state_limits(&m.options).map_err(|e| e.to_string())
}

/// What `driftwatch check` does with a script: every statement against a scratch system
/// that contacts nothing.
async fn check(sql: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().to_path_buf(),
        offline: true,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let result = system.execute_script(sql).await.map(|_| ());
    system.discard().await;
    result.map_err(|e| e.to_string())
}

#[test]
fn limits_are_parsed_with_units_and_defaults() {
    let l =
        limits_of("max_state = '256MB', max_groups = 100000, max_open_windows = 10000").unwrap();
    assert_eq!(
        l,
        StateLimits {
            max_state_bytes: 256_000_000,
            max_groups: 100_000,
            max_open_windows: 10_000,
        }
    );
    assert_eq!(
        limits_of("max_state = '1GiB'").unwrap().max_state_bytes,
        1 << 30
    );
    assert_eq!(
        limits_of("max_state = '512k'").unwrap().max_state_bytes,
        512 << 10
    );
    assert_eq!(
        limits_of("max_state = 1048576").unwrap().max_state_bytes,
        1 << 20
    );
    let only_groups = limits_of("max_groups = 7").unwrap();
    assert_eq!(only_groups.max_groups, 7);
    assert_eq!(
        only_groups.max_state_bytes,
        StateLimits::default().max_state_bytes
    );
    assert_eq!(
        only_groups.max_open_windows,
        StateLimits::default().max_open_windows
    );
}

#[test]
fn bad_limits_name_the_option_and_where_it_is() {
    for (options, expect) in [
        ("max_state = '0'", "option 'max_state'"),
        ("max_state = '12 parsecs'", "unknown size unit 'parsecs'"),
        (
            "max_state = '2TiB'",
            "must be between 1KiB and 1TiB, got 2TiB",
        ),
        ("max_state = TRUE", "option 'max_state' must be a size"),
        (
            "max_groups = 0",
            "option 'max_groups' must be between 1 and 1000000000, got 0",
        ),
        (
            "max_groups = -5",
            "option 'max_groups' must be a non-negative integer",
        ),
        (
            "max_open_windows = 99999999999",
            "option 'max_open_windows' must be between 1 and 10000000",
        ),
    ] {
        let e = limits_of(options).unwrap_err();
        assert!(e.contains(expect), "{options}: {e}");
        // The value is on line 2 of the script (after the source), right after `= `.
        let column = "CREATE MONITOR m WITH (".len() + options.find('=').unwrap() + 3;
        assert!(
            e.starts_with(&format!("line 3, column {column}: ")),
            "{options}: {e}"
        );
    }
}

#[tokio::test]
async fn check_validates_limits() {
    check(&monitor("max_state = '64MiB', max_groups = 1000"))
        .await
        .unwrap();
    let e = check(&monitor("max_groups = 0")).await.unwrap_err();
    assert!(e.contains("option 'max_groups' must be between 1"), "{e}");
    let e = check(&monitor("max_group = 10")).await.unwrap_err();
    assert!(e.contains("unknown option 'max_group'"), "{e}");
    assert!(e.contains("did you mean 'max_groups'?"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_over_its_limit_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    let t0 = 1_700_000_000_000i64;
    let (seconds, keys) = (4, 200);
    for s in 0..seconds {
        for k in 0..keys {
            let ts = chrono::DateTime::from_timestamp_millis(t0 + s * 1000 + k * 4)
                .unwrap()
                .to_rfc3339();
            writeln!(f, r#"{{"id": "k{k}", "ts": "{ts}", "x": 1.0}}"#).unwrap();
        }
    }
    drop(f);
    let sql = format!(
        "CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,\n\
         WATERMARK FOR ts AS ts - INTERVAL '100 milliseconds')\n\
         WITH (connector = 'file', path = '{}', format = 'jsonl', replay = 'fast', batch_size = '50');\n\
         CREATE MONITOR per_id WITH (max_groups = 20) AS\n\
         SELECT window_start, window_end, id, count(*) AS n\n\
         FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end, id;\n\
         CREATE MONITOR stats AS SELECT window_start, window_end, count(*) AS n\n\
         FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;",
        input.display()
    );
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().join("data"),
        checkpoint_interval: Some(std::time::Duration::from_millis(100)),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system.execute_script(&sql).await.unwrap();
    system.start().await.unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), system.wait(None))
        .await
        .expect("the run ends")
        .unwrap_err()
        .to_string();
    assert!(err.contains("monitor 'per_id' failed at "), "{err}");
    assert!(err.contains("max_groups"), "{err}");
    assert!(!err.contains("'stats'"), "{err}");
    let snap = system.snapshot();
    let by_name = |n: &str| snap.monitors.iter().find(|m| m.name == n).unwrap().clone();
    let (per_id, stats) = (by_name("per_id"), by_name("stats"));
    assert_eq!(per_id.status, "failed");
    assert!(per_id.failed_at_ms.is_some());
    assert!(per_id.error.as_deref().unwrap_or("").contains("max_groups"));
    assert_eq!(per_id.windows, 0);
    // The other monitor read to the end: one window per second, every row in it.
    assert_eq!(stats.status, "finished");
    assert_eq!(stats.windows, seconds as u64);
    assert_eq!(stats.rows_out, seconds as u64);
    assert!(snap.checkpoint.completed >= 1, "{:?}", snap.checkpoint);
}
