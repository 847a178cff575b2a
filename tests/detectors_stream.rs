//! Streaming change detectors (`page_hinkley_stream(x, ts, key)` and the others) in
//! row-level monitors: their state carries across micro-batches and window boundaries, per
//! key; each change is reported once; the state survives a checkpoint and restore.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use driftwatch::engine::snapshot::WindowSnapshot;
use driftwatch_udfs::detect::stream::{stream_detector_functions, StreamDetectors, MAX_KEYS};
use driftwatch_udfs::math::adwin::{adwin, Adwin};
use driftwatch_udfs::math::detectors::{cusum, ddm, page_hinkley, Cusum, Ddm, PageHinkley};
use driftwatch_udfs::BaselineRegistry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SOURCE: &str = "CREATE SOURCE s (ts TIMESTAMP, k VARCHAR, v DOUBLE, \
                      WATERMARK FOR ts AS ts - INTERVAL '1 hour') WITH (connector = 'http');";

const T0: i64 = 1_767_225_600_000;

/// Every detector on every row; `ddm` reads `v > 1` as the error indicator.
const MONITOR: &str = "CREATE MONITOR m AS SELECT ts, k, v, \
     page_hinkley_stream(v, ts, k, 30, 0.005, 5.0) AS ph, \
     adwin_stream(v, ts, k) AS ad, \
     cusum_stream(v, ts, k) AS cs, \
     ddm_stream(CASE WHEN v > 1.0 THEN 1.0 ELSE 0.0 END, ts, k) AS dd \
     FROM s";

/// Two keys interleaved, one row every 10 ms: key `a` shifts its mean up by 2 at its rows
/// 500 and 1300, key `b` by 1.5 at its row 900; the error rate (`v > 1`) rises with it.
fn stream(seed: u64) -> Vec<(i64, &'static str, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for i in 0..2_000i64 {
        let a = if i >= 1_300 {
            4.0
        } else if i >= 500 {
            2.0
        } else {
            0.0
        };
        let b = if i >= 900 { 1.5 } else { 0.0 };
        out.push((T0 + i * 10, "a", a + rng.gen_range(-1.0..1.0)));
        out.push((T0 + i * 10 + 5, "b", b + rng.gen_range(-1.0..1.0)));
    }
    out
}

async fn feed(h: &common::Harness, rows: &[(i64, &'static str, f64)]) {
    for chunk in rows.chunks(37) {
        h.feed
            .push(0, common::rows(&h.schema, chunk))
            .await
            .unwrap();
    }
}

async fn run(monitor: &str, rows: &[(i64, &'static str, f64)]) -> Vec<RecordBatch> {
    let h = common::start(&format!("{SOURCE}\n{monitor}"), None)
        .await
        .expect("the monitor compiles");
    feed(&h, rows).await;
    h.finish().await.0
}

/// A detection: (key, row, position, event time, ordinal).
type Detection = (String, i64, i64, i64, i64);

/// The detections of result column `col`, in output order.
fn detections(batches: &[RecordBatch], col: &str) -> Vec<Detection> {
    let mut out = Vec::new();
    for b in batches {
        let k = b.column_by_name("k").unwrap().as_string::<i32>();
        let d = b.column_by_name(col).unwrap().as_struct();
        let int = |f: &str| {
            d.column_by_name(f)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (row, pos, det) = (int("row"), int("position"), int("detection"));
        let t = d.column_by_name("event_time").unwrap();
        let t = t.as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            if d.is_valid(i) {
                out.push((
                    k.value(i).to_string(),
                    row.value(i),
                    pos.value(i),
                    t.value(i),
                    det.value(i),
                ));
            }
        }
    }
    out
}

/// What the list kernel over each key's whole sequence says, as [`Detection`]s.
fn expected(
    rows: &[(i64, &'static str, f64)],
    kernel: impl Fn(Vec<Option<f64>>) -> Vec<i64>,
) -> Vec<Detection> {
    let mut per_key: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
    for r in rows {
        per_key.entry(r.1).or_default().push((r.0, r.2));
    }
    let mut out = Vec::new();
    for (k, seq) in per_key {
        let mut prev = 0;
        for (n, p) in kernel(seq.iter().map(|r| Some(r.1)).collect())
            .into_iter()
            .enumerate()
        {
            out.push((
                k.to_string(),
                p,
                p - prev,
                seq[p as usize - 1].0,
                n as i64 + 1,
            ));
            prev = p;
        }
    }
    out.sort_by_key(|d| d.3);
    out
}

/// A list kernel: the 1-based detection positions of a sequence.
type Kernel = dyn Fn(Vec<Option<f64>>) -> Vec<i64>;

fn check_all(batches: &[RecordBatch], rows: &[(i64, &'static str, f64)]) {
    let ph = PageHinkley {
        threshold: 5.0,
        ..PageHinkley::default()
    };
    let err = |xs: Vec<Option<f64>>| -> Vec<Option<f64>> {
        xs.into_iter()
            .map(|x| x.map(|v| f64::from(u8::from(v > 1.0))))
            .collect()
    };
    let cases: [(&str, Box<Kernel>); 4] = [
        ("ph", Box::new(move |xs| page_hinkley(xs, &ph))),
        ("ad", Box::new(|xs| adwin(xs, &Adwin::default()))),
        ("cs", Box::new(|xs| cusum(xs, &Cusum::default()))),
        ("dd", Box::new(move |xs| ddm(err(xs), &Ddm::default()))),
    ];
    for (col, kernel) in cases {
        let want = expected(rows, kernel);
        let got = detections(batches, col);
        assert!(
            want.iter().any(|d| d.0 == "a") && want.iter().any(|d| d.0 == "b"),
            "{col}: both keys' shifts are detected: {want:?}"
        );
        assert_eq!(
            got, want,
            "{col}: streaming = kernel over each key's sequence"
        );
    }
}

#[tokio::test]
async fn detections_equal_kernels_over_each_keys_whole_sequence() {
    let rows = stream(1);
    let out = run(MONITOR, &rows).await;
    // One result row per input row, NULL except on detecting rows.
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), rows.len());
    check_all(&out, &rows);
}

#[tokio::test]
async fn each_change_is_reported_once_where_hop_windows_repeat_it() {
    let rows: Vec<_> = stream(2).into_iter().filter(|r| r.1 == "a").collect();
    let sql = "CREATE MONITOR m AS SELECT * FROM (SELECT ts, k, \
               page_hinkley_stream(v, ts, NULL, 30, 0.005, 20.0) AS ph FROM s) \
               WHERE ph IS NOT NULL";
    let out = run(sql, &rows).await;
    let got = detections(&out, "ph");
    let p = PageHinkley {
        threshold: 20.0,
        ..PageHinkley::default()
    };
    let want = expected(&rows, |xs| page_hinkley(xs, &p));
    assert_eq!(got, want);
    // Only detecting rows pass the filter: the detector ran on every row all the same.
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), want.len());
    let first_shift = T0 + 500 * 10;
    let near = |t: i64| t >= first_shift && t < first_shift + 3_000;
    assert_eq!(got.iter().filter(|d| near(d.3)).count(), 1, "{got:?}");

    // The per-window form restarts in every window: 2 s windows every 0.5 s that contain
    // the first shift each report it.
    let hop = "CREATE MONITOR m AS SELECT array_agg(ts ORDER BY ts) AS times, \
               page_hinkley(array_agg(v ORDER BY ts), 30, 0.005, 20.0) AS ph \
               FROM HOP(s, ts, INTERVAL '500 milliseconds', INTERVAL '8 seconds') \
               GROUP BY window_start, window_end";
    let out = run(hop, &rows).await;
    let mut windows_reporting = 0;
    for b in &out {
        let times = b.column(0).as_list::<i32>();
        let ph = b.column(1).as_list::<i32>();
        for i in 0..b.num_rows() {
            let t = times.value(i);
            let t = t.as_primitive::<TimestampMillisecondType>();
            let pos = ph.value(i);
            let pos = pos.as_primitive::<Int64Type>();
            // a detection within 3 s after the shift, in this window
            if pos.values().iter().any(|&p| near(t.value(p as usize - 1))) {
                windows_reporting += 1;
            }
        }
    }
    assert!(
        windows_reporting > 1,
        "{windows_reporting} windows report it"
    );
}

#[tokio::test]
async fn field_access_above_the_detector_evaluates_it_once_per_row() {
    // DataFusion's leaf-expression pushdown would copy `ph['row']` next to the call it
    // reads, running the detector twice per row.
    let rows = stream(6);
    let sql = "CREATE MONITOR m AS SELECT k, ph['row'] AS ph_row, ph['position'] AS ph_pos, \
               ad['row'] AS ad_row FROM (SELECT k, \
               page_hinkley_stream(v, ts, k, 30, 0.005, 5.0) AS ph, adwin_stream(v, ts, k) AS ad \
               FROM s) WHERE ph IS NOT NULL OR ad IS NOT NULL";
    let out = run(sql, &rows).await;
    let p = PageHinkley {
        threshold: 5.0,
        ..PageHinkley::default()
    };
    let mut got_ph = Vec::new();
    let mut got_ad = Vec::new();
    for b in &out {
        let k = b.column(0).as_string::<i32>();
        let col = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let (ph_row, ph_pos, ad_row) = (col(1), col(2), col(3));
        for i in 0..b.num_rows() {
            if ph_row.is_valid(i) {
                got_ph.push((k.value(i).to_string(), ph_row.value(i), ph_pos.value(i)));
            }
            if ad_row.is_valid(i) {
                got_ad.push((k.value(i).to_string(), ad_row.value(i)));
            }
        }
    }
    let want_ph: Vec<_> = expected(&rows, |xs| page_hinkley(xs, &p))
        .into_iter()
        .map(|d| (d.0, d.1, d.2))
        .collect();
    let want_ad: Vec<_> = expected(&rows, |xs| adwin(xs, &Adwin::default()))
        .into_iter()
        .map(|d| (d.0, d.1))
        .collect();
    assert!(!want_ph.is_empty() && !want_ad.is_empty());
    assert_eq!((got_ph, got_ad), (want_ph, want_ad));
}

/// Runs the monitor over `rows` with a checkpoint after `cut` rows, then a fresh plan
/// restored from it over the rest; returns the results of both parts.
async fn run_with_restart(
    monitor: &str,
    rows: &[(i64, &'static str, f64)],
    cut: usize,
) -> Vec<RecordBatch> {
    let sql = format!("{SOURCE}\n{monitor}");
    let h = common::start(&sql, None).await.unwrap();
    feed(&h, &rows[..cut]).await;
    let (snapshot, watermark) = h.checkpoint(1).await;
    let mut out = h.results();
    // As after kill -9: the plan is gone, nothing after the barrier counts.
    h.done.abort();
    let snapshot: WindowSnapshot = snapshot.expect("row-level plan with detectors snapshots");
    assert!(
        snapshot.rows() >= 1,
        "the detector state is in the snapshot"
    );
    let h = common::start_restored(
        &sql,
        None,
        &Arc::new(BaselineRegistry::new()),
        Some((snapshot, watermark)),
    )
    .await
    .unwrap();
    feed(&h, &rows[cut..]).await;
    out.extend(h.finish().await.0);
    out
}

#[tokio::test]
async fn restore_from_checkpoint_gives_the_uninterrupted_detections() {
    let rows = stream(3);
    let whole = run(MONITOR, &rows).await;
    check_all(&whole, &rows);
    let want = common::table(&whole);
    // Cuts inside a micro-batch, just after detections, in warm-up periods.
    let ad = detections(&whole, "ad");
    let after_detection = 2 * ad[0].1 as usize;
    for cut in [37, 1_001, after_detection, after_detection + 1, 3_333] {
        let got = run_with_restart(MONITOR, &rows, cut).await;
        assert_eq!(common::table(&got), want, "restart after {cut} rows");
    }
}

#[tokio::test]
async fn out_of_order_rows_are_skipped_per_key() {
    let mut rows: Vec<_> = stream(4).into_iter().filter(|r| r.1 == "a").collect();
    let in_order = rows.clone();
    // A row of key `a` older than the last one taken: skipped (NULL result, not counted);
    // a row of another key at that time is taken.
    let stale = [(T0 + 3, "a", 100.0), (T0 + 3, "c", 1.0)];
    rows.splice(700..700, stale);
    let sql = "CREATE MONITOR m AS SELECT ts, k, cusum_stream(v, ts, k) AS cs FROM s";
    let out = run(sql, &rows).await;
    let got: Vec<_> = detections(&out, "cs");
    let want = expected(&in_order, |xs| cusum(xs, &Cusum::default()));
    assert!(!want.is_empty());
    assert_eq!(got, want, "the stale row changes nothing");
}

#[tokio::test]
async fn misuse_is_a_plan_error() {
    let cases = [
        (
            "CREATE MONITOR m AS SELECT window_start, max(v) AS x FROM TUMBLE(s, ts, INTERVAL '1 second') \
             WHERE adwin_stream(v, ts) IS NULL GROUP BY window_start, window_end",
            "row-level monitor",
        ),
        (
            "CREATE MONITOR m AS SELECT ts, page_hinkley_stream(v, ts) AS a FROM s \
             WHERE page_hinkley_stream(v, ts) IS NOT NULL",
            "called 2 times",
        ),
        (
            "CREATE MONITOR m AS SELECT adwin_stream(v) AS a FROM s",
            "expects (value, event time",
        ),
        (
            "CREATE MONITOR m AS SELECT adwin_stream(v, ts, k, 0.1, 0) AS a FROM s",
            "clock must be an integer",
        ),
    ];
    for (monitor, want) in cases {
        let e = match common::start(&format!("{SOURCE}\n{monitor}"), None).await {
            Ok(h) => {
                // parameter errors surface when the first batch is evaluated
                feed(&h, &stream(5)[..10]).await;
                h.feed.finish().await.unwrap();
                h.done.await.unwrap().unwrap_err().to_string()
            }
            Err(e) => e.to_string(),
        };
        assert!(e.contains(want), "{monitor}: {e}");
    }
}

#[tokio::test]
async fn key_limit_evicts_least_recently_updated_keys() {
    let store = Arc::new(StreamDetectors::default());
    let ctx = SessionContext::new();
    for f in stream_detector_functions(&store) {
        ctx.register_udf(f);
    }
    let n = MAX_KEYS + 1;
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let batch = RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as _,
        ),
        ("k", Arc::new(StringArray::from(keys)) as _),
        ("v", Arc::new(Float64Array::from(vec![1.0; n])) as _),
    ])
    .unwrap();
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    ctx.sql("SELECT page_hinkley_stream(v, ts, k) FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(store.evicted(), (MAX_KEYS / 10) as u64);
    assert_eq!(store.keys(), n - MAX_KEYS / 10);
    // the oldest keys went: k0 starts afresh (row 1) when it returns
    let snap = store.snapshot().unwrap().unwrap();
    let key = snap.column(1).as_string::<i32>();
    assert!((0..snap.num_rows()).all(|i| key.value(i) != "k0"));
    assert!((0..snap.num_rows()).any(|i| key.value(i) == format!("k{}", MAX_KEYS / 10)));
    // a restored store holds the same state
    let other = StreamDetectors::default();
    other.restore(&snap).unwrap();
    assert_eq!(other.keys(), store.keys());
    assert_eq!(
        common::table(&[other.snapshot().unwrap().unwrap()]).len(),
        snap.num_rows()
    );
}
