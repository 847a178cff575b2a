//! The `driftwatch` binary: `check`, `run` over a bounded file source, and `query` over the
//! data dir and over files named in FROM.

use std::path::Path;
use std::process::Command;

fn driftwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

#[test]
fn check_accepts_the_iris_example() {
    let out = driftwatch()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check", "examples/iris/monitors.sql"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn check_reports_errors_with_location_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.sql");
    std::fs::write(
        &file,
        "CREATE SOURCE s (ts TIMESTAMP, x DOUBLE,\n  WATERMARK FOR ts AS ts - INTERVAL '1 second')\n  WITH (connector = 'http');\nCREATE MONITOR m AS SELECT window_start, window_end, avg(y)\nFROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end;\n",
    )
    .unwrap();
    let out = driftwatch()
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("monitor 'm'") && err.contains('y'), "{err}");
}

#[test]
fn run_over_a_file_then_query_results_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events.csv");
    let mut csv = String::from("ts,x\n");
    for i in 0..100 {
        csv.push_str(&format!("{},{}\n", 1_767_225_600_000i64 + i * 100, i % 7));
    }
    std::fs::write(&data, csv).unwrap();
    let sql = dir.path().join("m.sql");
    std::fs::write(
        &sql,
        format!(
            "CREATE SOURCE s (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second')
               WITH (connector = 'file', path = '{}', format = 'csv', time_format = 'epoch_ms');
             CREATE BASELINE b FROM '{}';
             CREATE MONITOR m AS SELECT window_start, window_end, count(*) AS n, max(x) AS hi
               FROM TUMBLE(s, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end;",
            data.display(),
            repo("examples/iris/train.csv")
        ),
    )
    .unwrap();
    let data_dir = dir.path().join("dd");
    let out = driftwatch()
        .args([
            "run",
            sql.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("window_start="),
        "each window is logged: {stderr}"
    );

    let query = |sql: &str, format: &str| {
        let out = driftwatch()
            .args([
                "query",
                sql,
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--format",
                format,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let json = query("SELECT sum(n) AS rows, count(*) AS windows FROM m", "json");
    assert!(
        json.contains("\"rows\":100") && json.contains("\"windows\":2"),
        "{json}"
    );
    // Baselines are tables too, and files can be named in FROM.
    let baseline = query("SELECT count(*) AS c FROM baselines.b", "csv");
    assert_eq!(baseline.lines().nth(1), Some("150"), "{baseline}");
    let file = query(
        &format!("SELECT count(*) AS c FROM '{}'", data.display()),
        "csv",
    );
    assert_eq!(file.lines().nth(1), Some("100"), "{file}");
    // Drift functions are bound to the stored baselines in ad-hoc queries.
    let drift = query(
        &format!(
            "SELECT wasserstein(sepal_length, 'b') AS w FROM '{}'",
            repo("examples/iris/train.csv")
        ),
        "csv",
    );
    assert_eq!(drift.lines().nth(1), Some("0.0"), "{drift}");
}

#[test]
fn query_error_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = driftwatch()
        .args([
            "query",
            "SELECT * FROM nowhere",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}
