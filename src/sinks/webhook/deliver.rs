//! The delivery task of a webhook sink: posts the outbox's notifications in order, one at
//! a time, with a per-request timeout and retries with exponential backoff and full jitter
//! (0.5 s doubling to [`MAX_BACKOFF`]); records each 2xx in the outbox before taking the
//! next. A 4xx other than 408, 425 and 429 is final (the receiver refuses this body: a
//! retry would block every later notification): the notification is dropped, counted and
//! logged as an error.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;

use super::outbox::Pending;
use super::payload::{render, Format};
use super::Shared;
use crate::metrics::WebhookMetrics;

/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Failures of one sink are logged at most this often (each is counted).
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Where and how to deliver.
#[derive(Clone)]
pub struct Target {
    /// The receiver (a secret: never logged).
    pub url: reqwest::Url,
    /// The URL as logs show it (scheme, host and port).
    pub redacted: String,
    /// Extra headers (values are secrets).
    pub headers: HeaderMap,
    /// Body format.
    pub format: Format,
    /// Per-request timeout.
    pub timeout: Duration,
}

enum Outcome {
    Delivered,
    Retry(String),
    Refused(String),
}

async fn attempt(client: &reqwest::Client, target: &Target, p: &Pending) -> Outcome {
    let body = render(
        target.format,
        &p.body,
        chrono::Utc::now().timestamp_millis(),
    );
    let request = client
        .post(target.url.clone())
        .headers(target.headers.clone())
        .header("Idempotency-Key", &p.id)
        .timeout(target.timeout)
        .json(&body);
    match request.send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered,
        Ok(resp) => {
            let code = resp.status().as_u16();
            let why = format!("the receiver answered {}", resp.status());
            if (400..500).contains(&code) && !matches!(code, 408 | 425 | 429) {
                Outcome::Refused(why)
            } else {
                Outcome::Retry(why)
            }
        }
        // reqwest's error text may contain the URL: say what kind of failure it was.
        Err(e) if e.is_timeout() => {
            Outcome::Retry(format!("no answer within {:?}", target.timeout))
        }
        Err(e) if e.is_connect() => Outcome::Retry("could not connect".into()),
        Err(e) => Outcome::Retry(format!("request failed: {}", e.without_url())),
    }
}

/// Delivers `shared`'s outbox until `stop` is cancelled.
pub async fn run(
    monitor: String,
    client: reqwest::Client,
    target: Target,
    shared: Arc<Shared>,
    metrics: Arc<WebhookMetrics>,
    stop: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let mut last_warn: Option<Instant> = None;
    let mut failing_since: Option<Instant> = None;
    loop {
        let next = shared.with(|inner| inner.outbox.as_ref().and_then(|o| o.front().cloned()));
        let Some(p) = next else {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = shared.wake.notified() => continue,
            }
        };
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            o = attempt(&client, &target, &p) => o,
        };
        let (settle, why) = match outcome {
            Outcome::Delivered => (true, None),
            Outcome::Refused(why) => (true, Some(why)),
            Outcome::Retry(why) => (false, Some(why)),
        };
        if settle {
            let recorded = shared.with(|inner| {
                let o = inner.outbox.as_mut()?;
                let r = o.settle(p.seq, why.clone());
                metrics.pending.store(o.pending() as u64, Ordering::Relaxed);
                Some(r)
            });
            if let Some(Err(e)) = recorded {
                // Not recorded: it is sent again (same Idempotency-Key) after a restart.
                tracing::error!(monitor = %monitor, error = %e, "webhook sink: could not record a delivery");
            }
        }
        match why {
            None => {
                let counter = if p.body["status"] == "resolved" {
                    &metrics.resolved
                } else {
                    &metrics.firing
                };
                counter.fetch_add(1, Ordering::Relaxed);
                backoff = MIN_BACKOFF;
                if let Some(since) = failing_since.take() {
                    tracing::info!(monitor = %monitor, url = %target.redacted, failed_for_s = since.elapsed().as_secs(), "webhook sink: deliveries work again");
                }
            }
            Some(why) if settle => {
                metrics.failures.fetch_add(1, Ordering::Relaxed);
                metrics.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(monitor = %monitor, url = %target.redacted, id = %p.id, error = %why, "webhook sink: the receiver refused a notification for good; it is dropped");
            }
            Some(why) => {
                metrics.failures.fetch_add(1, Ordering::Relaxed);
                failing_since.get_or_insert_with(Instant::now);
                if last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    last_warn = Some(Instant::now());
                    tracing::warn!(monitor = %monitor, url = %target.redacted, error = %why, retry_in_ms = backoff.as_millis() as u64, pending = metrics.pending.load(Ordering::Relaxed), "webhook sink: delivery failed; retrying (failures are counted in driftwatch_webhook_delivery_failures_total)");
                }
                // Full jitter: anywhere between half and the whole backoff.
                let half = backoff / 2;
                let wait = half + rand::thread_rng().gen_range(Duration::ZERO..=half);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
