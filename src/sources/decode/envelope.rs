//! HTTP ingest bodies → Arrow: inference-log envelopes, KServe logger CloudEvents (binary
//! mode, and structured mode with the payload in `data`), bare KServe v1/v2 bodies, and
//! plain JSON rows. One row per instance.
//!
//! Mapping for envelopes and CloudEvents (see `Envelopes::new`):
//! - the message id (`id`, `ce-id`, else the v2 payload's `id`) goes to the column named
//!   `request_id`, else to one named `id` (case-insensitive), repeated for every instance
//!   of the message;
//! - the message time (`time`: unix seconds or RFC 3339; `ce-time`) to the event-time
//!   column, else the first timestamp column; without a time, the arrival time;
//! - the message type (`request` / `response`, from `type` / `ce-type`, else implied by
//!   `instances`/`inputs` vs `predictions`/`outputs`) to the column named `event_type`,
//!   else one named `type`.
//!
//! Instances fill the remaining columns: positionally for lists, by name for objects. The
//! `log_type` source option keeps only requests or only responses (default: both).
//!
//! Questioned rather than accepted: an envelope without a payload (it has no data) is an
//! error, and so is a plain row none of whose fields names a column; fields that match no
//! column are collected in [`DecodedBody::unknown`] for the ingest to count or refuse.

use std::sync::Arc;

use arrow::compute::kernels::cast_utils::string_to_datetime;
use arrow::record_batch::RecordBatch;
use axum::http::HeaderMap;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::messages::{EnvelopeList, Envelopes, Meta, MsgType, MISSING_PAYLOAD};
use super::unknown::{describe, Context, UnknownFields};
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
    /// Fields that match no column (ignored here; the HTTP ingest counts them, and refuses
    /// the body for `strict = 'true'` sources).
    pub unknown: UnknownFields,
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
            if is_envelope(&keys) {
                let mut env = Envelopes::new(schema, "instance");
                if more {
                    for (line_no, line) in lines(1, body) {
                        env.set_context(Context::at("line", line_no));
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
            } else if lacks_payload(schema, &keys) {
                let at = if more { "line 1: " } else { "" };
                Err(BodyError::Invalid(format!("{at}{MISSING_PAYLOAD}")))
            } else {
                let mut decoder =
                    JsonLinesDecoder::new(schema.clone(), 8192).check_unknown_fields();
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
                let unknown = match decoder.had_unknown_fields() {
                    Some(false) => UnknownFields::default(),
                    _ => line_fields(schema, body)?,
                };
                Ok(DecodedBody {
                    batch: out
                        .batch
                        .unwrap_or_else(|| RecordBatch::new_empty(schema.arrow.clone())),
                    kind: BodyKind::Rows,
                    ignored: 0,
                    unknown,
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
                    if lacks_payload(schema, &keys) {
                        return Err(BodyError::Invalid(format!("element 0: {MISSING_PAYLOAD}")));
                    }
                    is_envelope(&keys) || keys.iter().any(|k| k == "payload")
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

/// Whether an object with these top-level keys is an envelope: an inference-log envelope
/// (`payload` with `type`, `time` or `id`) or a structured-mode CloudEvent (`specversion`
/// and `data`).
fn is_envelope(keys: &[String]) -> bool {
    let has = |k: &str| keys.iter().any(|x| x == k);
    (has("payload") && (has("type") || has("time") || has("id")))
        || (has("specversion") && has("data"))
}

/// Whether an object with these top-level keys is an envelope without its payload: it has
/// envelope fields (`type`, `id`, `time`, `specversion`), no `payload` / `data`, and no
/// field that names a column (so it is not a plain row either). Refused in every mode:
/// taking it as a row would store a row of NULLs.
fn lacks_payload(schema: &SourceSchema, keys: &[String]) -> bool {
    let has = |k: &str| keys.iter().any(|x| x == k);
    let envelope_like = ["type", "id", "time", "specversion"].iter().any(|k| has(k));
    let names_column = keys.iter().any(|k| {
        schema
            .arrow
            .fields()
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(k))
    });
    envelope_like && !has("payload") && !has("data") && !names_column
}

/// The unknown fields of plain JSON rows, one object per line (run only when the
/// line decoder saw some). A line none of whose fields names a column is refused, as in an
/// array of rows: it would be a row of NULLs.
fn line_fields(schema: &SourceSchema, body: &[u8]) -> Result<UnknownFields, BodyError> {
    let names: Vec<&str> = schema
        .arrow
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let mut unknown = UnknownFields::default();
    for (line_no, line) in lines(1, body) {
        let Ok((keys, _)) = scan_keys(line) else {
            continue;
        };
        let mut known = 0;
        for key in &keys {
            if names.contains(&key.as_str()) {
                known += 1;
            } else {
                unknown.record(key, || {
                    describe(key, &format!("line {line_no}"), "columns", &names)
                });
            }
        }
        if known == 0 && !keys.is_empty() {
            let first = describe(&keys[0], &format!("line {line_no}"), "columns", &names);
            return Err(BodyError::Invalid(format!(
                "line {line_no}: no field matches a column; {first}"
            )));
        }
    }
    Ok(unknown)
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
