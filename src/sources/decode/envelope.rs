//! HTTP ingest bodies → Arrow: inference-log envelopes, KServe logger CloudEvents (binary
//! mode), bare KServe v1/v2 bodies, and plain JSON rows. One row per instance.
//!
//! Mapping for envelopes and CloudEvents: the message id goes to a declared `request_id`
//! (else `id`) column, the message time to the event-time column (else the first timestamp
//! column), the message type (`request` / `response`) to a declared `event_type` (else
//! `type`) column. Instances (and, for responses, `predictions` / `outputs`) fill the
//! remaining columns: positionally for lists, by name for objects. The `log_type` source
//! option keeps only requests or only responses (default: both).

use std::sync::Arc;

use arrow::compute::kernels::cast_utils::string_to_datetime;
use arrow::record_batch::RecordBatch;
use axum::http::HeaderMap;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::messages::{EnvelopeList, Envelopes, Meta, MsgType};
use super::{lines, JsonLinesDecoder};
use crate::sources::schema::SourceSchema;

/// Why an HTTP body was refused (answered with 400 and kept as a rejected record).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// Not valid JSON.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// Valid JSON of the wrong shape or with wrong values.
    #[error("{0}")]
    Invalid(String),
}

/// What kind of body was received (detected from headers and the first object's keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Inference-log envelope(s) `{"type","id","time","payload"}`.
    Envelope,
    /// KServe logger CloudEvent in binary mode (`ce-type` header).
    CloudEvent,
    /// Bare KServe v1 `{"instances"}` / v2 `{"inputs"}` body.
    KServe,
    /// Plain JSON rows: object, array of objects, or NDJSON.
    Rows,
}

/// Which inference-log messages a source keeps (`log_type` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogType {
    /// Requests and responses (default).
    #[default]
    Both,
    /// Only requests: responses are accepted and ignored.
    Request,
    /// Only responses: requests are accepted and ignored.
    Response,
}

impl LogType {
    /// Parses the `log_type` option (`request`, `response`, `both`).
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "both" | "all" => Some(Self::Both),
            "request" | "requests" => Some(Self::Request),
            "response" | "responses" => Some(Self::Response),
            _ => None,
        }
    }
}

/// Per-source options of HTTP body decoding.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpDecodeOptions {
    /// Which messages to keep.
    pub log_type: LogType,
}

/// A decoded HTTP body.
#[derive(Debug)]
pub struct DecodedBody {
    /// Rows in the source schema (possibly empty).
    pub batch: RecordBatch,
    /// Detected body kind.
    pub kind: BodyKind,
    /// Rows dropped because of `log_type`.
    pub ignored: usize,
}

/// Decodes an HTTP ingest body into rows of `schema` (see the module docs for the mapping).
pub fn decode_http_body(
    schema: &Arc<SourceSchema>,
    headers: &HeaderMap,
    body: &[u8],
    options: &HttpDecodeOptions,
) -> Result<DecodedBody, BodyError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ce_type) = header("ce-type") {
        let kind = MsgType::parse(ce_type).ok_or_else(|| {
            BodyError::Invalid(format!(
                "header ce-type: {ce_type:?} is not a KServe inference request or response \
                 (expected org.kubeflow.serving.inference.request|response)"
            ))
        })?;
        let time = match header("ce-time") {
            Some(t) => Some(
                string_to_datetime(&chrono::Utc, t)
                    .ok()
                    .and_then(|d| super::time::in_range(d.timestamp_millis()))
                    .ok_or_else(|| {
                        BodyError::Invalid(format!(
                            "header ce-time: expected an RFC 3339 time, got {t:?}"
                        ))
                    })?,
            ),
            None => None,
        };
        let mut env = Envelopes::new(schema, "instance");
        let meta = Meta {
            id: header("ce-id").map(str::to_string),
            time,
            kind: Some(kind),
            rows: 0,
        };
        env.payload_only(body, meta)?;
        return env.finish(BodyKind::CloudEvent, options);
    }
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(BodyError::Invalid("empty body".into()));
    };
    match body[start] {
        b'{' => {
            let (keys, end) = scan_keys(&body[start..])?;
            let more = body[start + end..].iter().any(|b| !b.is_ascii_whitespace());
            let has = |k: &str| keys.iter().any(|x| x == k);
            if has("payload") && (has("type") || has("time") || has("id")) {
                let mut env = Envelopes::new(schema, "instance");
                if more {
                    for (line_no, line) in lines(1, body) {
                        env.envelope(line)
                            .map_err(|e| prefix(e, &format!("line {line_no}: ")))?;
                    }
                } else {
                    env.envelope(body)?;
                }
                env.finish(BodyKind::Envelope, options)
            } else if !more
                && ["instances", "inputs", "predictions", "outputs"]
                    .iter()
                    .any(|k| has(k))
            {
                let mut env = Envelopes::new(schema, "instance");
                env.payload_only(body, Meta::default())?;
                env.finish(BodyKind::KServe, options)
            } else {
                let mut decoder = JsonLinesDecoder::new(schema.clone(), 8192);
                let out = decoder.decode(0, 1, body);
                if let Some(r) = out.rejected.first() {
                    let more = out.rejected.len() - 1;
                    let tail = if more > 0 {
                        format!(" (and {more} more bad lines)")
                    } else {
                        String::new()
                    };
                    return Err(BodyError::Invalid(format!("{}{tail}", r.reason)));
                }
                Ok(DecodedBody {
                    batch: out
                        .batch
                        .unwrap_or_else(|| RecordBatch::new_empty(schema.arrow.clone())),
                    kind: BodyKind::Rows,
                    ignored: 0,
                })
            }
        }
        b'[' => {
            let first = body[start + 1..]
                .iter()
                .position(|b| !b.is_ascii_whitespace());
            let first = first.map(|i| start + 1 + i);
            let is_envelope = match first.map(|i| (i, body[i])) {
                Some((i, b'{')) => {
                    let (keys, _) = scan_keys(&body[i..])?;
                    keys.iter().any(|k| k == "payload")
                }
                _ => false,
            };
            let mut env = Envelopes::new(schema, if is_envelope { "instance" } else { "row" });
            if is_envelope {
                let mut de = serde_json::Deserializer::from_slice(body);
                EnvelopeList(&mut env)
                    .deserialize(&mut de)
                    .and_then(|_| de.end())
                    .map_err(json_err)?;
                env.finish(BodyKind::Envelope, options)
            } else {
                env.plain_rows(body)?;
                env.finish(BodyKind::Rows, options)
            }
        }
        other => Err(BodyError::Invalid(format!(
            "expected a JSON object or array, got {:?}",
            other as char
        ))),
    }
}

fn prefix(e: BodyError, p: &str) -> BodyError {
    match e {
        BodyError::Json(m) => BodyError::Json(format!("{p}{m}")),
        BodyError::Invalid(m) => BodyError::Invalid(format!("{p}{m}")),
    }
}

pub(super) fn json_err(e: serde_json::Error) -> BodyError {
    match e.classify() {
        serde_json::error::Category::Data => BodyError::Invalid(e.to_string()),
        _ => BodyError::Json(e.to_string()),
    }
}

/// Top-level keys of the first JSON object in `input`, and the byte offset where it ends.
fn scan_keys(input: &[u8]) -> Result<(Vec<String>, usize), BodyError> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    let mut stream = serde_json::Deserializer::from_slice(input).into_iter::<Keys>();
    match stream.next() {
        Some(Ok(keys)) => Ok((keys.0, stream.byte_offset())),
        Some(Err(e)) => Err(json_err(e)),
        None => Err(BodyError::Invalid("empty body".into())),
    }
}
