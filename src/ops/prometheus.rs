//! `GET /metrics`: every figure of [`Ops`] in the Prometheus text exposition format 0.0.4
//! ([`CONTENT_TYPE`]), encoded by `prometheus-client` (the Prometheus project's Rust client).
//!
//! Values are read at scrape time from the same atomics the `system.*` tables show, so
//! counters restored from a checkpoint (a monitor's windows, rows out, late rows) continue
//! where the last run stopped; source counters and histograms are per process (they start
//! at 0 after a restart, which `rate()` handles as a counter reset). Metric names, labels
//! and meaning are listed in [`FAMILIES`].

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Ops;
use crate::metrics::Health;

/// `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every family `/metrics` exposes (full name, type, help). Counters end in `_total`.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("driftwatch_source_rows_total", "counter", "Rows decoded by the source (this process), by source."),
    ("driftwatch_source_partition_rows_total", "counter", "Rows decoded per source partition (this process)."),
    ("driftwatch_source_decode_errors_total", "counter", "Records that failed to decode (dead-lettered), by source."),
    ("driftwatch_source_unknown_fields_total", "counter", "Fields of accepted input that matched no column (ignored), by source."),
    ("driftwatch_source_watermark_seconds", "gauge", "Watermark of the source (epoch seconds): the event time windows close at."),
    ("driftwatch_source_watermark_lag_seconds", "gauge", "Wall clock minus the source watermark (seconds; negative when event times run ahead of the clock)."),
    ("driftwatch_source_partition_watermark_seconds", "gauge", "Largest event time of a partition minus the source's watermark delay (epoch seconds)."),
    ("driftwatch_source_partition_watermark_lag_seconds", "gauge", "Wall clock minus a partition's watermark (seconds)."),
    ("driftwatch_source_partition_lag_messages", "gauge", "Kafka consumer lag: the partition's high watermark minus the delivered offset."),
    ("driftwatch_source_up", "gauge", "1 while the source runs or finished, 0 while it retries or after it failed."),
    ("driftwatch_source_status", "gauge", "1 for the source's current status (running, retrying, finished, failed)."),
    ("driftwatch_monitor_rows_out_total", "counter", "Result rows written by the monitor (continued across restarts)."),
    ("driftwatch_monitor_windows_total", "counter", "Windows emitted by the monitor (continued across restarts)."),
    ("driftwatch_monitor_late_rows_total", "counter", "Late rows the monitor kept aside (continued across restarts)."),
    ("driftwatch_monitor_last_window_end_seconds", "gauge", "End of the last window the monitor emitted (epoch seconds)."),
    ("driftwatch_monitor_emit_delay_seconds", "histogram", "Wall-clock seconds from the moment a window could first be emitted (the monitor's watermark passed its end plus allowed_lateness, or bounded input ended) to the moment the monitor task received it (this process)."),
    ("driftwatch_monitor_state_bytes", "gauge", "Bytes of the monitor's open window state (accumulators and group keys)."),
    ("driftwatch_monitor_state_groups", "gauge", "Groups held in the monitor's open window state."),
    ("driftwatch_monitor_open_windows", "gauge", "Open windows (panes or sessions) of the monitor."),
    ("driftwatch_monitor_up", "gauge", "0 when the monitor failed, 1 otherwise."),
    ("driftwatch_monitor_status", "gauge", "1 for the monitor's current status (running, retrying, finished, failed)."),
    ("driftwatch_checkpoint_duration_seconds", "histogram", "Time from barrier injection to the durable checkpoint file (this process)."),
    ("driftwatch_checkpoint_size_bytes", "gauge", "Size of the last completed checkpoint file."),
    ("driftwatch_checkpoints_total", "counter", "Checkpoints completed or abandoned by this process, by result."),
    ("driftwatch_checkpoint_last_completed_seconds", "gauge", "When the last checkpoint completed (epoch seconds)."),
    ("driftwatch_flight_call_duration_seconds", "histogram", "Flight SQL call latency, by method and outcome: until the answer, for streams until the last batch."),
    ("driftwatch_http_requests_total", "counter", "HTTP ingest answers, by source and status code."),
    ("driftwatch_ready", "gauge", "1 when the system is ready (sources connected, state restored), else 0."),
    ("driftwatch_webhook_notifications_total", "counter", "Webhook notifications delivered (2xx), by monitor and status (firing, resolved; this process)."),
    ("driftwatch_webhook_delivery_failures_total", "counter", "Failed webhook delivery attempts (error, timeout, non-2xx answer), by monitor (this process)."),
    ("driftwatch_webhook_dropped_total", "counter", "Webhook notifications dropped (outbox full, or refused for good with a 4xx), by monitor (this process)."),
    ("driftwatch_webhook_outbox_pending", "gauge", "Webhook notifications in the outbox not delivered yet, by monitor."),
];

fn help(name: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        // prometheus-client ends every help text with a full stop.
        .map_or("", |(_, _, h)| h.strip_suffix('.').unwrap_or(h))
}

/// The registry name of a family: without the prefix, and counters without `_total`
/// (prometheus-client appends it).
fn short(name: &str) -> &str {
    let name = name.strip_prefix("driftwatch_").unwrap_or(name);
    name.strip_suffix("_total").unwrap_or(name)
}

const STATUSES: [Health; 4] = [
    Health::Running,
    Health::Retrying,
    Health::Finished,
    Health::Failed,
];

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Encodes one family of labelled samples.
fn family<'a, L, F>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, F)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet + 'a,
    F: FnOnce(MetricEncoder) -> Result<(), std::fmt::Error>,
{
    let samples: Vec<(L, F)> = samples.into_iter().collect();
    if samples.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(short(name), help(name), None, kind)?;
    for (labels, encode) in samples {
        encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(v: u64) -> impl FnOnce(MetricEncoder) -> Result<(), std::fmt::Error> {
    move |e| ConstCounter::new(v).encode(e)
}

fn gauge(v: f64) -> impl FnOnce(MetricEncoder) -> Result<(), std::fmt::Error> {
    move |e| ConstGauge::new(v).encode(e)
}

type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];

/// The scrape-time view of the sources and monitors.
#[derive(Debug)]
struct LiveFigures(Arc<Ops>);

impl Collector for LiveFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ops = &self.0;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let sources = ops.source_list();
        let monitors = ops.monitor_list();
        let by_source = |f: &dyn Fn(&crate::metrics::SourceMetrics) -> Option<f64>| {
            sources
                .iter()
                .filter_map(|(n, s)| f(s).map(|v| ([("source", n.clone())], gauge(v))))
                .collect::<Vec<(Labels1, _)>>()
        };
        let e = &mut encoder;
        family(
            e,
            "driftwatch_source_rows_total",
            MetricType::Counter,
            sources
                .iter()
                .map(|(n, s)| ([("source", n.clone())], counter(s.total_rows()))),
        )?;
        family(
            e,
            "driftwatch_source_decode_errors_total",
            MetricType::Counter,
            sources
                .iter()
                .map(|(n, s)| ([("source", n.clone())], counter(s.total_rejected()))),
        )?;
        family(
            e,
            "driftwatch_source_unknown_fields_total",
            MetricType::Counter,
            sources
                .iter()
                .map(|(n, s)| ([("source", n.clone())], counter(s.total_unknown_fields()))),
        )?;
        let wm = |s: &crate::metrics::SourceMetrics| Some(s.watermark()).filter(|w| *w != i64::MIN);
        family(
            e,
            "driftwatch_source_watermark_seconds",
            MetricType::Gauge,
            by_source(&|s| wm(s).map(seconds)),
        )?;
        family(
            e,
            "driftwatch_source_watermark_lag_seconds",
            MetricType::Gauge,
            by_source(&|s| wm(s).map(|w| seconds(now_ms.saturating_sub(w)))),
        )?;
        family(
            e,
            "driftwatch_source_up",
            MetricType::Gauge,
            by_source(&|s| {
                Some(match s.health.health() {
                    Health::Running | Health::Finished => 1.0,
                    Health::Retrying | Health::Failed => 0.0,
                })
            }),
        )?;
        family(
            e,
            "driftwatch_source_status",
            MetricType::Gauge,
            sources.iter().flat_map(|(n, s)| {
                let current = s.health.health();
                STATUSES.iter().map(move |st| {
                    let labels: Labels2 =
                        [("source", n.clone()), ("status", st.as_str().to_string())];
                    (labels, gauge(f64::from(u8::from(*st == current))))
                })
            }),
        )?;
        let partitions: Vec<(String, u32, crate::metrics::PartitionStats)> = sources
            .iter()
            .flat_map(|(n, s)| {
                s.partitions()
                    .into_iter()
                    .map(move |(p, st)| (n.clone(), p, st))
            })
            .collect();
        let plabels = |n: &String, p: &u32| -> Labels2 {
            [("source", n.clone()), ("partition", p.to_string())]
        };
        family(
            e,
            "driftwatch_source_partition_rows_total",
            MetricType::Counter,
            partitions
                .iter()
                .map(|(n, p, st)| (plabels(n, p), counter(st.rows))),
        )?;
        let pwm = partitions
            .iter()
            .filter(|(_, _, st)| st.watermark_ms != i64::MIN);
        family(
            e,
            "driftwatch_source_partition_watermark_seconds",
            MetricType::Gauge,
            pwm.clone()
                .map(|(n, p, st)| (plabels(n, p), gauge(seconds(st.watermark_ms)))),
        )?;
        family(
            e,
            "driftwatch_source_partition_watermark_lag_seconds",
            MetricType::Gauge,
            pwm.map(|(n, p, st)| {
                (
                    plabels(n, p),
                    gauge(seconds(now_ms.saturating_sub(st.watermark_ms))),
                )
            }),
        )?;
        family(
            e,
            "driftwatch_source_partition_lag_messages",
            MetricType::Gauge,
            partitions
                .iter()
                .filter_map(|(n, p, st)| st.lag.map(|l| (plabels(n, p), gauge(l as f64)))),
        )?;

        let mlabels = |n: &String, m: &super::OpsMonitor| -> Labels2 {
            [("monitor", n.clone()), ("source", m.source.clone())]
        };
        family(
            e,
            "driftwatch_monitor_rows_out_total",
            MetricType::Counter,
            monitors
                .iter()
                .map(|(n, m)| (mlabels(n, m), counter(m.metrics.total_rows_out()))),
        )?;
        family(
            e,
            "driftwatch_monitor_windows_total",
            MetricType::Counter,
            monitors
                .iter()
                .map(|(n, m)| (mlabels(n, m), counter(m.metrics.total_windows()))),
        )?;
        family(
            e,
            "driftwatch_monitor_late_rows_total",
            MetricType::Counter,
            monitors
                .iter()
                .map(|(n, m)| (mlabels(n, m), counter(m.metrics.total_late()))),
        )?;
        family(
            e,
            "driftwatch_monitor_last_window_end_seconds",
            MetricType::Gauge,
            monitors
                .iter()
                .filter(|(_, m)| m.metrics.last_window_end() != i64::MIN)
                .map(|(n, m)| (mlabels(n, m), gauge(seconds(m.metrics.last_window_end())))),
        )?;
        family(
            e,
            "driftwatch_monitor_emit_delay_seconds",
            MetricType::Histogram,
            monitors.iter().map(|(n, m)| {
                let h = m.metrics.emit_delay().clone();
                (mlabels(n, m), move |enc: MetricEncoder| h.encode(enc))
            }),
        )?;
        let probes: Vec<(Labels2, Arc<dyn crate::metrics::StateProbe>)> = monitors
            .iter()
            .filter_map(|(n, m)| m.metrics.state_probe().map(|p| (mlabels(n, m), p)))
            .collect();
        for (name, read) in [
            (
                "driftwatch_monitor_state_bytes",
                (|p: &dyn crate::metrics::StateProbe| p.state_bytes())
                    as fn(&dyn crate::metrics::StateProbe) -> u64,
            ),
            ("driftwatch_monitor_state_groups", |p| p.groups()),
            ("driftwatch_monitor_open_windows", |p| p.open_windows()),
        ] {
            family(
                e,
                name,
                MetricType::Gauge,
                probes
                    .iter()
                    .map(|(l, p)| (l.clone(), gauge(read(p.as_ref()) as f64))),
            )?;
        }
        family(
            e,
            "driftwatch_monitor_up",
            MetricType::Gauge,
            monitors.iter().map(|(n, m)| {
                let up = m.metrics.health.health() != Health::Failed;
                (mlabels(n, m), gauge(f64::from(u8::from(up))))
            }),
        )?;
        family(
            e,
            "driftwatch_monitor_status",
            MetricType::Gauge,
            monitors.iter().flat_map(|(n, m)| {
                let current = m.metrics.health.health();
                STATUSES.iter().map(move |st| {
                    let labels: Labels2 =
                        [("monitor", n.clone()), ("status", st.as_str().to_string())];
                    (labels, gauge(f64::from(u8::from(*st == current))))
                })
            }),
        )?;

        let c = *ops.checkpoint.lock().unwrap_or_else(|e| e.into_inner());
        let none: [(&str, String); 0] = [];
        if c.completed > 0 {
            family(
                e,
                "driftwatch_checkpoint_size_bytes",
                MetricType::Gauge,
                [(none.clone(), gauge(c.bytes as f64))],
            )?;
            family(
                e,
                "driftwatch_checkpoint_last_completed_seconds",
                MetricType::Gauge,
                [(none.clone(), gauge(seconds(c.last_completed_ms)))],
            )?;
        }
        family(
            e,
            "driftwatch_checkpoints_total",
            MetricType::Counter,
            [
                ([("result", "completed".to_string())], counter(c.completed)),
                ([("result", "abandoned".to_string())], counter(c.abandoned)),
            ],
        )?;
        family(
            e,
            "driftwatch_ready",
            MetricType::Gauge,
            [(none, gauge(f64::from(u8::from(ops.readiness().ready))))],
        )?;
        encode_webhooks(e)?;
        Ok(())
    }
}

type EncodeOnce = dyn FnOnce(MetricEncoder) -> Result<(), std::fmt::Error>;

/// The webhook sinks' counters (kept per process in [`crate::metrics`]).
fn encode_webhooks(e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    use std::sync::atomic::Ordering::Relaxed;
    let hooks = crate::metrics::all_webhook_metrics();
    family(
        e,
        "driftwatch_webhook_notifications_total",
        MetricType::Counter,
        hooks.iter().flat_map(|(n, m)| {
            [("firing", &m.firing), ("resolved", &m.resolved)].map(|(st, c)| {
                let labels: Labels2 = [("monitor", n.clone()), ("status", st.to_string())];
                (labels, counter(c.load(Relaxed)))
            })
        }),
    )?;
    for (name, kind, read) in [
        (
            "driftwatch_webhook_delivery_failures_total",
            MetricType::Counter,
            (|m: &crate::metrics::WebhookMetrics| m.failures.load(Relaxed))
                as fn(&crate::metrics::WebhookMetrics) -> u64,
        ),
        (
            "driftwatch_webhook_dropped_total",
            MetricType::Counter,
            |m| m.dropped.load(Relaxed),
        ),
        (
            "driftwatch_webhook_outbox_pending",
            MetricType::Gauge,
            |m| m.pending.load(Relaxed),
        ),
    ] {
        let is_counter = matches!(kind, MetricType::Counter);
        let samples = hooks.iter().map(move |(n, m)| {
            let labels: Labels1 = [("monitor", n.clone())];
            let v = read(m);
            let encode: Box<EncodeOnce> = if is_counter {
                Box::new(counter(v))
            } else {
                Box::new(gauge(v as f64))
            };
            (labels, encode)
        });
        family(e, name, kind, samples)?;
    }
    Ok(())
}

/// Encodes every family of `ops` (see the module docs).
pub fn render(ops: &Arc<Ops>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("driftwatch");
    registry.register(
        short("driftwatch_checkpoint_duration_seconds"),
        help("driftwatch_checkpoint_duration_seconds"),
        ops.checkpoint_duration.clone(),
    );
    registry.register(
        short("driftwatch_flight_call_duration_seconds"),
        help("driftwatch_flight_call_duration_seconds"),
        ops.query_latency.clone(),
    );
    registry.register(
        short("driftwatch_http_requests_total"),
        help("driftwatch_http_requests_total"),
        ops.http_requests.clone(),
    );
    registry.register_collector(Box::new(LiveFigures(Arc::clone(ops))));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}
