//! The webhook sink: `CREATE MONITOR m WITH (sink = 'webhook', url = 'https://…',
//! format = 'json' | 'slack', cooldown = '30 minutes', headers = 'Authorization: Bearer …')
//! AS SELECT … HAVING …` posts the monitor's alert rows to an HTTP receiver, one
//! notification when a group key starts alerting (`firing`) and one when it stops
//! (`resolved`), with a cooldown against flapping (see [`policy`] for the exact rules).
//!
//! The engine never waits for the receiver: [`ResultSink::send`] decides, appends the
//! notifications to a durable outbox in the data dir ([`outbox`]) and returns; a background
//! task ([`deliver`]) posts them in order with retries. Every notification carries a stable
//! id (`Idempotency-Key` header and `id` in the body): a crash between the receiver's 2xx
//! and the outbox's record of it sends that one notification once more, with the same id.
//!
//! The URL and header values are secrets: logs show only scheme, host and port, and
//! `driftwatch_sql::redact_secrets` hides the `url` and `headers` options. `CREATE MONITOR`
//! validates the URL (http or https, with a host) but does not contact the receiver: it may
//! be down at that moment, and notifications wait in the outbox until it answers.

pub mod deliver;
pub mod outbox;
pub mod payload;
pub mod policy;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use driftwatch_sql::Options;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::outbox::Outbox;
use self::payload::Format;
use self::policy::{Decision, KeyState, Machine, Policy, Status};
use super::{ResultSink, SinkError};
pub use crate::metrics::{all_webhook_metrics as all_metrics, WebhookMetrics};

/// Options read by the webhook sink (besides `sink`).
pub const WEBHOOK_SINK_OPTIONS: &[&str] = &[
    "url",
    "format",
    "headers",
    "cooldown",
    "resolve_after",
    "request_timeout",
    "max_pending",
    "key_columns",
];

/// Directory of the outboxes in the data dir.
pub const OUTBOX_DIR: &str = "webhooks";

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound of undelivered notifications.
pub const DEFAULT_MAX_PENDING: usize = 10_000;
/// Longest wait at the end of bounded input for the outbox to drain.
pub const FINISH_WAIT: Duration = Duration::from_secs(10);

fn error(message: impl Into<String>) -> SinkError {
    SinkError {
        sink: "webhook".into(),
        message: message.into(),
    }
}

/// What the sink and its delivery task share.
#[derive(Debug)]
pub struct Shared {
    inner: Mutex<Inner>,
    /// Woken when notifications were appended.
    wake: Notify,
    /// Woken when a delivery settled (for [`ResultSink::finish`]).
    drained: Notify,
}

#[derive(Debug)]
struct Inner {
    outbox: Option<Outbox>,
    machine: Machine,
    /// The machine changed since its state was last saved.
    dirty: bool,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut inner);
        if inner.outbox.as_ref().is_some_and(|o| o.pending() == 0) {
            self.drained.notify_waiters();
        }
        r
    }
}

/// Posts alert notifications of one monitor to a webhook (see the module docs).
pub struct WebhookSink {
    monitor: String,
    target: deliver::Target,
    policy: Policy,
    max_pending: usize,
    key_columns: Option<Vec<String>>,
    shared: Arc<Shared>,
    metrics: Arc<WebhookMetrics>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("monitor", &self.monitor)
            .field("url", &self.target.redacted)
            .field("format", &self.target.format)
            .field("policy", &self.policy)
            .finish()
    }
}

/// `scheme://host[:port]/…`: what logs show of a webhook URL.
pub fn redact_url(url: &reqwest::Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}/…",
        url.scheme(),
        url.host_str().unwrap_or("?")
    )
}

/// Parses `headers = 'Name: value; Other: value'` (entries separated by `;` or new lines).
fn parse_headers(monitor: &str, text: &str) -> Result<HeaderMap, SinkError> {
    let mut map = HeaderMap::new();
    for entry in text.split([';', '\n']) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        // The value is a secret: errors name the header only.
        let (name, value) = entry.split_once(':').ok_or_else(|| {
            error(format!(
                "monitor '{monitor}': headers: an entry is not 'Name: value'"
            ))
        })?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            error(format!(
                "monitor '{monitor}': headers: '{}' is not a header name",
                name.trim()
            ))
        })?;
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
            error(format!(
                "monitor '{monitor}': headers: the value of '{name}' is not a valid header value"
            ))
        })?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

impl WebhookSink {
    /// Builds the sink from monitor options (validated here: `CREATE MONITOR` fails on a
    /// bad URL, format, header or duration).
    pub fn from_options(monitor: &str, options: &Options) -> Result<Self, SinkError> {
        let raw = options
            .get_str("url")
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| error(format!("monitor '{monitor}': add WITH (url = 'https://…')")))?;
        // The URL is a secret: errors do not repeat it.
        let url = reqwest::Url::parse(raw.trim())
            .map_err(|e| error(format!("monitor '{monitor}': url is not a valid URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(error(format!(
                "monitor '{monitor}': url must be http:// or https://, not {}://",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(error(format!("monitor '{monitor}': url has no host")));
        }
        let format = match options.get_str("format").map(|f| f.to_ascii_lowercase()).as_deref() {
            None | Some("json") => Format::Json,
            Some("slack") => Format::Slack,
            Some(other) => {
                return Err(error(format!(
                    "monitor '{monitor}': format = '{other}' is not supported by the webhook sink (use 'json' or 'slack')"
                )))
            }
        };
        let duration = |key: &str| {
            options
                .get_duration_ms(key)
                .map_err(|e| error(format!("monitor '{monitor}': {e}")))
        };
        let cooldown_ms = duration("cooldown")?.unwrap_or(0);
        let resolve_after_ms = duration("resolve_after")?;
        let timeout_ms = duration("request_timeout")?.unwrap_or(DEFAULT_TIMEOUT.as_millis() as i64);
        if cooldown_ms < 0 || resolve_after_ms.is_some_and(|r| r <= 0) || timeout_ms <= 0 {
            return Err(error(format!(
                "monitor '{monitor}': cooldown must be >= 0, resolve_after and request_timeout > 0"
            )));
        }
        let max_pending = match options.get_str("max_pending") {
            None => DEFAULT_MAX_PENDING,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    error(format!(
                        "monitor '{monitor}': max_pending must be a positive integer, got '{v}'"
                    ))
                })?,
        };
        let key_columns = options.get_str("key_columns").map(|k| {
            k.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        });
        let headers = parse_headers(monitor, &options.get_str("headers").unwrap_or_default())?;
        let policy = Policy {
            cooldown_ms,
            resolve_after_ms,
        };
        let stop = CancellationToken::new();
        Ok(Self {
            monitor: monitor.to_string(),
            target: deliver::Target {
                redacted: redact_url(&url),
                url,
                headers,
                format,
                timeout: Duration::from_millis(timeout_ms as u64),
            },
            policy,
            max_pending,
            key_columns,
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    outbox: None,
                    machine: Machine::new(policy),
                    dirty: false,
                }),
                wake: Notify::new(),
                drained: Notify::new(),
            }),
            metrics: crate::metrics::webhook_metrics_for(monitor),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        })
    }

    /// Undelivered notifications.
    pub fn pending(&self) -> usize {
        self.shared
            .with(|i| i.outbox.as_ref().map_or(0, Outbox::pending))
    }

    /// Turns decisions into outbox records; syncs and wakes the delivery task.
    fn record(
        &self,
        inner: &mut Inner,
        decisions: &[Decision],
        batch: Option<&RecordBatch>,
    ) -> Result<(), SinkError> {
        if decisions.is_empty() {
            return Ok(());
        }
        inner.dirty = true;
        let Some(outbox) = inner.outbox.as_mut() else {
            return Err(error("the outbox is not open (the sink was not started)"));
        };
        for d in decisions {
            let id = payload::notification_id(&self.monitor, &d.key, d.status, d.at);
            let key: Map<String, Value> = serde_json::from_str(&d.key).unwrap_or_default();
            let row = match (d.row, batch) {
                (Some(r), Some(b)) => Some(payload::row_json(b, r).map_err(error)?),
                _ => None,
            };
            let body = payload::body(&self.monitor, &id, d, key, row);
            let state = inner.machine.key(&d.key).cloned().unwrap_or(KeyState {
                firing: d.status == Status::Firing,
                notified: d.status == Status::Firing,
                last_start: d.window_start,
                last_end: d.window_end,
                last_resolved: (d.status == Status::Resolved).then_some(d.at),
            });
            let dropped = outbox
                .append(id, body, &d.key, &state)
                .map_err(|e| error(e.to_string()))?;
            if let Some(old) = dropped {
                self.metrics
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(
                    monitor = %self.monitor, id = %old.id, max_pending = self.max_pending,
                    "webhook sink: outbox full; the oldest undelivered notification is dropped \
                     (counted in driftwatch_webhook_dropped_total)"
                );
            }
        }
        outbox.sync().map_err(|e| error(e.to_string()))?;
        self.metrics.pending.store(
            outbox.pending() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Group key columns of `batch`: `key_columns`, or every text column.
    fn key_indices(&self, batch: &RecordBatch) -> Result<Vec<usize>, SinkError> {
        let schema = batch.schema();
        match &self.key_columns {
            Some(names) => names
                .iter()
                .map(|n| {
                    schema.index_of(n).map_err(|_| {
                        error(format!(
                            "monitor '{}': key_columns: no column '{n}' in the results",
                            self.monitor
                        ))
                    })
                })
                .collect(),
            None => Ok(schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    !matches!(f.name().as_str(), "window_start" | "window_end")
                        && matches!(
                            f.data_type(),
                            DataType::Utf8
                                | DataType::LargeUtf8
                                | DataType::Utf8View
                                | DataType::Dictionary(..)
                        )
                })
                .map(|(i, _)| i)
                .collect()),
        }
    }
}

fn window_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a TimestampMillisecondArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
}

#[async_trait::async_trait]
impl ResultSink for WebhookSink {
    fn needs_windows(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        format!("webhook:{}", self.target.redacted)
    }

    async fn start(&self, monitor: &str, data_dir: &Path) -> Result<(), SinkError> {
        let started = self.shared.with(|i| i.outbox.is_some());
        if started {
            return Ok(());
        }
        let dir = crate::durable::child_path(&data_dir.join(OUTBOX_DIR), monitor)
            .map_err(|e| error(e.to_string()))?;
        let (outbox, state) =
            Outbox::open(&dir, self.max_pending).map_err(|e| error(e.to_string()))?;
        let pending = outbox.pending();
        self.shared.with(|i| {
            if let Some(state) = state {
                i.machine = Machine::with_state(self.policy, state);
            }
            i.outbox = Some(outbox);
        });
        self.metrics
            .pending
            .store(pending as u64, std::sync::atomic::Ordering::Relaxed);
        if pending > 0 {
            tracing::info!(monitor, pending, url = %self.target.redacted, "webhook sink: delivering notifications left undelivered by the last run");
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("driftwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| error(format!("HTTP client: {}", e.without_url())))?;
        tokio::spawn(deliver::run(
            monitor.to_string(),
            client,
            self.target.clone(),
            Arc::clone(&self.shared),
            Arc::clone(&self.metrics),
            self.stop.clone(),
        ));
        self.shared.wake.notify_one();
        Ok(())
    }

    async fn send(&self, monitor: &str, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (Some(starts), Some(ends)) = (
            window_column(batch, "window_start"),
            window_column(batch, "window_end"),
        ) else {
            return Err(error(format!(
                "monitor '{monitor}': the webhook sink needs windowed results (window_start and window_end columns)"
            )));
        };
        let keys = self.key_indices(batch)?;
        let options = FormatOptions::default().with_null("NULL");
        let schema = batch.schema();
        let formatters = keys
            .iter()
            .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(e.to_string()))?;
        // Windows come in order; rows within a batch are ordered by window end to be sure.
        let mut order: Vec<usize> = (0..batch.num_rows())
            .filter(|&r| ends.is_valid(r) && starts.is_valid(r))
            .collect();
        order.sort_by_key(|&r| ends.value(r));
        let mut decisions = Vec::new();
        let mut key = Map::new();
        self.shared.with(|inner| {
            for &r in &order {
                key.clear();
                for (f, &i) in formatters.iter().zip(&keys) {
                    key.insert(
                        schema.field(i).name().clone(),
                        Value::String(f.value(r).to_string()),
                    );
                }
                let text = serde_json::to_string(&key).unwrap_or_default();
                inner
                    .machine
                    .alert(&text, starts.value(r), ends.value(r), r, &mut decisions);
            }
            // Windows come in order: every window ending before the last one is complete.
            if let Some(&last) = order.last() {
                inner.machine.progress(ends.value(last) - 1, &mut decisions);
            }
            if !order.is_empty() {
                inner.dirty = true;
            }
            self.record(inner, &decisions, Some(batch))
        })
    }

    async fn progress(&self, _monitor: &str, emitted_until_ms: i64) {
        let result = self.shared.with(|inner| {
            let mut decisions = Vec::new();
            inner.machine.progress(emitted_until_ms, &mut decisions);
            inner.dirty = true;
            self.record(inner, &decisions, None)
        });
        if let Err(e) = result {
            // Not recorded: the same decision is made again from the next alert row or
            // horizon (the machine's state was not saved either).
            tracing::error!(monitor = %self.monitor, error = %e, "webhook sink: could not record a resolution");
        }
    }

    async fn flush(&self) -> Result<(), SinkError> {
        self.shared.with(|inner| {
            let Some(outbox) = inner.outbox.as_mut() else {
                return Ok(());
            };
            outbox.sync().map_err(|e| error(e.to_string()))?;
            if inner.dirty {
                outbox
                    .save_state(inner.machine.state())
                    .map_err(|e| error(e.to_string()))?;
                inner.dirty = false;
            }
            Ok(())
        })
    }

    async fn finish(&self) {
        let wait = async {
            loop {
                let drained = self.shared.drained.notified();
                if self.pending() == 0 {
                    return;
                }
                drained.await;
            }
        };
        if tokio::time::timeout(FINISH_WAIT, wait).await.is_err() {
            tracing::warn!(monitor = %self.monitor, pending = self.pending(), url = %self.target.redacted, "webhook sink: notifications not delivered yet at the end of the input; they stay in the outbox for the next run on this data dir");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Options {
        let list = pairs
            .iter()
            .map(|(k, v)| format!("{k} = '{v}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("CREATE MONITOR m WITH ({list}) AS SELECT * FROM s");
        let stmts = driftwatch_sql::parse_statements(&sql).unwrap();
        let driftwatch_sql::Statement::CreateMonitor(m) = &stmts[0] else {
            panic!()
        };
        m.options.clone()
    }

    #[test]
    fn options_are_validated_without_showing_secrets() {
        let ok = options(&[
            ("sink", "webhook"),
            ("url", "https://hooks.slack.com/services/T0/B0/SECRET"),
            ("format", "slack"),
            ("cooldown", "30 minutes"),
            ("headers", "Authorization: Bearer TOKEN; X-Team: ml"),
        ]);
        let sink = WebhookSink::from_options("m", &ok).unwrap();
        assert_eq!(sink.policy.cooldown_ms, 30 * 60_000);
        assert_eq!(sink.target.format, Format::Slack);
        assert_eq!(sink.target.headers.len(), 2);
        let shown = format!("{sink:?} {}", sink.name());
        assert!(
            !shown.contains("SECRET") && !shown.contains("TOKEN"),
            "{shown}"
        );
        assert!(shown.contains("https://hooks.slack.com/…"), "{shown}");
        for (bad, why) in [
            (vec![("url", "ftp://h/x")], "http:// or https://"),
            (vec![("url", "not a url SECRET")], "not a valid URL"),
            (vec![("url", "https://h/"), ("format", "xml")], "format"),
            (
                vec![("url", "https://h/"), ("headers", "NoColon SECRET")],
                "Name: value",
            ),
            (
                vec![("url", "https://h/"), ("cooldown", "soon")],
                "cooldown",
            ),
            (
                vec![("url", "https://h/"), ("max_pending", "0")],
                "max_pending",
            ),
            (vec![], "add WITH (url"),
        ] {
            let e = WebhookSink::from_options("m", &options(&bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
    }
}
