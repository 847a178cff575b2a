//! One rule for the case of names, for every kind of object: unquoted identifiers fold to
//! lower case, quoted ones keep their case (as in DataFusion and Postgres); a baseline named
//! in a string literal is found by its exact name, else by the one name equal to it
//! ignoring case.

use driftwatch::runtime::{Driftwatch, Outcome, RuntimeConfig};

fn open(dir: &std::path::Path) -> Driftwatch {
    Driftwatch::open(RuntimeConfig {
        data_dir: dir.to_path_buf(),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

const BASELINE_ROWS: &str =
    "AS SELECT CAST(column1 AS DOUBLE) AS x FROM (VALUES (1.0), (2.0), (3.0), (4.0))";

fn window_monitor(name: &str, source: &str, baseline: &str) -> String {
    format!(
        "CREATE MONITOR {name} AS SELECT window_start, window_end, ks_pvalue(x, '{baseline}') AS p \
         FROM TUMBLE({source}, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end;"
    )
}

fn names(outcome: &Outcome) -> Vec<String> {
    let Outcome::Rows(batch) = outcome else {
        panic!("SHOW returns rows")
    };
    use arrow::array::AsArray;
    batch
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(|s| s.unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn unquoted_names_fold_to_lower_case_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = open(dir.path());
    system
        .execute_script(&format!(
            "CREATE SOURCE S_R (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second') \
             WITH (connector = 'http');
             CREATE BASELINE B_R {BASELINE_ROWS};
             {}
             {}",
            window_monitor("M_R", "S_R", "B_R"),
            window_monitor("m_lower", "s_r", "b_r"),
        ))
        .await
        .expect("B_R, b_r, S_R and s_r name the same objects");
    let shown = system
        .execute_script("SHOW SOURCES; SHOW BASELINES; SHOW MONITORS")
        .await
        .unwrap();
    assert_eq!(names(&shown[0]), ["s_r"]);
    assert_eq!(names(&shown[1]), ["b_r"]);
    assert_eq!(names(&shown[2]), ["m_lower", "m_r"]);
    // DROP folds the same way.
    system
        .execute_script(
            "DROP MONITOR M_R; DROP MONITOR m_lower; DROP BASELINE B_r; DROP SOURCE S_r",
        )
        .await
        .unwrap();
    system.shutdown_token().cancel();
}

#[tokio::test]
async fn quoted_names_keep_their_case() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = open(dir.path());
    system
        .execute_script(&format!(
            "CREATE SOURCE \"Src\" (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second') \
             WITH (connector = 'http');
             CREATE BASELINE \"Base\" {BASELINE_ROWS};
             {}",
            window_monitor("\"Mon\"", "\"Src\"", "Base"),
        ))
        .await
        .expect("quoted names are used as written");
    let shown = system
        .execute_script("SHOW SOURCES; SHOW BASELINES; SHOW MONITORS")
        .await
        .unwrap();
    assert_eq!(names(&shown[0]), ["Src"]);
    assert_eq!(names(&shown[1]), ["Base"]);
    assert_eq!(names(&shown[2]), ["Mon"]);
    // An unquoted reference folds to `src`, which does not exist.
    let err = system
        .execute_script(&window_monitor("m2", "Src", "Base"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown source 'src'"), "{err}");
    // The string literal finds "Base" ignoring case (the only match).
    system
        .execute_script(&window_monitor("m3", "\"Src\"", "base"))
        .await
        .expect("'base' resolves to the one baseline named Base");
    let err = system
        .execute_script("DROP MONITOR Mon")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("mon"), "{err}");
    system
        .execute_script("DROP MONITOR \"Mon\"; DROP MONITOR m3; DROP BASELINE \"Base\"")
        .await
        .unwrap();
    system.shutdown_token().cancel();
}

#[tokio::test]
async fn baseline_literals_match_exactly_before_ignoring_case() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = open(dir.path());
    system
        .execute_script(&format!(
            "CREATE SOURCE s (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second') \
             WITH (connector = 'http');
             CREATE BASELINE \"B\" {BASELINE_ROWS};
             CREATE BASELINE b {BASELINE_ROWS};
             {}
             {}",
            window_monitor("exact_upper", "s", "B"),
            window_monitor("exact_lower", "s", "b"),
        ))
        .await
        .expect("exact names resolve although they differ only in case");
    let err = system
        .execute_script(&format!(
            "CREATE BASELINE \"Bx\" {BASELINE_ROWS}; CREATE BASELINE \"bX\" {BASELINE_ROWS}; {}",
            window_monitor("ambiguous", "s", "BX")
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ambiguous") && err.contains("'Bx'") && err.contains("'bX'"),
        "{err}"
    );
    let err = system
        .execute_script(&window_monitor("unknown", "s", "nope"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown baseline 'nope' (known: B, Bx, b, bX)"),
        "{err}"
    );
    system.shutdown_token().cancel();
}
