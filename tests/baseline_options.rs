//! `CREATE BASELINE … WITH (bins = …, max_sample = …, …)`: the options reach the stored
//! profile (through the runtime, the data dir and `driftwatch query`), a redefinition with
//! other options profiles again, and bad options fail `driftwatch check` at their line and
//! column before any data is read.

use std::path::{Path, PathBuf};
use std::process::Command;

use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use driftwatch_udfs::{BaselineProfile, BinRule, ProfileOptions};

/// x: 40 ones, 30 twos, then 3 … 32 (heavy ties); y: 0, 0.5, … 49.5.
fn write_train(dir: &Path) -> PathBuf {
    let x: Vec<f64> = std::iter::repeat_n(1.0, 40)
        .chain(std::iter::repeat_n(2.0, 30))
        .chain((3..=32).map(f64::from))
        .collect();
    let mut csv = String::from("x,y\n");
    for (i, v) in x.iter().enumerate() {
        csv.push_str(&format!("{v:.1},{}\n", i as f64 * 0.5));
    }
    let path = dir.join("train.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

async fn run_script(data_dir: &Path, sql: &str) -> Driftwatch {
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: data_dir.to_path_buf(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system
        .execute_script(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    system.shutdown_token().cancel();
    system
}

fn driftwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
}

#[tokio::test]
async fn options_reach_the_stored_profile() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_train(dir.path());
    let data = dir.path().join("data");
    let sql = format!(
        "CREATE BASELINE q FROM '{}'\n  WITH (bins = 'quantile', bin_count = 4, max_sample = 10,\n\
         quantiles = '0.1, 0.9', row_sample = 7, iforest_trees = 5, iforest_sample = 16, seed = 3);",
        train.display()
    );
    let system = run_script(&data, &sql).await;
    let want = ProfileOptions {
        max_sample: 10,
        bins: BinRule::Quantile(4),
        quantiles: vec![0.1, 0.9],
        row_sample: 7,
        iforest_trees: 5,
        iforest_sample: 16,
        seed: 3,
        ..ProfileOptions::default()
    };
    let live = system.baselines().get("q").expect("registered");
    assert_eq!(live.options, want);
    let x = live.numeric("x").unwrap();
    // np.unique(np.quantile(x, np.linspace(0, 1, 5))): the 25 % and 50 % levels tie at 1 and 2
    assert_eq!(x.bin_edges, vec![1.0, 2.0, 7.25, 32.0]);
    assert_eq!(x.bin_counts, vec![40, 35, 25]);
    // np.quantile(x, [0.1, 0.9])
    assert_eq!(x.quantiles, vec![(0.1, 1.0), (0.9, 22.10000000000001)]);
    assert_eq!(x.sample.len(), 10);
    assert_eq!(x.count, 100);
    assert_eq!(live.rows.values.len(), 7 * 2);

    // what is on disk reads back identical
    let stored = BaselineProfile::read_from(&data.join("baselines").join("q")).unwrap();
    assert_eq!(stored.options, want);
    assert_eq!(format!("{stored:?}"), format!("{live:?}"));

    // `driftwatch query` binds the functions to the stored profile: the quantile bins
    let out = driftwatch()
        .args(["query", "--format", "csv", "--data-dir"])
        .arg(&data)
        .arg("SELECT array_to_string(histogram(x, 'q'), ';') AS h FROM baselines.q")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h\n40;35;25");

    // the same definition reloads the stored profile; other options profile again
    let profile_json = data.join("baselines").join("q").join("profile.json");
    let written = std::fs::metadata(&profile_json)
        .unwrap()
        .modified()
        .unwrap();
    // One system per data dir (its lock): the first one is done.
    drop(system);
    let again = run_script(&data, &sql).await;
    assert_eq!(again.baselines().get("q").unwrap().options, want);
    let reloaded = std::fs::metadata(&profile_json)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(written, reloaded, "the stored profile was rebuilt");
    let sturges = format!(
        "CREATE BASELINE q FROM '{}' WITH (bins = 'sturges');",
        train.display()
    );
    drop(again);
    let redefined = run_script(&data, &sturges).await;
    let p = redefined.baselines().get("q").unwrap();
    assert_eq!(
        p.options,
        ProfileOptions {
            bins: BinRule::Sturges,
            ..ProfileOptions::default()
        }
    );
    // np.histogram_bin_edges(x, 'sturges'): 8 bins over [1, 32]
    assert_eq!(
        p.numeric("x").unwrap().bin_edges,
        vec![1.0, 4.875, 8.75, 12.625, 16.5, 20.375, 24.25, 28.125, 32.0]
    );
}

#[tokio::test]
async fn query_baselines_take_explicit_and_equal_bins() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_train(dir.path());
    let sql = format!(
        "CREATE BASELINE e WITH (bin_edges = '0, 10, 20, 40') AS SELECT x FROM '{0}';\n\
         CREATE BASELINE w WITH (bins = 'equal', bin_count = 3) AS SELECT x FROM '{0}';",
        train.display()
    );
    let system = run_script(&dir.path().join("data"), &sql).await;
    let e = system.baselines().get("e").unwrap();
    let ex = e.numeric("x").unwrap();
    assert_eq!(
        e.options.bins,
        BinRule::Explicit(vec![0.0, 10.0, 20.0, 40.0])
    );
    assert_eq!(ex.bin_edges, vec![0.0, 10.0, 20.0, 40.0]);
    assert_eq!(ex.bin_counts, vec![77, 10, 13]);
    let w = system.baselines().get("w").unwrap();
    assert_eq!(w.options.bins, BinRule::Count(3));
    let wx = w.numeric("x").unwrap();
    // np.histogram_bin_edges(x, 3)
    assert_eq!(
        wx.bin_edges,
        vec![1.0, 11.333333333333334, 21.666666666666668, 32.0]
    );
    assert_eq!(wx.bin_counts, vec![79, 10, 11]);
}

/// Runs `driftwatch check` on `sql` and returns its stderr (the check must fail).
fn check_fails(sql: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.sql");
    std::fs::write(&file, sql).unwrap();
    let out = driftwatch().arg("check").arg(&file).output().unwrap();
    assert!(!out.status.success(), "check accepted:\n{sql}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_has(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "{message:?} lacks {p:?}");
    }
}

#[test]
fn check_locates_bad_options_before_reading_data() {
    // the file does not exist: the option error comes first
    let err = check_fails(
        "-- baseline\nCREATE BASELINE b FROM 'missing.csv'\n  WITH (bins = 'quantiles', bin_count = 8);\n",
    );
    assert_has(
        &err,
        &[
            "bad.sql:3:16: ",
            "option 'bins' must be one of 'fd', 'sturges', 'quantile', 'equal'",
            "did you mean 'quantile'?",
        ],
    );
    let err = check_fails(
        "CREATE BASELINE b FROM 'missing.csv'\n  WITH (format = 'csv',\n        max_smaple = 1000);\n",
    );
    assert_has(
        &err,
        &[
            "bad.sql:3:9: ",
            "unknown option 'max_smaple' for baseline",
            "did you mean 'max_sample'?",
        ],
    );
    let err = check_fails("CREATE BASELINE b WITH (bin_edges = '0, 2, 1') AS SELECT 1.0 AS x;\n");
    assert_has(
        &err,
        &[
            "bad.sql:1:37: ",
            "strictly increasing",
            "item 3 (1) follows 2",
        ],
    );
}
