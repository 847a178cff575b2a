//! Benchmark of the result store (run by `scripts/bench-store.sh`): generates a table of N
//! one-minute windows (one file per window, written with the store's own writer, as a
//! monitor flushing every window does), compacts it, and measures the latency of two
//! dashboard queries — the last hour of results, and a full count — through a long-lived
//! session (as the Flight SQL server keeps) and through a fresh one per query (as
//! `driftwatch query` starts).
//!
//! ```text
//! store_bench generate DIR WINDOWS
//! store_bench compact DIR
//! store_bench query DIR ITERATIONS COLD_ITERATIONS
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use driftwatch::query::{FileAccess, QueryEngine};
use driftwatch::sinks::store::compaction::Policy;
use driftwatch::sinks::ResultStore;
use driftwatch_udfs::BaselineRegistry;

/// First window: 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;
const FEATURES: [&str; 4] = ["f0", "f1", "f2", "f3"];
const TABLE: &str = "drift";

fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(Schema::new(vec![
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("feature", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
    ]))
}

fn window(i: i64) -> RecordBatch {
    let start = T0 + i * MINUTE;
    let k = FEATURES.len();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![start; k])),
            Arc::new(TimestampMillisecondArray::from(vec![start + MINUTE; k])),
            Arc::new(StringArray::from(FEATURES.to_vec())),
            Arc::new(Int64Array::from(vec![100 + i % 7; k])),
            Arc::new(Float64Array::from_iter_values(
                (0..k).map(|f| ((i * 31 + f as i64) % 1000) as f64 / 1000.0),
            )),
        ],
    )
    .expect("window batch")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn windows_of(dir: &std::path::Path) -> i64 {
    std::fs::read_to_string(dir.join("windows.txt"))
        .expect("windows.txt (run generate first)")
        .trim()
        .parse()
        .expect("window count")
}

async fn measure<F, Fut>(label: &str, iterations: usize, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        run().await;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{label:<28} p50 {:>10.3} ms  p99 {:>10.3} ms  (n={iterations})",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: store_bench generate DIR WINDOWS | compact DIR | query DIR ITERATIONS COLD_ITERATIONS";
    let dir = PathBuf::from(args.get(2).expect(usage));
    match args.get(1).map(String::as_str) {
        Some("generate") => {
            let n: i64 = args.get(3).expect(usage).parse().expect(usage);
            let store = ResultStore::new(&dir);
            let started = Instant::now();
            let mut w = store.open(TABLE, schema(), 0).expect("open table");
            for i in 0..n {
                w.append(window(i)).expect("append");
                w.flush().expect("flush");
            }
            drop(w);
            std::fs::write(dir.join("windows.txt"), n.to_string()).expect("windows.txt");
            println!(
                "generated {n} windows in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Some("compact") => {
            let store = ResultStore::new(&dir);
            let before = store.snapshot(TABLE).expect("snapshot").files.len();
            let started = Instant::now();
            let policy = Policy {
                interval: None,
                delete_after: Duration::ZERO,
                ..Policy::default()
            };
            let r = store.compact_until_idle(&policy).expect("compaction");
            // One more round deletes what the last merges replaced.
            let gc = store.compact_round(&policy).expect("compaction");
            let after = store.snapshot(TABLE).expect("snapshot").files.len();
            println!(
                "compacted {} files into {} merges in {:.1} s: {before} -> {after} visible files ({} deleted)",
                r.inputs,
                r.merges,
                started.elapsed().as_secs_f64(),
                r.deleted + gc.deleted
            );
        }
        Some("query") => {
            let iterations: usize = args.get(3).expect(usage).parse().expect(usage);
            let cold: usize = args.get(4).expect(usage).parse().expect(usage);
            let n = windows_of(&dir);
            let from = T0 + (n - 60).max(0) * MINUTE;
            let last_hour = format!(
                "SELECT feature, avg(score) AS score, sum(n) AS n FROM {TABLE} \
                 WHERE window_start >= to_timestamp_millis({from}) GROUP BY feature ORDER BY feature"
            );
            let count = format!("SELECT count(*) FROM {TABLE}");
            // Check the answers once.
            let store = ResultStore::new(&dir);
            let rows: usize = QueryEngine::run(&store, &last_hour)
                .await
                .expect("last hour")
                .iter()
                .map(|b| b.num_rows())
                .sum();
            assert_eq!(rows, FEATURES.len());
            let total = QueryEngine::run(&store, &count).await.expect("count");
            let total = total[0]
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("count")
                .value(0);
            assert_eq!(
                total,
                n * FEATURES.len() as i64,
                "every window counted once"
            );

            // A long-lived session over a shared store (the Flight SQL server).
            let ctx = QueryEngine::session(
                &store,
                &Arc::new(BaselineRegistry::new()),
                FileAccess::CatalogOnly,
            )
            .expect("session");
            QueryEngine::register_data_dir(&ctx, &store)
                .await
                .expect("tables");
            for (label, sql) in [
                ("server: last hour", &last_hour),
                ("server: full count", &count),
            ] {
                measure(label, iterations, || {
                    let ctx = ctx.clone();
                    async move {
                        ctx.sql(sql)
                            .await
                            .expect("plan")
                            .collect()
                            .await
                            .expect("run");
                    }
                })
                .await;
            }
            // A new session and store per query (`driftwatch query`).
            for (label, sql) in [("cli: last hour", &last_hour), ("cli: full count", &count)] {
                measure(label, cold, || {
                    let dir = dir.clone();
                    async move {
                        QueryEngine::run(&ResultStore::new(&dir), sql)
                            .await
                            .expect("run");
                    }
                })
                .await;
            }
        }
        _ => panic!("{usage}"),
    }
}
