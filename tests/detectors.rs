//! Change detectors over `array_agg(x ORDER BY ts)` in windowed monitors: the list is in
//! event-time order whatever order the rows arrive in, through pane merges (HOP), sessions
//! and checkpoints.

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use driftwatch_udfs::BaselineRegistry;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A watermark delay longer than the whole stream: shuffled rows are never late, and every
/// window is emitted when the input ends.
const SOURCE: &str = "CREATE SOURCE s (ts TIMESTAMP, k VARCHAR, v DOUBLE, \
                      WATERMARK FOR ts AS ts - INTERVAL '1 hour') WITH (connector = 'http');";

const T0: i64 = 1_767_225_600_000;

/// 1200 rows, one every 50 ms (distinct event times) with two pauses, whose mean jumps by
/// 4 at row 600.
fn stream(seed: u64) -> Vec<(i64, &'static str, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..1_200i64)
        .map(|i| {
            let shift = if i >= 600 { 4.0 } else { 0.0 };
            // Two 15 s pauses split the stream into three sessions.
            let pause = 15_000 * (i / 400);
            (T0 + i * 50 + pause, "a", shift + rng.gen_range(-1.0..1.0))
        })
        .collect()
}

async fn run(monitor: &str, rows: &[(i64, &'static str, f64)]) -> Vec<RecordBatch> {
    let h = common::start_with(
        &format!("{SOURCE}\n{monitor}"),
        None,
        &Arc::new(BaselineRegistry::new()),
    )
    .await
    .expect("the monitor compiles");
    for chunk in rows.chunks(37) {
        h.feed
            .push(0, common::rows(&h.schema, chunk))
            .await
            .unwrap();
    }
    let (results, late) = h.finish().await;
    assert!(late.iter().all(|b| b.num_rows() == 0), "nothing is late");
    results
}

fn sorted(mut t: Vec<Vec<String>>) -> Vec<Vec<String>> {
    t.sort();
    t
}

/// `page_hinkley` and `adwin` evaluated by a plain batch query on the given lists.
async fn detect_batch(lists: &RecordBatch) -> Vec<Vec<String>> {
    let ctx = SessionContext::new();
    driftwatch_udfs::register_all(&ctx, &Arc::new(BaselineRegistry::new()));
    let table = MemTable::try_new(lists.schema(), vec![vec![lists.clone()]]).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    let out = ctx
        .sql("SELECT ws, page_hinkley(xs, 30, 0.005, 5.0), adwin(xs) FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    common::table(&out)
}

const MONITOR: &str = "CREATE MONITOR m AS SELECT window_start AS ws, window_end AS we, \
     page_hinkley(array_agg(v ORDER BY ts), 30, 0.005, 5.0) AS ph, \
     adwin(array_agg(v ORDER BY ts)) AS ad, \
     array_agg(v ORDER BY ts) AS xs, \
     array_agg(ts ORDER BY ts) AS times, \
     first_value(v ORDER BY ts) AS first_v, last_value(v ORDER BY ts) AS last_v \
     FROM {WINDOW} GROUP BY window_start, window_end";

async fn check(window: &str) {
    let sql = MONITOR.replace("{WINDOW}", window);
    let in_order = stream(7);
    let mut shuffled = in_order.clone();
    shuffled.shuffle(&mut StdRng::seed_from_u64(8));
    let ordered = run(&sql, &in_order).await;
    let mixed = run(&sql, &shuffled).await;
    assert_eq!(
        sorted(common::table(&mixed)),
        sorted(common::table(&ordered)),
        "{window}: shuffled input gives the in-order results"
    );
    let mut windows = 0;
    let mut detections = 0;
    for b in &mixed {
        // Each list is in event-time order and holds exactly the window's rows.
        let ws = b.column(0).as_primitive::<TimestampMillisecondType>();
        let we = b.column(1).as_primitive::<TimestampMillisecondType>();
        let xs = b.column(4).as_list::<i32>();
        let times = b.column(5).as_list::<i32>();
        for i in 0..b.num_rows() {
            let want: Vec<(i64, f64)> = in_order
                .iter()
                .filter(|r| r.0 >= ws.value(i) && r.0 < we.value(i))
                .map(|r| (r.0, r.2))
                .collect();
            let t = times.value(i);
            let x = xs.value(i);
            let got: Vec<(i64, f64)> = t
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .iter()
                .copied()
                .zip(x.as_primitive::<Float64Type>().values().iter().copied())
                .collect();
            assert_eq!(
                got, want,
                "{window}: the list is the window's rows by event time"
            );
            let first = b.column(6).as_primitive::<Float64Type>().value(i);
            let last = b.column(7).as_primitive::<Float64Type>().value(i);
            assert_eq!((first, last), (want[0].1, want[want.len() - 1].1));
            windows += 1;
        }
        // The detectors in the monitor agree with the same detectors over those lists.
        let lists = RecordBatch::try_from_iter(vec![
            ("ws", Arc::clone(b.column(0))),
            ("xs", Arc::clone(b.column(4))),
        ])
        .unwrap();
        let monitor: Vec<Vec<String>> = common::table(std::slice::from_ref(b))
            .into_iter()
            .map(|r| vec![r[0].clone(), r[2].clone(), r[3].clone()])
            .collect();
        assert_eq!(monitor, detect_batch(&lists).await, "{window}: detections");
        let ph = b.column(2).as_list::<i32>();
        detections += (0..b.num_rows()).map(|i| ph.value(i).len()).sum::<usize>();
    }
    assert!(windows >= 3, "{window}: {windows} windows");
    assert!(detections > 0, "{window}: the mean shift is detected");
}

#[tokio::test]
async fn tumble_detectors_see_event_time_order() {
    check("TUMBLE(s, ts, INTERVAL '20 seconds')").await;
}

#[tokio::test]
async fn hop_detectors_see_event_time_order_across_pane_merges() {
    check("HOP(s, ts, INTERVAL '10 seconds', INTERVAL '30 seconds')").await;
}

#[tokio::test]
async fn session_detectors_see_event_time_order() {
    check("SESSION(s, ts, INTERVAL '10 seconds')").await;
}

#[tokio::test]
async fn unordered_array_agg_follows_arrival_order() {
    // Without ORDER BY the list is in arrival order: the shuffle shows (the reason the
    // documented form orders by event time).
    let sql = "CREATE MONITOR m AS SELECT array_agg(v) AS xs \
               FROM TUMBLE(s, ts, INTERVAL '60 seconds') GROUP BY window_start, window_end";
    let in_order = stream(7);
    let mut shuffled = in_order.clone();
    shuffled.shuffle(&mut StdRng::seed_from_u64(8));
    assert_ne!(
        common::table(&run(sql, &in_order).await),
        common::table(&run(sql, &shuffled).await)
    );
}
