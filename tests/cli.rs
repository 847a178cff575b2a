//! The `driftwatch` binary: `check`, `run` over a bounded file source, and `query` over the
//! data dir and over files named in FROM; what they print (results on stdout, logs on
//! stderr, errors once with file, line and column).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
            "--no-flight",
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
        stderr.contains("window [2026-01-01 00:00:00Z, 2026-01-01 00:00:05Z) rows=1"),
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

/// A monitor directory: `events.csv` (100 rows, 3 features, 10 s from 2026-01-01 00:00:00Z),
/// `train.csv`, and `m.sql` naming both by relative paths, with a drift-like monitor over
/// the long view (3 rows per 5 s window) and a one-row-per-window monitor.
fn monitor_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("ts,alcohol,ash,magnesium\n");
    for i in 0..100i64 {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            1_767_225_600_000 + i * 100,
            i % 7,
            (i % 5) as f64 / 10.0,
            i * 3
        ));
    }
    std::fs::write(dir.path().join("events.csv"), csv).unwrap();
    std::fs::copy(
        repo("examples/iris/train.csv"),
        dir.path().join("train.csv"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "CREATE SOURCE s (ts TIMESTAMP, alcohol DOUBLE, ash DOUBLE, magnesium DOUBLE,
             WATERMARK FOR ts AS ts - INTERVAL '1 second')
           WITH (connector = 'file', path = 'events.csv', format = 'csv', time_format = 'epoch_ms');
         CREATE BASELINE b FROM 'train.csv';
         CREATE MONITOR drift AS SELECT window_start, window_end, feature, count(*) AS n,
             avg(value) AS mean
           FROM TUMBLE(features(s), ts, INTERVAL '5 seconds')
           GROUP BY window_start, window_end, feature;
         CREATE MONITOR stats AS SELECT window_start, window_end, count(*) AS n
           FROM TUMBLE(s, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end;\n",
    )
    .unwrap();
    dir
}

/// Runs `driftwatch <args>` in a fresh working directory (not the monitor file's).
fn run_elsewhere(args: &[&str], env: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = driftwatch();
    cmd.current_dir(cwd.path())
        .args(args)
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.output().unwrap(), cwd)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the monitor directory's `m.sql` into `data_dir` with extra flags.
fn run_monitors(dir: &Path, data_dir: &Path, extra: &[&str]) -> Output {
    let file = dir.join("m.sql");
    let mut args = vec![
        "run",
        path_str(&file),
        "--no-flight",
        "--data-dir",
        path_str(data_dir),
    ];
    args.extend_from_slice(extra);
    let (out, _cwd) = run_elsewhere(&args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

#[test]
fn run_prints_every_row_of_every_window_on_stdout_and_logs_on_stderr() {
    let dir = monitor_dir();
    let data_dir = dir.path().join("dd");
    let out = run_monitors(dir.path(), &data_dir, &[]);
    let stdout = text(&out.stdout);
    // A 3-row window: its header, then every feature (not only the first).
    let first = "drift  [2026-01-01 00:00:00Z, 2026-01-01 00:00:05Z)  3 rows\n";
    let at = stdout.find(first).unwrap_or_else(|| panic!("{stdout}"));
    let table: Vec<&str> = stdout[at + first.len()..].lines().take(4).collect();
    assert_eq!(
        table[0].split_whitespace().collect::<Vec<_>>(),
        ["feature", "n", "mean"]
    );
    for (line, feature) in table[1..].iter().zip(["alcohol", "ash", "magnesium"]) {
        assert!(
            line.trim_start().starts_with(feature) && line.contains(" 50 "),
            "{stdout}"
        );
    }
    assert!(stdout.contains("drift  [2026-01-01 00:00:05Z, 2026-01-01 00:00:10Z)  3 rows"));
    assert!(stdout.contains("stats  [2026-01-01 00:00:00Z, 2026-01-01 00:00:05Z)  1 row"));
    // Logs stay on stderr, without colours when redirected.
    let stderr = text(&out.stderr);
    assert!(
        !stdout.contains("INFO") && stderr.contains("INFO"),
        "{stderr}"
    );
    assert!(
        !out.stderr.contains(&0x1b),
        "escape codes in redirected logs: {stderr:?}"
    );
    // The status line shows the watermark with its date (last row 00:00:09.900, 1 s delay).
    assert!(
        stderr.contains("watermark=2026-01-01 00:00:08.900Z"),
        "{stderr}"
    );
    // The final status line still lists the monitors and what they emitted.
    let done = stderr
        .lines()
        .find(|l| l.contains("done: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        done.contains("drift: windows=2") && done.contains("stats: windows=2"),
        "{done}"
    );
}

#[test]
fn run_quiet_prints_no_results_but_stores_them() {
    let dir = monitor_dir();
    let data_dir = dir.path().join("dd");
    let out = run_monitors(dir.path(), &data_dir, &["--quiet"]);
    assert_eq!(text(&out.stdout), "");
    let (q, _cwd) = run_elsewhere(
        &[
            "query",
            "SELECT count(*) AS c FROM drift",
            "--data-dir",
            path_str(&data_dir),
            "--format",
            "csv",
        ],
        &[],
    );
    assert_eq!(text(&q.stdout), "c\n6\n\n", "{}", text(&q.stderr));
}

#[test]
fn run_json_prints_results_and_logs_as_json_lines() {
    let dir = monitor_dir();
    let data_dir = dir.path().join("dd");
    let out = run_monitors(
        dir.path(),
        &data_dir,
        &["--format", "json", "--log-format", "json"],
    );
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let drift: Vec<&serde_json::Value> = rows.iter().filter(|r| r["monitor"] == "drift").collect();
    assert_eq!(drift.len(), 6, "{rows:?}");
    assert_eq!(drift[0]["window_start"], "2026-01-01T00:00:00.000Z");
    assert_eq!(drift[0]["n"], 50);
    assert_eq!(rows.iter().filter(|r| r["monitor"] == "stats").count(), 2);
    let logs = text(&out.stderr);
    assert!(!logs.is_empty());
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}

/// Runs `run FILE` under a pseudo-terminal (util-linux `script`) and returns what it showed.
fn on_a_terminal(dir: &Path, no_color: Option<&str>) -> String {
    let data_dir = dir.join(format!("dd-tty-{}", no_color.is_some()));
    let command = format!(
        "{} run {} --no-flight --quiet --data-dir {}",
        env!("CARGO_BIN_EXE_driftwatch"),
        dir.join("m.sql").display(),
        data_dir.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().expect("util-linux `script` runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn logs_are_coloured_only_on_a_terminal_without_no_color() {
    let dir = monitor_dir();
    let shown = on_a_terminal(dir.path(), None);
    assert!(
        shown.contains("INFO") && shown.contains('\x1b'),
        "{shown:?}"
    );
    let shown = on_a_terminal(dir.path(), Some("1"));
    assert!(
        shown.contains("INFO") && !shown.contains('\x1b'),
        "{shown:?}"
    );
}

#[test]
fn relative_paths_resolve_against_the_monitor_file_and_a_missing_one_is_named() {
    // run_monitors runs from another working directory: events.csv and train.csv are found
    // next to m.sql.
    let dir = monitor_dir();
    let out = run_monitors(dir.path(), &dir.path().join("dd"), &["--quiet"]);
    assert!(
        text(&out.stderr).contains(&format!("file={}", dir.path().join("events.csv").display()))
    );
    // check too.
    let (out, _cwd) = run_elsewhere(&["check", path_str(&dir.path().join("m.sql"))], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The example itself, from anywhere.
    let (out, _cwd) = run_elsewhere(&["check", &repo("examples/iris/monitors.sql")], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A missing file: the error names the path tried, resolved against the file's directory.
    std::fs::remove_file(dir.path().join("train.csv")).unwrap();
    let (out, _cwd) = run_elsewhere(&["check", path_str(&dir.path().join("m.sql"))], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let tried = dir.path().join("train.csv");
    assert!(
        err.contains(&format!(
            "m.sql:4:10: baseline 'b': file '{}' does not exist",
            tried.display()
        )),
        "{err}"
    );
}

/// A monitor file whose monitor reads an unknown column (line 4).
fn bad_monitor(dir: &Path) -> PathBuf {
    let file = dir.join("bad.sql");
    std::fs::write(
        &file,
        "CREATE SOURCE s (ts TIMESTAMP, x DOUBLE,\n  WATERMARK FOR ts AS ts - INTERVAL '1 second')\n  WITH (connector = 'http');\n   CREATE MONITOR m AS SELECT window_start, window_end, avg(y)\nFROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end;\n",
    )
    .unwrap();
    file
}

#[test]
fn errors_are_printed_once_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = bad_monitor(dir.path());
    let (out, _cwd) = run_elsewhere(&["check", path_str(&file)], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("error: {}:4:4: monitor 'm': ", file.display())),
        "{err}"
    );
    assert_eq!(err.matches("No field named y").count(), 1, "{err}");
    // A parse error: its own position.
    let typo = dir.path().join("typo.sql");
    std::fs::write(&typo, "\n  CREATE SORUCE s (x INT);").unwrap();
    let (out, _cwd) = run_elsewhere(&["check", path_str(&typo)], &[]);
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: {}:2:10: unknown object type SORUCE",
            typo.display()
        )),
        "{err}"
    );
    assert_eq!(err.matches("SORUCE").count(), 1, "{err}");
    // A connector error (its message used to be repeated by its wrapper).
    let source = dir.path().join("source.sql");
    std::fs::write(
        &source,
        "CREATE SOURCE s (x INT) WITH (connector = 'file', path = 'nope.csv');",
    )
    .unwrap();
    let (out, _cwd) = run_elsewhere(&["check", path_str(&source)], &[]);
    let err = text(&out.stderr);
    let tried = dir.path().join("nope.csv");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: {}:1:1: source 's': path '{}' does not exist",
            source.display(),
            tried.display()
        )
    );
}

#[test]
fn a_failed_run_leaves_no_data_dir_behind() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.sql");
    std::fs::write(&typo, "CREATE SORUCE s (x INT);").unwrap();
    for file in [bad_monitor(dir.path()), typo] {
        let data_dir = dir.path().join("new").join("dd");
        let (out, _cwd) = run_elsewhere(
            &[
                "run",
                path_str(&file),
                "--no-flight",
                "--data-dir",
                path_str(&data_dir),
            ],
            &[],
        );
        assert!(!out.status.success());
        assert!(!dir.path().join("new").exists(), "{}", text(&out.stderr));
    }
    // A data dir that existed before is kept.
    let data_dir = dir.path().join("kept");
    std::fs::create_dir(&data_dir).unwrap();
    let (out, _cwd) = run_elsewhere(
        &[
            "run",
            path_str(&bad_monitor(dir.path())),
            "--no-flight",
            "--data-dir",
            path_str(&data_dir),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(data_dir.is_dir());
}

#[test]
fn an_empty_result_still_shows_its_columns() {
    let query = |format: &str| {
        let (out, _cwd) = run_elsewhere(
            &[
                "query",
                "SELECT 1 AS a, 'x' AS b WHERE false",
                "--format",
                format,
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let table = query("table");
    assert!(table.contains("| a | b |"), "{table}");
    assert_eq!(query("csv").trim_end(), "a,b");
    assert_eq!(query("json").trim_end(), "[]");
}

#[test]
fn query_explains_a_missing_data_dir_and_a_misspelt_table() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let (out, _cwd) = run_elsewhere(
        &[
            "query",
            "SELECT * FROM drift",
            "--data-dir",
            path_str(&missing),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "the data dir {} does not exist",
            missing.display()
        )) && err.contains("--data-dir")
            && err.contains("DRIFTWATCH_DATA_DIR"),
        "{err}"
    );
    // The default data dir, relative to the working directory, named absolutely.
    let (out, cwd) = run_elsewhere(&["query", "SELECT * FROM drift"], &[]);
    let err = text(&out.stderr);
    let default = cwd.path().join("driftwatch-data");
    assert!(
        err.contains(&format!(
            "the data dir {} does not exist",
            default.display()
        )),
        "{err}"
    );
    // With results: the closest table.
    let mon = monitor_dir();
    let data_dir = mon.path().join("dd");
    run_monitors(mon.path(), &data_dir, &["--quiet"]);
    let (out, _cwd) = run_elsewhere(
        &[
            "query",
            "SELECT * FROM drfit",
            "--data-dir",
            path_str(&data_dir),
        ],
        &[],
    );
    let err = text(&out.stderr);
    assert!(err.contains("did you mean 'drift'?"), "{err}");
}

#[test]
fn query_into_a_closed_pipe_is_not_a_crash() {
    // `driftwatch query … | head -1`: the reader is gone before the result is written.
    let mut child = driftwatch()
        .args(["query", "SELECT * FROM generate_series(1, 100000)"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}
