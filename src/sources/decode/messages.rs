//! Inference-log messages (envelopes, CloudEvent / KServe payloads) deserialized straight
//! into Arrow builders, plus the message-level columns (id, time, type) they fill.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringArray, TimestampMillisecondArray};
use arrow::compute::kernels::cast_utils::string_to_datetime;
use arrow::datatypes::DataType;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::envelope::{json_err, BodyError, BodyKind, DecodedBody, HttpDecodeOptions, LogType};
use super::rows::{Columns, InstancesSeed};
use super::time;
use super::unknown::{describe, Context};
use crate::sources::schema::SourceSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MsgType {
    Request,
    Response,
}

impl MsgType {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        if s.ends_with("request") {
            Some(Self::Request)
        } else if s.ends_with("response") {
            Some(Self::Response)
        } else {
            None
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
        }
    }
}

/// Message-level values of one envelope / CloudEvent, and how many rows it produced.
#[derive(Debug, Default)]
pub(super) struct Meta {
    pub id: Option<String>,
    pub time: Option<i64>,
    pub kind: Option<MsgType>,
    pub rows: usize,
}

/// Where envelope fields go in the source schema, and the rows collected so far.
pub(super) struct Envelopes<'s> {
    schema: &'s SourceSchema,
    id_col: Option<usize>,
    time_col: Option<usize>,
    type_col: Option<usize>,
    cols: Columns,
    metas: Vec<Meta>,
}

/// Fields an envelope may have: the inference-log envelope's, and the attributes of a
/// structured-mode CloudEvent (whose `data` is the payload).
pub(super) const ENVELOPE_FIELDS: [&str; 10] = [
    "type",
    "id",
    "time",
    "payload",
    "specversion",
    "source",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
];

/// Fields a KServe v1 / v2 payload may have besides its instances.
const PAYLOAD_FIELDS: [&str; 8] = [
    "instances",
    "inputs",
    "predictions",
    "outputs",
    "id",
    "parameters",
    "model_name",
    "model_version",
];

impl<'s> Envelopes<'s> {
    pub fn new(schema: &'s SourceSchema, noun: &'static str) -> Self {
        let fields = schema.arrow.fields();
        let find = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| fields.iter().position(|f| f.name().eq_ignore_ascii_case(n)))
        };
        let (id_col, time_col, type_col) = if noun == "row" {
            (None, None, None)
        } else {
            let time_col = schema.event_time.as_ref().map(|e| e.index).or_else(|| {
                fields
                    .iter()
                    .position(|f| matches!(f.data_type(), DataType::Timestamp(..)))
            });
            (
                find(&["request_id", "id"]),
                time_col,
                find(&["event_type", "type"]),
            )
        };
        let rest: Vec<usize> = (0..fields.len())
            .filter(|i| ![id_col, time_col, type_col].contains(&Some(*i)))
            .collect();
        Self {
            schema,
            id_col,
            time_col,
            type_col,
            cols: Columns::new(schema, &rest, 64, noun),
            metas: Vec::new(),
        }
    }

    /// Says where the next message is, for messages about its fields (" of line 2").
    pub fn set_context(&mut self, context: Context) {
        self.cols.context = context;
    }

    pub fn envelope(&mut self, input: &[u8]) -> Result<(), BodyError> {
        let mut de = serde_json::Deserializer::from_slice(input);
        let meta = EnvelopeSeed(self)
            .deserialize(&mut de)
            .and_then(|m| de.end().map(|_| m));
        self.metas.push(meta.map_err(json_err)?);
        Ok(())
    }

    pub fn payload_only(&mut self, input: &[u8], mut meta: Meta) -> Result<(), BodyError> {
        let before = self.cols.rows;
        let mut de = serde_json::Deserializer::from_slice(input);
        let (kind, id) = PayloadSeed(&mut self.cols)
            .deserialize(&mut de)
            .and_then(|p| de.end().map(|_| p))
            .map_err(json_err)?;
        meta.kind = meta.kind.or(kind);
        meta.id = meta.id.or(id);
        meta.rows = self.cols.rows - before;
        self.metas.push(meta);
        Ok(())
    }

    pub fn plain_rows(&mut self, input: &[u8]) -> Result<(), BodyError> {
        let mut de = serde_json::Deserializer::from_slice(input);
        let rows = InstancesSeed {
            cols: &mut self.cols,
            tensors: false,
        }
        .deserialize(&mut de)
        .and_then(|r| de.end().map(|_| r))
        .map_err(json_err)?;
        self.metas.push(Meta {
            rows,
            ..Meta::default()
        });
        Ok(())
    }

    pub fn finish(
        mut self,
        kind: BodyKind,
        options: &HttpDecodeOptions,
    ) -> Result<DecodedBody, BodyError> {
        let rows = self.cols.rows;
        let mut payload = self.cols.finish().map_err(BodyError::Invalid)?.into_iter();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let repeat = |f: &dyn Fn(&Meta) -> Option<String>| -> StringArray {
            self.metas
                .iter()
                .flat_map(|m| std::iter::repeat_n(f(m), m.rows))
                .collect()
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.arrow.fields().len());
        for (i, field) in self.schema.arrow.fields().iter().enumerate() {
            let col: ArrayRef = if Some(i) == self.id_col {
                Arc::new(repeat(&|m| m.id.clone()))
            } else if Some(i) == self.type_col {
                Arc::new(repeat(&|m| m.kind.map(|k| k.name().to_string())))
            } else if Some(i) == self.time_col {
                let a: TimestampMillisecondArray = self
                    .metas
                    .iter()
                    .flat_map(|m| std::iter::repeat_n(Some(m.time.unwrap_or(now)), m.rows))
                    .collect();
                Arc::new(a)
            } else {
                payload
                    .next()
                    .expect("one payload column per remaining field")
            };
            let col = if col.data_type() == field.data_type() {
                col
            } else {
                arrow::compute::cast(&col, field.data_type())
                    .map_err(|e| BodyError::Invalid(format!("column '{}': {e}", field.name())))?
            };
            columns.push(col);
        }
        let keep = |m: &Meta| {
            !matches!(
                (options.log_type, m.kind),
                (LogType::Request, Some(MsgType::Response))
                    | (LogType::Response, Some(MsgType::Request))
            )
        };
        let ignored: usize = self.metas.iter().filter(|m| !keep(m)).map(|m| m.rows).sum();
        let mut num_rows = rows;
        if ignored > 0 {
            let mask: BooleanArray = self
                .metas
                .iter()
                .flat_map(|m| std::iter::repeat_n(Some(keep(m)), m.rows))
                .collect();
            columns = columns
                .iter()
                .map(|c| arrow::compute::filter(c, &mask))
                .collect::<Result<_, _>>()
                .map_err(|e| BodyError::Invalid(e.to_string()))?;
            num_rows -= ignored;
        }
        let options = RecordBatchOptions::new().with_row_count(Some(num_rows));
        let batch = RecordBatch::try_new_with_options(self.schema.arrow.clone(), columns, &options)
            .map_err(|e| BodyError::Invalid(super::readable(&e.to_string(), self.schema)))?;
        Ok(DecodedBody {
            batch,
            kind,
            ignored,
            unknown: std::mem::take(&mut self.cols.unknown),
        })
    }
}

/// A JSON array of envelopes.
pub(super) struct EnvelopeList<'a, 's>(pub &'a mut Envelopes<'s>);

impl<'de> DeserializeSeed<'de> for EnvelopeList<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeList<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of inference-log envelopes")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.0.cols.context = Context::at("element", self.0.metas.len() as i64);
            let Some(meta) = seq.next_element_seed(EnvelopeSeed(self.0))? else {
                break;
            };
            self.0.metas.push(meta);
        }
        Ok(())
    }
}

/// One envelope `{"type","id","time","payload"}`; the payload goes straight to builders.
struct EnvelopeSeed<'a, 's>(&'a mut Envelopes<'s>);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_, '_> {
    type Value = Meta;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Meta, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_, '_> {
    type Value = Meta;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an inference-log envelope object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Meta, A::Error> {
        let before = self.0.cols.rows;
        let mut meta = Meta::default();
        let mut payload = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => {
                    let t: Value = map.next_value()?;
                    let s = t.as_str().unwrap_or_default();
                    meta.kind = Some(MsgType::parse(s).ok_or_else(|| {
                        de::Error::custom(format!(
                            "field \"type\": expected \"request\" or \"response\", got {t}"
                        ))
                    })?);
                }
                "id" => {
                    meta.id = match map.next_value::<Value>()? {
                        Value::Null => None,
                        Value::String(s) => Some(s),
                        other => Some(other.to_string()),
                    }
                }
                "time" => {
                    meta.time = parse_time(map.next_value::<Value>()?).map_err(de::Error::custom)?
                }
                "payload" | "data" => {
                    if payload.is_some() {
                        return Err(de::Error::custom(
                            "envelope has both \"payload\" and \"data\"; send one",
                        ));
                    }
                    payload = Some(map.next_value_seed(PayloadSeed(&mut self.0.cols))?)
                }
                other => {
                    if !ENVELOPE_FIELDS.contains(&other) {
                        let cols = &mut self.0.cols;
                        let context = cols.context;
                        cols.unknown.record(other, || {
                            let place = format!("the envelope{context}");
                            describe(other, &place, "envelope fields", &ENVELOPE_FIELDS[..4])
                        });
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some((kind, id)) = payload else {
            return Err(de::Error::custom(MISSING_PAYLOAD));
        };
        meta.kind = meta.kind.or(kind);
        meta.id = meta.id.or(id);
        meta.rows = self.0.cols.rows - before;
        Ok(meta)
    }
}

/// Why an envelope without a payload is refused, in both modes: it has no data.
pub(super) const MISSING_PAYLOAD: &str = "envelope has no \"payload\" field (its instances go in \
     \"payload\": {\"instances\": [...]}); nothing to ingest";

/// Envelope `time`: unix seconds (number or numeric string) or RFC 3339.
fn parse_time(v: Value) -> Result<Option<i64>, String> {
    let bad = || format!("field \"time\": expected unix seconds or RFC 3339, got {v}");
    match &v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .and_then(time::seconds_to_ms)
            .map(Some)
            .ok_or_else(bad),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(secs) => time::seconds_to_ms(secs).map(Some).ok_or_else(bad),
            Err(_) => string_to_datetime(&chrono::Utc, s.trim())
                .ok()
                .and_then(|d| time::in_range(d.timestamp_millis()))
                .map(Some)
                .ok_or_else(bad),
        },
        _ => Err(bad()),
    }
}

/// A KServe payload: `instances` / `inputs` (requests) or `predictions` / `outputs`
/// (responses); also accepts the payload as a JSON-encoded string or a bare list.
/// Returns the message type implied by the key, and a top-level `id` if present.
struct PayloadSeed<'a>(&'a mut Columns);

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = (Option<MsgType>, Option<String>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_> {
    type Value = (Option<MsgType>, Option<String>);
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(
            "a payload object with \"instances\", \"inputs\", \"predictions\" or \"outputs\"",
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: Option<(&'static str, MsgType)> = None;
        let mut id = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let (name, kind, tensors) = match key.as_ref() {
                "instances" => ("instances", MsgType::Request, false),
                "inputs" => ("inputs", MsgType::Request, true),
                "predictions" => ("predictions", MsgType::Response, false),
                "outputs" => ("outputs", MsgType::Response, true),
                "id" => {
                    id = match map.next_value::<Value>()? {
                        Value::String(s) => Some(s),
                        Value::Null => None,
                        other => Some(other.to_string()),
                    };
                    continue;
                }
                other => {
                    if !PAYLOAD_FIELDS.contains(&other) {
                        let cols = &mut *self.0;
                        let context = cols.context;
                        cols.unknown.record(other, || {
                            let place = format!("the payload{context}");
                            describe(other, &place, "payload fields", &PAYLOAD_FIELDS)
                        });
                    }
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Some((prev, _)) = found {
                return Err(de::Error::custom(format!(
                    "payload has both \"{prev}\" and \"{name}\"; send one per message"
                )));
            }
            map.next_value_seed(InstancesSeed {
                cols: self.0,
                tensors,
            })?;
            found = Some((name, kind));
        }
        match found {
            Some((_, kind)) => Ok((Some(kind), id)),
            None => Err(de::Error::custom(
                "payload has no \"instances\", \"inputs\", \"predictions\" or \"outputs\"",
            )),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        InstancesSeed {
            cols: self.0,
            tensors: true,
        }
        .visit_seq(seq)?;
        Ok((None, None))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let mut de = serde_json::Deserializer::from_str(v);
        PayloadSeed(self.0)
            .deserialize(&mut de)
            .and_then(|p| de.end().map(|_| p))
            .map_err(|e| E::custom(format!("payload string: {e}")))
    }
}
