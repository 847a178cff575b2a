//! `driftwatch report`: a data dir made by running a monitor file end to end, then the HTML
//! report of its monitors (charts, drift heat map, histograms, escaping, errors).

use std::path::Path;
use std::process::{Command, Output};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const SECONDS: i64 = 200;
const RATE: i64 = 10; // rows per second

fn driftwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
}

/// Deterministic values in [0, 1).
fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A monitor dir: baseline x1..x3 uniform; events over 200 s where x2 shifts by +3 after
/// 100 s; a `model` column whose values include a hostile one.
fn monitor_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut u = uniform(7);
    let mut train = String::from("x1,x2,x3\n");
    for _ in 0..600 {
        train.push_str(&format!("{},{},{}\n", u(), u(), u()));
    }
    std::fs::write(dir.path().join("train.csv"), train).unwrap();
    let mut csv = String::from("ts,model,x1,x2,x3\n");
    for i in 0..SECONDS * RATE {
        let t = T0 + i * 1000 / RATE;
        let shift = if i >= SECONDS * RATE / 2 { 3.0 } else { 0.0 };
        let model = if i % 2 == 0 {
            "<script>alert(1)</script>"
        } else {
            "m2"
        };
        csv.push_str(&format!("{t},{model},{},{},{}\n", u(), u() + shift, u()));
    }
    std::fs::write(dir.path().join("events.csv"), csv).unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "CREATE SOURCE s (ts TIMESTAMP, model VARCHAR, x1 DOUBLE, x2 DOUBLE, x3 DOUBLE,
             WATERMARK FOR ts AS ts - INTERVAL '1 second')
           WITH (connector = 'file', path = 'events.csv', format = 'csv', time_format = 'epoch_ms');
         CREATE BASELINE train FROM 'train.csv';
         CREATE MONITOR drift AS SELECT window_start, window_end, feature, count(*) AS n,
             wasserstein_norm(value, 'train', feature) AS w_norm,
             wasserstein_norm(value, 'train', feature) > 1.0 AS drift,
             histogram(value, 'train', feature) AS hist
           FROM TUMBLE(features(s), ts, INTERVAL '10 seconds')
           GROUP BY window_start, window_end, feature;
         CREATE MONITOR by_model AS SELECT window_start, window_end, model, avg(x1) AS x1_avg
           FROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end, model;
         CREATE MONITOR busy AS SELECT window_start, window_end, count(*) AS n, max(x2) AS x2_max
           FROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end
           HAVING max(x2) > 2;\n",
    )
    .unwrap();
    dir
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run_into(dir: &Path, data_dir: &Path) {
    let out = driftwatch()
        .current_dir(dir)
        .args([
            "run",
            "m.sql",
            "--quiet",
            "--no-flight",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn report(data_dir: &Path, args: &[&str], out: &Path) -> Output {
    driftwatch()
        .arg("report")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

/// The `<svg …>…</svg>` elements of `html` whose opening tag contains `class`.
fn svgs<'a>(html: &'a str, class: &str) -> Vec<&'a str> {
    html.match_indices("<svg ")
        .filter_map(|(i, _)| {
            let end = html[i..].find("</svg>")? + i + 6;
            let tag_end = html[i..].find('>')? + i;
            html[i..tag_end].contains(class).then_some(&html[i..end])
        })
        .collect()
}

#[test]
fn reports_show_charts_heat_map_histograms_and_alerts_and_escape_user_data() {
    let dir = monitor_dir();
    let data_dir = dir.path().join("dd");
    run_into(dir.path(), &data_dir);
    let out_file = dir.path().join("drift.html");
    let out = report(&data_dir, &["drift"], &out_file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&out_file).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // Self-contained: nothing is loaded from anywhere.
    for needle in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(needle), "{needle} in the report");
    }
    assert_eq!(
        html.matches("<svg ").count(),
        html.matches("</svg>").count()
    );
    // One line chart per numeric column (n, w_norm), one series per feature.
    let lines = svgs(&html, "line-chart");
    assert_eq!(lines.len(), 2, "charts of n and w_norm");
    for chart in &lines {
        assert_eq!(
            chart.matches(r#"<path class="series""#).count(),
            3,
            "{chart}"
        );
        for f in ["x1", "x2", "x3"] {
            assert!(chart.contains(&format!(r#"data-series="{f}""#)), "{f}");
        }
    }
    // The heat map: 20 windows × 3 features; x2 drifted in the second half only.
    let heat = svgs(&html, "heat-map");
    assert_eq!(heat.len(), 1);
    let cells = |f: &str, class: &str| {
        heat[0]
            .matches(&format!(r#"class="{class}" data-feature="{f}""#))
            .count()
    };
    assert_eq!(
        cells("x2", "cell drifted"),
        10,
        "x2 drifts in windows 10..20"
    );
    assert_eq!(cells("x2", "cell"), 10);
    for f in ["x1", "x3"] {
        assert_eq!(cells(f, "cell drifted"), 0, "{f} is stable");
        assert_eq!(cells(f, "cell"), 20);
    }
    // Summary: x2 first, 50 % drifted.
    let x2 = html
        .find(r#"<tr class="drifted" data-feature="x2">"#)
        .expect("x2 row");
    assert!(html[x2..]
        .find("</tr>")
        .is_some_and(|e| html[x2..x2 + e].contains("50.0%")));
    assert!(x2 < html.find(r#"data-feature="x1"><td>"#).unwrap());
    // The newest drifted window's histogram of x2 against the baseline, and only x2's.
    let hist = svgs(&html, "histogram");
    assert_eq!(hist.len(), 1, "only x2 drifted");
    assert!(hist[0].contains(r#"data-feature="x2""#));
    assert!(hist[0].contains("window (n=100)") && hist[0].contains("baseline (n=600)"));
    assert!(html.contains("[2026-01-01 00:03:10 – 2026-01-01 00:03:20)"));
    assert!(html.contains("Windows</dt><dd>20</dd>") && html.contains("Rows</dt><dd>60</dd>"));
    assert!(
        html.contains("CREATE MONITOR drift"),
        "the definition is shown"
    );
    assert!(!html.contains("Alert rows"), "not a filtered monitor");

    // A hostile group value is escaped everywhere.
    let out_file = dir.path().join("by_model.html");
    let out = report(&data_dir, &["by_model"], &out_file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&out_file).unwrap();
    assert!(!html.contains("<script"), "unescaped user data");
    assert!(html.contains(r#"data-series="&lt;script&gt;alert(1)&lt;/script&gt;""#));
    assert_eq!(
        svgs(&html, "line-chart")[0]
            .matches(r#"<path class="series""#)
            .count(),
        2
    );

    // A HAVING monitor lists its rows: the 10 windows after the shift.
    let out_file = dir.path().join("busy.html");
    let out = report(&data_dir, &["busy", "--since", "50s"], &out_file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        html.contains("Alert rows") && html.contains("5 rows in the range"),
        "{html}"
    );
    assert_eq!(html.matches("<tr><td>").count(), 5);
    assert!(html.contains("Windows</dt><dd>5</dd>"));
}

#[test]
fn errors_name_the_monitors_the_range_and_the_bad_flag() {
    let dir = monitor_dir();
    let data_dir = dir.path().join("dd");
    run_into(dir.path(), &data_dir);
    let out_file = dir.path().join("x.html");

    let out = report(&data_dir, &["drfit"], &out_file);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no monitor 'drfit'") && err.contains("drift") && err.contains("busy"),
        "{err}"
    );

    let out = report(
        &data_dir,
        &[
            "drift",
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2020-01-02T00:00:00Z",
        ],
        &out_file,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no results between 2020-01-01 00:00:00") && err.contains("2026-01-01"),
        "{err}"
    );

    let out = report(&data_dir, &["drift", "--since", "an hour"], &out_file);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--since"),
        "{}",
        text(&out.stderr)
    );

    let out = report(
        &data_dir,
        &[
            "drift",
            "--from",
            "2026-01-02T00:00:00Z",
            "--to",
            "2026-01-01T00:00:00Z",
        ],
        &out_file,
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--from is after --to"));
    assert!(!out_file.exists(), "no file is written on errors");

    // A range inside the data: the first minute (windows ending in it).
    let out = report(
        &data_dir,
        &[
            "drift",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-01T00:01:00Z",
        ],
        &out_file,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        html.contains("Windows</dt><dd>6</dd>"),
        "windows ending by 00:01:00"
    );
    assert_eq!(
        svgs(&html, "histogram").len(),
        0,
        "no drift in the first minute"
    );
}
