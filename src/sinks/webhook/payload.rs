//! Notification bodies: the stable id, the `json` body and the Slack incoming-webhook body.

use arrow::array::RecordBatch;
use arrow::json::ArrayWriter;
use serde_json::{json, Map, Value};

use super::policy::{Decision, Status};

/// Body format of a webhook sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{id, monitor, status, key, window_start, window_end, row, sent_at}`.
    Json,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
}

/// The stable id of a notification: the same decision (monitor, key, status, event time)
/// made again after a crash gets the same id, sent as `Idempotency-Key`.
pub fn notification_id(monitor: &str, key: &str, status: Status, at: i64) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        monitor.as_bytes(),
        key.as_bytes(),
        status.as_str().as_bytes(),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(&at.to_le_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// Epoch milliseconds as ISO 8601 text (UTC).
pub fn iso(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
        .unwrap_or(Value::Null)
}

/// Row `row` of `batch` as a JSON object (column → value), for the notification body.
pub fn row_json(batch: &RecordBatch, row: usize) -> Result<Map<String, Value>, String> {
    let mut writer = ArrayWriter::new(Vec::new());
    writer
        .write(&batch.slice(row, 1))
        .map_err(|e| format!("encoding the alert row: {e}"))?;
    writer
        .finish()
        .map_err(|e| format!("encoding the alert row: {e}"))?;
    let rows: Vec<Map<String, Value>> = serde_json::from_slice(&writer.into_inner())
        .map_err(|e| format!("encoding the alert row: {e}"))?;
    rows.into_iter()
        .next()
        .ok_or_else(|| "encoding the alert row: no row".to_string())
}

/// The body of a decision without `sent_at` (added at each delivery attempt). `key`: the
/// group key columns and values; `row`: the alert row (firing only).
pub fn body(
    monitor: &str,
    id: &str,
    decision: &Decision,
    key: Map<String, Value>,
    row: Option<Map<String, Value>>,
) -> Value {
    let mut body = json!({
        "id": id,
        "monitor": monitor,
        "status": decision.status.as_str(),
        "key": key,
        "window_start": iso(decision.window_start),
        "window_end": iso(decision.window_end),
        "row": row.map_or(Value::Null, Value::Object),
    });
    if decision.status == Status::Resolved {
        body["resolved_at"] = iso(decision.at);
    }
    body
}

/// What is posted: `body` with `sent_at`, in `format`.
pub fn render(format: Format, body: &Value, sent_at_ms: i64) -> Value {
    let mut body = body.clone();
    body["sent_at"] = iso(sent_at_ms);
    match format {
        Format::Json => body,
        Format::Slack => slack(&body),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// A Slack message for a JSON body: a headline, the key and the row's values.
fn slack(body: &Value) -> Value {
    let key = body["key"]
        .as_object()
        .map(|k| {
            k.iter()
                .map(|(c, v)| format!("{c}={}", text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let firing = body["status"] == "firing";
    let headline = format!(
        "{} monitor *{}*{}: {}",
        if firing {
            ":rotating_light:"
        } else {
            ":white_check_mark:"
        },
        text(&body["monitor"]),
        if key.is_empty() {
            String::new()
        } else {
            format!(" ({key})")
        },
        if firing { "firing" } else { "resolved" },
    );
    let mut details = format!(
        "window {} – {}",
        text(&body["window_start"]),
        text(&body["window_end"])
    );
    if let Some(at) = body.get("resolved_at") {
        details.push_str(&format!(", resolved at {}", text(at)));
    }
    if let Some(row) = body["row"].as_object() {
        for (c, v) in row {
            if !matches!(c.as_str(), "window_start" | "window_end") {
                details.push_str(&format!("\n• {c}: `{}`", text(v)));
            }
        }
    }
    json!({
        "text": format!("{headline} — {details}"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": details}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("id {} · sent {}", text(&body["id"]), text(&body["sent_at"]))}
            ]}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = notification_id("m", "feature=x", Status::Firing, 10);
        assert_eq!(a, notification_id("m", "feature=x", Status::Firing, 10));
        assert_eq!(a.len(), 32);
        assert_ne!(a, notification_id("m", "feature=x", Status::Resolved, 10));
        assert_ne!(a, notification_id("m", "feature=x", Status::Firing, 11));
        assert_ne!(a, notification_id("mf", "eature=x", Status::Firing, 10));
    }

    #[test]
    fn slack_body_has_text_and_blocks() {
        let d = Decision {
            key: "feature=petal".into(),
            status: Status::Firing,
            window_start: 0,
            window_end: 15_000,
            at: 15_000,
            row: Some(0),
        };
        let mut key = Map::new();
        key.insert("feature".into(), json!("petal"));
        let mut row = Map::new();
        row.insert("w".into(), json!(0.5));
        let b = body("drift", "abc", &d, key, Some(row));
        assert_eq!(b["status"], "firing");
        assert_eq!(b["window_end"], "1970-01-01T00:00:15.000Z");
        let s = render(Format::Slack, &b, 0);
        let text = s["text"].as_str().unwrap();
        assert!(
            text.contains("drift") && text.contains("feature=petal") && text.contains("0.5"),
            "{text}"
        );
        assert_eq!(s["blocks"].as_array().unwrap().len(), 3);
        assert_eq!(
            render(Format::Json, &b, 0)["sent_at"],
            "1970-01-01T00:00:00.000Z"
        );
    }
}
