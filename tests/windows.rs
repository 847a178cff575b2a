//! Window contents (tumble, hop, session) against an expectation computed independently on
//! generated data; out-of-order input within the watermark; idle close; late rows; exactly-
//! once emission.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SOURCE: &str = "CREATE SOURCE s (ts TIMESTAMP, k VARCHAR, v DOUBLE, \
                      WATERMARK FOR ts AS ts - INTERVAL '2 seconds') WITH (connector = 'http');";

/// Aggregates of one window and key: count, sum, min, max.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Agg {
    n: i64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Agg {
    fn add(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
    fn new() -> Self {
        Agg {
            n: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

type Expected = BTreeMap<(i64, i64, String), Agg>;

/// Events over two minutes, three keys, shuffled within `disorder_ms` (less than the
/// watermark delay, so nothing is late).
fn events(seed: u64, n: usize, disorder_ms: i64) -> Vec<(i64, String, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = 1_767_225_600_000i64;
    let mut ev: Vec<(i64, String, f64)> = (0..n)
        .map(|i| {
            // Bursts with gaps so sessions split.
            let base = t0 + (i as i64) * 120_000 / n as i64;
            let gap = if (i / 50) % 4 == 3 { 9_000 } else { 0 };
            (
                base + gap,
                ["a", "b", "c"][rng.gen_range(0..3)].to_string(),
                rng.gen_range(-100.0..100.0),
            )
        })
        .collect();
    ev.sort_by_key(|e| e.0);
    // Bounded disorder: sort by a jittered key.
    let mut keyed: Vec<(i64, (i64, String, f64))> = ev
        .into_iter()
        .map(|e| (e.0 + rng.gen_range(0..=disorder_ms), e))
        .collect();
    keyed.sort_by_key(|k| k.0);
    keyed.into_iter().map(|k| k.1).collect()
}

async fn run(
    monitor: &str,
    ev: &[(i64, String, f64)],
    seed: u64,
) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    let h = common::start(&format!("{SOURCE}\n{monitor}"), None)
        .await
        .expect("plans");
    push_events(&h, ev, seed, 40).await;
    h.finish().await
}

fn actual(batches: &[RecordBatch]) -> Vec<((i64, i64, String), Agg)> {
    let mut out = Vec::new();
    for b in batches {
        let s = b.column(0).as_primitive::<TimestampMillisecondType>();
        let e = b.column(1).as_primitive::<TimestampMillisecondType>();
        let k = b.column(2).as_string::<i32>();
        let n = b.column(3).as_primitive::<Int64Type>();
        let sum = b.column(4).as_primitive::<Float64Type>();
        let min = b.column(5).as_primitive::<Float64Type>();
        let max = b.column(6).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((
                (s.value(i), e.value(i), k.value(i).to_string()),
                Agg {
                    n: n.value(i),
                    sum: sum.value(i),
                    min: min.value(i),
                    max: max.value(i),
                },
            ));
        }
    }
    out
}

fn compare(expected: &Expected, batches: &[RecordBatch]) {
    let got = actual(batches);
    let keys: HashSet<_> = got.iter().map(|g| g.0.clone()).collect();
    assert_eq!(
        keys.len(),
        got.len(),
        "a window/key was emitted more than once"
    );
    assert_eq!(got.len(), expected.len(), "number of (window, key) results");
    for (key, agg) in got {
        let want = expected
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected window {key:?}"));
        assert_eq!(agg.n, want.n, "count of {key:?}");
        assert!(
            (agg.sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0),
            "sum of {key:?}"
        );
        assert_eq!(
            (agg.min, agg.max),
            (want.min, want.max),
            "min/max of {key:?}"
        );
    }
}

const AGGS: &str = "count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi";

#[tokio::test]
async fn tumble_matches_independent_expectation_with_out_of_order_input() {
    let ev = events(1, 3_000, 1_500);
    let mut expected = Expected::new();
    for (ts, k, v) in &ev {
        let start = ts.div_euclid(10_000) * 10_000;
        expected
            .entry((start, start + 10_000, k.clone()))
            .or_insert_with(Agg::new)
            .add(*v);
    }
    let (results, late) = run(
        &format!(
            "CREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
                  FROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end, k"
        ),
        &ev,
        2,
    )
    .await;
    assert!(
        late.is_empty(),
        "disorder within the watermark delay is not late"
    );
    compare(&expected, &results);
}

#[tokio::test]
async fn hop_matches_independent_expectation() {
    let ev = events(3, 2_000, 1_000);
    let (size, slide) = (10_000i64, 4_000i64);
    let mut expected = Expected::new();
    for (ts, k, v) in &ev {
        // Every window [w, w + size) with w a multiple of slide that contains ts.
        let mut w = ts.div_euclid(slide) * slide;
        while w + size > *ts {
            expected
                .entry((w, w + size, k.clone()))
                .or_insert_with(Agg::new)
                .add(*v);
            w -= slide;
        }
    }
    let (results, late) = run(
        &format!("CREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
                  FROM HOP(s, ts, INTERVAL '4 seconds', INTERVAL '10 seconds') GROUP BY window_start, window_end, k"),
        &ev,
        4,
    )
    .await;
    assert!(late.is_empty());
    compare(&expected, &results);
}

#[tokio::test]
async fn session_matches_independent_expectation() {
    let ev = events(5, 1_200, 500);
    let gap = 3_000i64;
    let mut by_key: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (ts, k, v) in &ev {
        by_key.entry(k.clone()).or_default().push((*ts, *v));
    }
    let mut expected = Expected::new();
    for (k, mut rows) in by_key {
        rows.sort_by_key(|r| r.0);
        let mut start = rows[0].0;
        let mut last = rows[0].0;
        let mut agg = Agg::new();
        for (ts, v) in rows {
            if ts >= last + gap {
                expected.insert((start, last + gap, k.clone()), agg);
                start = ts;
                agg = Agg::new();
            }
            last = ts;
            agg.add(v);
        }
        expected.insert((start, last + gap, k.clone()), agg);
    }
    let (results, late) = run(
        &format!(
            "CREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
                  FROM SESSION(s, ts, INTERVAL '3 seconds') GROUP BY window_start, window_end, k"
        ),
        &ev,
        6,
    )
    .await;
    assert!(late.is_empty());
    compare(&expected, &results);
}

#[tokio::test]
async fn late_rows_are_counted_kept_and_never_refire_a_window() {
    let sql = format!("{SOURCE}\nCREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
                       FROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end, k");
    let h = common::start(&sql, None).await.unwrap();
    let t0 = 1_767_225_600_000i64;
    let on_time: Vec<(i64, &str, f64)> = (0..30).map(|i| (t0 + i * 1_000, "a", 1.0)).collect();
    h.feed
        .push(0, common::rows(&h.schema, &on_time))
        .await
        .unwrap();
    // Watermark is now t0 + 27 s: window [t0, t0 + 10 s) has been emitted.
    h.feed
        .push(
            0,
            common::rows(
                &h.schema,
                &[(t0 + 2_000, "a", 100.0), (t0 + 29_500, "a", 1.0)],
            ),
        )
        .await
        .unwrap();
    let (results, late) = h.finish().await;
    let got = actual(&results);
    let first: Vec<_> = got.iter().filter(|g| g.0 .0 == t0).collect();
    assert_eq!(first.len(), 1, "the first window is emitted exactly once");
    assert_eq!(first[0].1.n, 10, "the late row did not change it");
    assert_eq!(first[0].1.max, 1.0);
    let late_rows: usize = late.iter().map(|b| b.num_rows()).sum();
    assert_eq!(late_rows, 1, "the late row is kept");
    let reason = late[0]
        .column_by_name("_late_reason")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_string();
    assert!(reason.contains("already emitted"), "{reason}");
    let total: i64 = got.iter().map(|g| g.1.n).sum();
    assert_eq!(total, 31, "every on-time row is in exactly one window");
}

#[tokio::test]
async fn allowed_lateness_delays_emission_and_admits_rows() {
    let sql = format!("{SOURCE}\nCREATE MONITOR m WITH (allowed_lateness = '5 seconds') AS \
                       SELECT window_start, window_end, k, {AGGS} \
                       FROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end, k");
    let h = common::start(&sql, None).await.unwrap();
    let t0 = 1_767_225_600_000i64;
    // Watermark t0 + 12 s: past the first window's end but within its lateness.
    h.feed
        .push(
            0,
            common::rows(&h.schema, &[(t0, "a", 1.0), (t0 + 14_000, "a", 1.0)]),
        )
        .await
        .unwrap();
    h.feed
        .push(0, common::rows(&h.schema, &[(t0 + 5_000, "a", 7.0)]))
        .await
        .unwrap();
    let (results, late) = h.finish().await;
    assert!(late.is_empty());
    let got = actual(&results);
    assert_eq!(
        got[0].1.n, 2,
        "the row within allowed lateness was admitted"
    );
    assert_eq!(got[0].1.max, 7.0);
}

#[tokio::test]
async fn idle_source_closes_its_last_window_without_new_data() {
    // The WHERE clause matters: a filter must not hold rows back waiting for a full batch.
    let sql = format!("{SOURCE}\nCREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
                       FROM TUMBLE(s, ts, INTERVAL '1 second') WHERE v > 0 GROUP BY window_start, window_end, k");
    let h = common::start(&sql, Some(Duration::from_millis(100)))
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    h.feed
        .push(0, common::rows(&h.schema, &[(now, "a", 1.0)]))
        .await
        .unwrap();
    let feed = h.feed.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            feed.tick().await.unwrap();
        }
    });
    // The window ends within 1 s; watermark delay 2 s; idle after 100 ms.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while h.results().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ticker.abort();
    let got = actual(&h.results());
    assert_eq!(
        got.len(),
        1,
        "the last window closed while the source was idle"
    );
    assert_eq!(got[0].1.n, 1);
}

#[tokio::test]
async fn second_partition_holds_the_watermark_until_it_delivers() {
    let sql = format!("{SOURCE}\nCREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS} \
                       FROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end, k");
    let h = common::start(&sql, None).await.unwrap();
    let t0 = 1_767_225_600_000i64;
    h.feed.register_partition(1);
    h.feed
        .push(
            0,
            common::rows(&h.schema, &[(t0, "a", 1.0), (t0 + 30_000, "a", 1.0)]),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.results().is_empty(), "partition 1 has not delivered yet");
    h.feed
        .push(1, common::rows(&h.schema, &[(t0 + 25_000, "b", 2.0)]))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.results().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = actual(&h.results());
    assert_eq!(
        got.len(),
        1,
        "window [t0, t0+10s) closed once both partitions passed it"
    );
    assert_eq!(got[0].0 .0, t0);
    let _ = h.finish().await;
}

#[tokio::test]
async fn long_view_covers_every_numeric_column() {
    let sql = "CREATE SOURCE w (ts TIMESTAMP, a DOUBLE, b BIGINT, tag VARCHAR, \
               WATERMARK FOR ts AS ts) WITH (connector = 'http');
               CREATE MONITOR m AS SELECT window_start, window_end, feature, count(value) AS n, sum(value) AS s \
               FROM TUMBLE(features(w), ts, INTERVAL '10 seconds') GROUP BY window_start, window_end, feature";
    let h = common::start(sql, None).await.unwrap();
    let schema = std::sync::Arc::clone(&h.schema.arrow);
    let batch = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(arrow::array::TimestampMillisecondArray::from(vec![
                0, 1_000, 11_000,
            ])),
            std::sync::Arc::new(arrow::array::Float64Array::from(vec![
                Some(1.5),
                None,
                Some(4.0),
            ])),
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![10, 20, 30])),
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["x", "y", "z"])),
        ],
    )
    .unwrap();
    h.feed.push(0, batch).await.unwrap();
    let (results, _) = h.finish().await;
    let mut t = common::table(&results);
    t.sort();
    assert_eq!(
        t,
        vec![
            vec![
                "1970-01-01T00:00:00",
                "1970-01-01T00:00:10",
                "a",
                "1",
                "1.5"
            ],
            vec![
                "1970-01-01T00:00:00",
                "1970-01-01T00:00:10",
                "b",
                "2",
                "30.0"
            ],
            vec![
                "1970-01-01T00:00:10",
                "1970-01-01T00:00:20",
                "a",
                "1",
                "4.0"
            ],
            vec![
                "1970-01-01T00:00:10",
                "1970-01-01T00:00:20",
                "b",
                "1",
                "30.0"
            ],
        ]
    );
    let _ = Array::len(&arrow::array::Int32Array::from(vec![1]));
}

/// Events every 100 ms over ten minutes, three keys, small integral values (sums are exact
/// whatever the merge order), disordered within 1 s.
fn dense_events(seed: u64) -> Vec<(i64, String, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = 1_767_225_600_000i64;
    let mut keyed: Vec<(i64, (i64, String, f64))> = (0..6_000i64)
        .map(|i| {
            let ts = t0
                + i * 100
                + if (i / 700) % 3 == 2 {
                    0
                } else {
                    rng.gen_range(0..100)
                };
            let e = (
                ts,
                ["a", "b", "c"][rng.gen_range(0..3)].to_string(),
                rng.gen_range(-50..50) as f64,
            );
            (ts + rng.gen_range(0..1_000), e)
        })
        // A quiet stretch, so some windows are empty and skipped.
        .filter(|(_, e)| !(t0 + 200_000..t0 + 290_000).contains(&e.0))
        .collect();
    keyed.sort_by_key(|k| k.0);
    keyed.into_iter().map(|k| k.1).collect()
}

/// Pushes `ev` in chunks of random size below `max_chunk`, seeded.
async fn push_events(h: &common::Harness, ev: &[(i64, String, f64)], seed: u64, max_chunk: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut i = 0;
    while i < ev.len() {
        let n = rng.gen_range(1..max_chunk).min(ev.len() - i);
        let chunk: Vec<(i64, &str, f64)> = ev[i..i + n]
            .iter()
            .map(|e| (e.0, e.1.as_str(), e.2))
            .collect();
        h.feed
            .push(0, common::rows(&h.schema, &chunk))
            .await
            .unwrap();
        i += n;
    }
}

/// HOP windows of 60 panes, emitted through the sliding (Two-Stacks) merge for bounded
/// states and the per-window merge for list states (`count(DISTINCT v)`), against a direct
/// recomputation from the rows — uninterrupted and restored from a snapshot taken while
/// windows are open, at several points.
#[tokio::test]
async fn hop_over_many_panes_matches_recomputation_across_restore() {
    let ev = dense_events(11);
    let (size, slide) = (60_000i64, 1_000i64);
    let mut expected: BTreeMap<(i64, i64, String), (Agg, HashSet<i64>)> = BTreeMap::new();
    for (ts, k, v) in &ev {
        let mut w = ts.div_euclid(slide) * slide;
        while w + size > *ts {
            let e = expected
                .entry((w, w + size, k.clone()))
                .or_insert_with(|| (Agg::new(), HashSet::new()));
            e.0.add(*v);
            e.1.insert(*v as i64);
            w -= slide;
        }
    }
    // Bounded states go through the sliding merge; `count(DISTINCT v)` (a list state)
    // makes the monitor merge each window's panes directly.
    for distinct in [false, true] {
        let extra = if distinct {
            ", count(DISTINCT v) AS d"
        } else {
            ""
        };
        let sql = format!(
            "{SOURCE}\nCREATE MONITOR m AS SELECT window_start, window_end, k, {AGGS}{extra} \
             FROM HOP(s, ts, INTERVAL '1 second', INTERVAL '1 minute') \
             GROUP BY window_start, window_end, k"
        );
        check_hop(&sql, &ev, &expected, distinct).await;
    }
}

async fn check_hop(
    sql: &str,
    ev: &[(i64, String, f64)],
    expected: &BTreeMap<(i64, i64, String), (Agg, HashSet<i64>)>,
    distinct: bool,
) {
    let check = |batches: &[RecordBatch], what: &str| {
        let got = actual(batches);
        let mut counts = Vec::new();
        for b in batches {
            if distinct {
                let d = b.column(7).as_primitive::<Int64Type>();
                counts.extend((0..b.num_rows()).map(|i| Some(d.value(i))));
            } else {
                counts.extend((0..b.num_rows()).map(|_| None));
            }
        }
        let keys: HashSet<_> = got.iter().map(|g| g.0.clone()).collect();
        assert_eq!(keys.len(), got.len(), "{what}: a window/key emitted twice");
        assert_eq!(got.len(), expected.len(), "{what}: number of results");
        for ((key, agg), d) in got.into_iter().zip(counts) {
            let (want, values) = expected
                .get(&key)
                .unwrap_or_else(|| panic!("{what}: unexpected window {key:?}"));
            assert_eq!(agg, *want, "{what}: aggregates of {key:?}");
            if let Some(d) = d {
                assert_eq!(d, values.len() as i64, "{what}: distinct values of {key:?}");
            }
        }
    };
    let reg = std::sync::Arc::new(driftwatch_udfs::BaselineRegistry::new());
    let h = common::start_with(sql, None, &reg).await.unwrap();
    push_events(&h, ev, 12, 80).await;
    let (whole, late) = h.finish().await;
    assert!(late.iter().all(|b| b.num_rows() == 0));
    check(&whole, "uninterrupted");
    for cut in [1_500, 2_222, 4_100] {
        let first = common::start_with(sql, None, &reg).await.unwrap();
        push_events(&first, &ev[..cut], 13, 80).await;
        let (snapshot, watermark) = first.checkpoint(1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = first.results();
        drop(first);
        let snapshot = snapshot.expect("open panes are snapshotted");
        let second = common::start_restored(sql, None, &reg, Some((snapshot, watermark)))
            .await
            .unwrap();
        push_events(&second, &ev[cut..], 14, 80).await;
        let (after, _) = second.finish().await;
        let mut combined = before;
        combined.extend(after);
        check(&combined, &format!("restored at row {cut}"));
    }
}
