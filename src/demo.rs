//! `driftwatch demo`: the Iris example (examples/iris) fed by generated traffic posted to the
//! HTTP ingest as a model server's inference logger would, drifting on the petal features
//! after a while, with results printed as windows close. About one request in
//! [`OUTLIER_EVERY`] carries a petal length recorded in millimetres instead of centimetres,
//! which the per-request outlier monitor flags at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use arrow::record_batch::RecordBatch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::runtime::script::MonitorScript;
use crate::runtime::{Driftwatch, RuntimeConfig};

/// The Iris training set shipped with the example.
pub const IRIS_CSV: &str = include_str!("../examples/iris/train.csv");
/// The example's monitors.
pub const MONITORS_SQL: &str = include_str!("../examples/iris/monitors.sql");
/// Features that the generated traffic shifts after `drift_after`.
pub const DRIFTED_FEATURES: &[&str] = &["petal_length", "petal_width"];
/// One generated instance in this many (on average) has its petal length in millimetres
/// (ten times too large): an outlier with a z-score above 3.5.
pub const OUTLIER_EVERY: u32 = 500;

/// Settings of a demo run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long traffic is generated.
    pub duration: Duration,
    /// When the petal features start drifting.
    pub drift_after: Duration,
    /// Requests per second (one instance each).
    pub rate: u32,
    /// Data dir.
    pub data_dir: PathBuf,
    /// HTTP ingest address (port 0 picks a free port).
    pub http_listen: SocketAddr,
    /// Print results as windows close.
    pub print: bool,
}

/// Per feature: drift windows counted before and after the drift started.
#[derive(Debug, Default, Clone)]
pub struct DemoSummary {
    /// feature → (windows, windows flagged as drifted) over windows that end before the drift.
    pub before: BTreeMap<String, (u32, u32)>,
    /// feature → (windows, windows flagged as drifted) over windows fully after the drift.
    pub after: BTreeMap<String, (u32, u32)>,
    /// Rows posted.
    pub rows_posted: u64,
    /// Instances posted with a petal length in millimetres (the injected outliers).
    pub outliers_injected: u64,
    /// Rows emitted by the outlier monitor.
    pub outliers_flagged: u64,
}

impl DemoSummary {
    /// Features flagged in at least half of the windows after the drift started.
    pub fn drifted_features(&self) -> Vec<String> {
        self.after
            .iter()
            .filter(|(_, (n, d))| *n > 0 && 2 * d >= *n)
            .map(|(f, _)| f.clone())
            .collect()
    }
}

struct IrisRows {
    rows: Vec<[f64; 4]>,
    std: [f64; 4],
}

fn parse_iris() -> IrisRows {
    let rows: Vec<[f64; 4]> = IRIS_CSV
        .lines()
        .skip(1)
        .filter_map(|l| {
            let v: Vec<f64> = l
                .split(',')
                .take(4)
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 4).then(|| [v[0], v[1], v[2], v[3]])
        })
        .collect();
    let mut std = [0.0; 4];
    for (j, s) in std.iter_mut().enumerate() {
        let mean = rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64;
        *s = (rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / (rows.len() - 1) as f64)
            .sqrt();
    }
    IrisRows { rows, std }
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// What the traffic generator posted.
#[derive(Debug, Clone, Copy, Default)]
struct Posted {
    rows: u64,
    outliers: u64,
}

/// Posts Iris-like inference logs to `url` until `duration` elapsed.
async fn generate_traffic(url: String, opts: DemoOptions) -> anyhow::Result<Posted> {
    let iris = parse_iris();
    let mut rng = StdRng::seed_from_u64(7);
    let client = reqwest::Client::new();
    let start = tokio::time::Instant::now();
    let ticks_per_sec = 10u32;
    let per_tick = (opts.rate / ticks_per_sec).max(1);
    let mut interval = tokio::time::interval(Duration::from_secs(1) / ticks_per_sec);
    let mut posted = Posted::default();
    let mut id = 0u64;
    while start.elapsed() < opts.duration {
        interval.tick().await;
        let drifting = start.elapsed() >= opts.drift_after;
        let mut instances = Vec::with_capacity(per_tick as usize);
        for _ in 0..per_tick {
            let mut row = iris.rows[rng.gen_range(0..iris.rows.len())];
            for (j, v) in row.iter_mut().enumerate() {
                *v += 0.05 * iris.std[j] * normal(&mut rng);
            }
            if drifting {
                row[2] += 1.5;
                row[3] += 0.8;
            }
            if rng.gen_range(0..OUTLIER_EVERY) == 0 {
                // A client that logs millimetres.
                row[2] *= 10.0;
                posted.outliers += 1;
            }
            instances.push(row.map(|v| (v * 1000.0).round() / 1000.0));
        }
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        id += 1;
        let body = serde_json::json!({
            "type": "request", "id": format!("req-{id}"), "time": now,
            "payload": { "instances": instances },
        });
        let resp = client.post(&url).json(&body).send().await?;
        if !resp.status().is_success() {
            anyhow::bail!(
                "ingest answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        posted.rows += per_tick as u64;
    }
    Ok(posted)
}

/// Counts drift windows per feature before/after the drift started and, when `print` is
/// set, prints drift and stats windows as they close.
fn observe_result(
    monitor: &str,
    batch: &RecordBatch,
    summary: &Mutex<DemoSummary>,
    drift_start_ms: i64,
    print: bool,
) {
    let fmt_ts = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default()
    };
    match monitor {
        "iris_drift" => {
            let schema = batch.schema();
            let col = |name: &str| schema.index_of(name).ok().map(|i| batch.column(i).clone());
            let (Some(start), Some(end), Some(feature), Some(w), Some(p), Some(d)) = (
                col("window_start"),
                col("window_end"),
                col("feature"),
                col("w_norm"),
                col("ks_p"),
                col("drift"),
            ) else {
                return;
            };
            let start = start.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let end = end.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let feature = feature.as_string::<i32>();
            let w = w.as_primitive::<Float64Type>();
            let p = p.as_primitive::<Float64Type>();
            let d = d.as_boolean();
            let mut summary = summary.lock().expect("summary lock");
            for i in 0..batch.num_rows() {
                let drifted = d.is_valid(i) && d.value(i);
                if print {
                    println!(
                        "drift  [{} – {})  {:<13} w_norm={:<7.3} ks_p={:<9.2e} {}",
                        fmt_ts(start.value(i)),
                        fmt_ts(end.value(i)),
                        feature.value(i),
                        w.value(i),
                        p.value(i),
                        if drifted { "DRIFT" } else { "ok" }
                    );
                }
                let bucket = if end.value(i) <= drift_start_ms {
                    Some(&mut summary.before)
                } else if start.value(i) >= drift_start_ms {
                    Some(&mut summary.after)
                } else {
                    None
                };
                if let Some(bucket) = bucket {
                    let e = bucket.entry(feature.value(i).to_string()).or_default();
                    e.0 += 1;
                    e.1 += drifted as u32;
                }
            }
        }
        "iris_stats" if print => println!(
            "stats  {}",
            crate::runtime::monitor_task::describe_window(batch)
        ),
        "iris_outliers" => {
            summary.lock().expect("summary lock").outliers_flagged += batch.num_rows() as u64;
            if !print {
                return;
            }
            let schema = batch.schema();
            let col = |name: &str| schema.index_of(name).ok().map(|i| batch.column(i).clone());
            let (Some(id), Some(ts), Some(z), Some(d)) = (
                col("request_id"),
                col("ts"),
                col("petal_length_z"),
                col("distance"),
            ) else {
                return;
            };
            let id = id.as_string::<i32>();
            let ts = ts.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let z = z.as_primitive::<Float64Type>();
            let d = d.as_primitive::<Float64Type>();
            for i in 0..batch.num_rows() {
                println!(
                    "outlier {}  {:<10} petal_length_z={:<6.1} mahalanobis={:.1}",
                    fmt_ts(ts.value(i)),
                    id.value(i),
                    z.value(i),
                    d.value(i)
                );
            }
        }
        _ => {}
    }
}

/// Called once the demo's system has started, before traffic (e.g. to start Flight SQL).
pub type StartHook =
    Box<dyn FnOnce(&Driftwatch) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Send>;

/// Runs the demo and returns what it detected.
pub async fn run_demo(opts: DemoOptions) -> anyhow::Result<DemoSummary> {
    run_demo_with(opts, None).await
}

/// [`run_demo`], calling `on_start` once the system has started.
pub async fn run_demo_with(
    opts: DemoOptions,
    on_start: Option<StartHook>,
) -> anyhow::Result<DemoSummary> {
    let demo_dir = opts.data_dir.join("demo");
    std::fs::create_dir_all(&demo_dir)?;
    let train = demo_dir.join("train.csv");
    std::fs::write(&train, IRIS_CSV)?;
    // The example's relative paths (`FROM 'train.csv'`) resolve against the copy's directory,
    // as `driftwatch run examples/iris/monitors.sql` resolves them against examples/iris.
    let script = MonitorScript::parse(
        MONITORS_SQL,
        Some(&crate::runtime::script::absolute(&demo_dir)),
        Some("examples/iris/monitors.sql".into()),
    )?;
    let summary = Arc::new(Mutex::new(DemoSummary::default()));
    let drift_start_ms =
        chrono::Utc::now().timestamp_millis() + opts.drift_after.as_millis() as i64;
    let observer_summary = Arc::clone(&summary);
    let print = opts.print;
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: opts.data_dir.clone(),
        http_listen: opts.http_listen,
        ..RuntimeConfig::default()
    })?
    .with_observer(Arc::new(move |monitor, batch| {
        observe_result(monitor, batch, &observer_summary, drift_start_ms, print);
    }));
    system.execute_monitor_script(&script).await?;
    crate::web::install(&system);
    system.start().await?;
    if let Some(hook) = on_start {
        hook(&system).await?;
    }
    let addr = system
        .http_addr()
        .ok_or_else(|| anyhow::anyhow!("HTTP ingest did not start"))?;
    let url = format!("http://{addr}/ingest/iris");
    tracing::info!(%url, "posting generated inference logs");
    let traffic = tokio::spawn(generate_traffic(url, opts.clone()));
    let shutdown = system.shutdown_token();
    let stopper = tokio::spawn(async move {
        let posted = traffic.await;
        // Let the last windows close: watermark delay + idle timeout + a window.
        tokio::time::sleep(Duration::from_secs(12)).await;
        shutdown.cancel();
        posted
    });
    system.wait(Some(Duration::from_secs(10))).await?;
    let posted = stopper.await??;
    let posted = posted?;
    let mut summary = summary.lock().expect("summary lock").clone();
    summary.rows_posted = posted.rows;
    summary.outliers_injected = posted.outliers;
    Ok(summary)
}
