//! Checkpointed window state: a plan stopped at a barrier and a new plan restored from its
//! snapshot together emit exactly what one uninterrupted plan emits — every window once,
//! the same values — for tumbling, hopping and session windows with group keys, DataFusion
//! aggregates with multi-column state and a Driftwatch drift function with list state.

mod common;

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use driftwatch_udfs::{BaselineProfile, BaselineRegistry, ProfileOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SOURCE: &str = "CREATE SOURCE s (ts TIMESTAMP, k VARCHAR, v DOUBLE, \
                      WATERMARK FOR ts AS ts - INTERVAL '2 seconds') WITH (connector = 'http');";

const AGGS: &str = "count(*) AS n, sum(v) AS s, avg(v) AS a, stddev(v) AS sd, min(v) AS lo, \
                    max(v) AS hi, ks_pvalue(v, 'ref', 'v') AS ks, approx_distinct(k) AS d, median(v) AS med";

fn registry() -> Arc<BaselineRegistry> {
    let mut rng = StdRng::seed_from_u64(1);
    let v: Vec<f64> = (0..500).map(|_| rng.gen_range(-100.0..100.0)).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, false)])),
        vec![Arc::new(Float64Array::from(v))],
    )
    .unwrap();
    let reg = Arc::new(BaselineRegistry::new());
    reg.insert(BaselineProfile::from_batches("ref", &[batch], &ProfileOptions::default()).unwrap());
    reg
}

/// Two minutes of events over three keys, in bursts (so sessions split), shuffled within
/// one second (less than the 2 s watermark delay: nothing is late).
fn events(seed: u64, n: usize) -> Vec<(i64, &'static str, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = 1_767_225_600_000i64;
    let mut ev: Vec<(i64, i64, &'static str, f64)> = (0..n)
        .map(|i| {
            let base = t0 + (i as i64) * 120_000 / n as i64;
            let gap = if (i / 50) % 4 == 3 { 9_000 } else { 0 };
            let ts = base + gap;
            (
                ts + rng.gen_range(0..1_000),
                ts,
                ["a", "b", "c"][rng.gen_range(0..3)],
                rng.gen_range(-100.0..100.0),
            )
        })
        .collect();
    ev.sort_by_key(|e| e.0);
    ev.into_iter().map(|(_, ts, k, v)| (ts, k, v)).collect()
}

async fn push_all(h: &common::Harness, ev: &[(i64, &str, f64)]) {
    for chunk in ev.chunks(37) {
        h.feed
            .push(0, common::rows(&h.schema, chunk))
            .await
            .unwrap();
    }
}

/// Rows of the result, sorted, as text.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut t = common::table(batches);
    t.sort();
    t
}

/// Floats printed by two plans may differ in the last digits where state went through
/// `state` / `merge_batch` (e.g. `stddev`'s mean · n / n); compare them to 1e-12.
fn assert_same(got: &[Vec<String>], want: &[Vec<String>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of result rows");
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.iter().zip(w) {
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => assert!(
                    (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
                    "{what}: {g:?} vs {w:?}"
                ),
                _ => assert_eq!(a, b, "{what}: {g:?} vs {w:?}"),
            }
        }
    }
}

async fn check(monitor: &str, what: &str) {
    let sql = format!("{SOURCE}\n{monitor}");
    let reg = registry();
    let ev = events(9, 4_000);
    // Uninterrupted.
    let h = common::start_with(&sql, None, &reg).await.unwrap();
    push_all(&h, &ev).await;
    let (whole, _) = h.finish().await;
    let whole = rows(&whole);
    assert!(whole.len() > 10, "{what}: enough windows to compare");
    // Interrupted at several points: state goes through a snapshot (and, in the second run,
    // a restore) while windows are open.
    for cut in [1, 977, 2_003, 3_999] {
        let first = common::start_with(&sql, None, &reg).await.unwrap();
        push_all(&first, &ev[..cut]).await;
        // A checkpoint in between must not change anything for the run going on.
        let _ = first.checkpoint(1).await;
        let (snapshot, watermark) = first.checkpoint(2).await;
        let before = first.results();
        drop(first);
        let snapshot = snapshot.expect("windowed monitors snapshot their state");
        let second = common::start_restored(&sql, None, &reg, Some((snapshot, watermark)))
            .await
            .unwrap();
        push_all(&second, &ev[cut..]).await;
        let (after, late) = second.finish().await;
        assert!(
            late.iter().all(|b| b.num_rows() == 0),
            "{what}: nothing late"
        );
        let mut combined = before;
        combined.extend(after);
        assert_same(&rows(&combined), &whole, &format!("{what}, cut at {cut}"));
    }
}

#[tokio::test]
async fn tumble_with_keys_restores_exactly() {
    check(
        &format!(
            "CREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
             FROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end, k;"
        ),
        "tumble",
    )
    .await;
}

#[tokio::test]
async fn hop_with_frozen_panes_restores_exactly() {
    check(
        &format!(
            "CREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
             FROM HOP(s, ts, INTERVAL '4 seconds', INTERVAL '10 seconds') \
             GROUP BY window_start, window_end, k;"
        ),
        "hop",
    )
    .await;
}

#[tokio::test]
async fn sessions_restore_exactly() {
    check(
        &format!(
            "CREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
             FROM SESSION(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end, k;"
        ),
        "session",
    )
    .await;
}

#[tokio::test]
async fn unkeyed_windows_restore_exactly() {
    check(
        &format!(
            "CREATE MONITOR m AS SELECT window_start, window_end, {AGGS} \
             FROM TUMBLE(s, ts, INTERVAL '7 seconds') GROUP BY window_start, window_end;"
        ),
        "unkeyed tumble",
    )
    .await;
}

#[tokio::test]
async fn event_time_ordered_lists_restore_exactly() {
    // `array_agg(… ORDER BY ts)` state goes through snapshots and pane merges sorted by
    // event time (the input is shuffled within the watermark delay).
    check(
        "CREATE MONITOR m AS SELECT window_start, window_end, k, \
         array_agg(v ORDER BY ts) AS xs, page_hinkley(array_agg(v ORDER BY ts), 5, 0.005, 50.0) AS ph, \
         adwin(array_agg(v ORDER BY ts)) AS ad, last_value(v ORDER BY ts) AS last_v \
         FROM HOP(s, ts, INTERVAL '4 seconds', INTERVAL '10 seconds') \
         GROUP BY window_start, window_end, k;",
        "ordered lists",
    )
    .await;
}

#[tokio::test]
async fn row_level_monitors_pass_barriers_without_state() {
    let sql = format!("{SOURCE}\nCREATE MONITOR m AS SELECT ts, k, v * 2 AS w FROM s WHERE v > 0;");
    let ev = events(3, 500);
    let h = common::start(&sql, None).await.unwrap();
    push_all(&h, &ev[..250]).await;
    let (snapshot, _) = h.checkpoint(1).await;
    assert!(snapshot.is_none());
    push_all(&h, &ev[250..]).await;
    let (out, _) = h.finish().await;
    let n: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n, ev.iter().filter(|e| e.2 > 0.0).count());
}
