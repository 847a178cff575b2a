//! Inputs of the decoder fuzz targets (`tests/fuzz_decoders.rs`): the sources decoded for,
//! valid seeds per source and format (kept valid by the `seeds_decode` test, so unmutated
//! cases get past the parsers), the dictionaries spliced into them, and structure-aware
//! generators for KServe v2 tensors, CloudEvent headers and Kafka messages.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field};
use axum::http::{HeaderMap, HeaderValue};
use driftwatch::sources::decode::time::MAX_TIME_MS;
use driftwatch::sources::decode::LogType;
use driftwatch::sources::kafka::format::RawMessage;
use driftwatch::sources::kafka::options::MessageFormat;
use driftwatch::sources::{SourceSchema, TimeFormat, EVENT_TIME_TYPE};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::fuzz_support::{mutated, nested, raw_bytes, Bytes};

pub const FORMATS: [TimeFormat; 4] = [
    TimeFormat::Auto,
    TimeFormat::Rfc3339,
    TimeFormat::EpochSeconds,
    TimeFormat::EpochMillis,
];
pub const FEATURES: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

/// Source shapes: 0 iris (id, ts, type, four doubles), 1 every column type, 2 one payload
/// column (scalar instances), 3 no payload column at all (only id and time).
pub fn schema(kind: usize, format: TimeFormat) -> Arc<SourceSchema> {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    let mut fields = vec![
        f("request_id", DataType::Utf8, true),
        f("ts", EVENT_TIME_TYPE, false),
    ];
    match kind {
        0 => {
            fields.push(f("event_type", DataType::Utf8, true));
            fields.extend(FEATURES.iter().map(|n| f(n, DataType::Float64, true)));
        }
        1 => fields.extend([
            f("n", DataType::Int32, true),
            f("big", DataType::Int64, true),
            f("flag", DataType::Boolean, true),
            f("f", DataType::Float32, true),
            f("d", DataType::Decimal128(10, 2), true),
            f("day", DataType::Date32, true),
            f("label", DataType::Utf8, false),
            f("seen", EVENT_TIME_TYPE, true),
        ]),
        2 => fields.push(f("x", DataType::Float64, true)),
        _ => {}
    }
    Arc::new(SourceSchema::new("src", fields, Some(("ts".into(), 5000)), format).unwrap())
}

/// Which source a case decodes for (kept small so failure reports stay readable).
#[derive(Debug, Clone, Copy)]
pub struct Src(pub usize, pub TimeFormat);

impl Src {
    pub fn schema(self) -> Arc<SourceSchema> {
        schema(self.0, self.1)
    }
}

pub fn source() -> impl Strategy<Value = Src> {
    // Most seeds carry epoch-ms or RFC 3339 times: `auto` reads both.
    let format = prop_oneof![5 => Just(TimeFormat::Auto), 3 => select(&FORMATS[1..])];
    (0usize..4, format).prop_map(|(k, f)| Src(k, f))
}

/// Fragments spliced into JSON inputs: structure, keys the decoders look for, shapes,
/// times, escapes, unicode and deep nesting.
pub static JSON_DICT: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut d = vec![
        "{",
        "}",
        "[",
        "]",
        "\"",
        ",",
        ":",
        "null",
        "true",
        "false",
        "\n",
        "\r\n",
        " ",
        "{}",
        "[]",
        "\"\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\\"\"",
        "\"é\"",
        "\"\u{10ffff}\"",
        "\u{feff}",
        "\"ts\":",
        "\"x\":",
        "\"n\":",
        "\"seen\":",
        "\"label\":",
        "\"payload\":",
        "\"instances\":",
        "\"inputs\":",
        "\"outputs\":",
        "\"predictions\":",
        "\"shape\":",
        "\"data\":",
        "\"name\":",
        "\"datatype\":\"FP32\"",
        "\"type\":\"request\"",
        "\"type\":\"response\"",
        "\"time\":",
        "\"id\":",
        "\"parameters\":{}",
        "[4611686018427387904,4]",
        "[4294967296,4294967296]",
        "[-1,4]",
        "[2,-2,-2]",
        "[0,4]",
        "[3,0]",
        "[9223372036854775807]",
        "\"2023-11-14T22:13:20Z\"",
        "\"+262143-01-01T00:00:00Z\"",
        "\"1700000000.5\"",
        "1e20",
        "-1e20",
        "{\"name\":\"x\",\"shape\":[4611686018427387904],\"data\":[]}",
        "\"{\\\"instances\\\":[[1,2,3,4]]}\"",
    ];
    for (open, close) in [("[", "]"), ("{\"a\":", "}"), ("{\"payload\":", "}")] {
        d.push(Box::leak(nested(open, close, 200, "1").into_boxed_str()));
    }
    d
});

pub fn bytes(s: &[&str]) -> Vec<Vec<u8>> {
    s.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Valid JSON rows (one object per line) for source kind `kind`.
pub fn row_seeds(kind: usize) -> Vec<Vec<u8>> {
    bytes(match kind {
        0 => &[
            "{\"request_id\":\"a\",\"ts\":1700000000000,\"event_type\":\"request\",\"sepal_length\":5.1,\"sepal_width\":3.5,\"petal_length\":1.4,\"petal_width\":0.2}\n{\"ts\":\"2023-11-14T22:13:20.5Z\",\"petal_width\":0.2}\n",
            "{\"ts\":\"2023-11-14T22:13:20Z\",\"sepal_length\":\"5.1\",\"request_id\":7}",
        ],
        1 => &[
            "{\"ts\":1700000000,\"n\":2147483647,\"big\":-9223372036854775808,\"flag\":true,\"f\":1.5,\"d\":\"12.34\",\"day\":\"2024-02-29\",\"label\":\"x\",\"seen\":\"2023-01-01T00:00:00Z\"}",
            "{\"ts\":1700000000250,\"label\":\"\",\"n\":null,\"extra\":{\"deep\":[1,[2]]}}\r\n\r\n{\"ts\":\"2023-11-14T22:13:20Z\",\"label\":\"y\",\"flag\":false}",
        ],
        2 => &["{\"ts\":1.5e3,\"x\":1}\r\n\r\n{\"ts\":-1,\"x\":\"2.5\",\"request_id\":7}\n{\"ts\":\"2023-11-14T22:13:20Z\",\"x\":null}"],
        _ => &["{\"ts\":1}\n{\"request_id\":\"r\",\"ts\":\"2023-11-14T22:13:20Z\"}"],
    })
}

/// Valid HTTP bodies for source kind `kind`: envelopes (single, NDJSON, arrays, payload as a
/// string), KServe v1 and v2 requests and responses, plain rows.
pub fn body_seeds(kind: usize) -> Vec<Vec<u8>> {
    let mut seeds = bytes(match kind {
        0 => &[
            "{\"type\":\"request\",\"id\":\"r1\",\"time\":1700000000,\"payload\":{\"instances\":[[5.1,3.5,1.4,0.2],[6.2,2.9,4.3,1.3]]}}",
            "{\"type\":\"request\",\"id\":\"a\",\"payload\":{\"instances\":[[1,2,3,4]]}}\n{\"type\":\"response\",\"id\":\"a\",\"time\":\"2023-11-14T22:13:20Z\",\"payload\":{\"predictions\":[[0,1,0,1]]}}\n",
            "[{\"type\":\"request\",\"time\":\"1700000000.5\",\"payload\":{\"instances\":[{\"sepal_length\":1,\"petal_width\":2}]}},{\"id\":\"b\",\"payload\":[[1,2,3,4]]}]",
            "{\"type\":\"request\",\"payload\":\"{\\\"instances\\\":[[1,2,3,4]]}\"}",
            "{\"instances\":[{\"sepal_length\":5.1,\"sepal_width\":3.5,\"petal_length\":1.4,\"petal_width\":0.2}]}",
            "{\"id\":\"q\",\"inputs\":[{\"name\":\"input-0\",\"shape\":[2,4],\"datatype\":\"FP32\",\"data\":[5.1,3.5,1.4,0.2,6.2,2.9,4.3,1.3]}]}",
            "{\"inputs\":[{\"data\":[[1,2],[3,4]],\"shape\":[1,4],\"name\":\"t\"}]}",
            "{\"inputs\":[{\"name\":\"sepal_length\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1,2]},{\"name\":\"petal_width\",\"shape\":[2,1],\"data\":[[1],[2]]}]}",
            "[[\"id\",1700000000000,\"request\",1,2,3,4]]",
        ],
        1 => &[
            "{\"instances\":[{\"n\":1,\"big\":2,\"flag\":false,\"f\":0.5,\"d\":1.25,\"day\":\"2024-01-01\",\"label\":\"l\",\"seen\":1700000000000}]}",
            "{\"type\":\"response\",\"id\":7,\"payload\":{\"predictions\":[{\"label\":\"cat\",\"f\":0.9}]}}",
            "{\"inputs\":[{\"name\":\"label\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[\"a\",\"b\"]},{\"name\":\"n\",\"shape\":[2],\"data\":[1,2]}]}",
            "[{\"ts\":1,\"label\":\"a\",\"day\":\"2024-02-29\"},{\"ts\":\"2023-11-14T22:13:20Z\",\"label\":\"b\",\"d\":\"99999999.99\"}]",
        ],
        2 => &[
            "{\"instances\":[1.5,2.5,null]}",
            "{\"type\":\"response\",\"id\":\"a\",\"payload\":{\"predictions\":[2]}}",
            "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"FP64\",\"data\":[0,1,2]}]}",
            "[{\"ts\":1,\"x\":1},{\"ts\":\"2023-11-14T22:13:20Z\",\"x\":2}]",
        ],
        _ => &[
            "{\"type\":\"request\",\"id\":\"x\",\"time\":1700000000,\"payload\":{\"instances\":[[],[]]}}",
            "[{\"ts\":1},{\"request_id\":\"a\",\"ts\":\"2023-11-14T22:13:20Z\"}]",
            "{\"instances\":[[],[]]}",
        ],
    });
    seeds.extend(row_seeds(kind));
    seeds
}

/// An input for a JSON decoder: a mutated seed, or (sometimes) arbitrary bytes.
pub fn json_input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        9 => mutated(seeds, JSON_DICT.as_slice(), 4),
        1 => raw_bytes(128),
    ]
}

pub fn log_type() -> impl Strategy<Value = LogType> {
    select(&[LogType::Both, LogType::Request, LogType::Response][..])
}

/// CloudEvent headers: the KServe types, wrong types, times in and out of range, garbage.
pub fn ce_headers() -> impl Strategy<Value = HeaderMap> {
    let ce_type = prop_oneof![
        4 => select(&[
            "org.kubeflow.serving.inference.request",
            "org.kubeflow.serving.inference.response",
            "REQUEST",
        ][..]),
        1 => select(&["org.kubeflow.serving.inference.other", ""][..]),
    ];
    let ce_time = proptest::option::of(prop_oneof![
        3 => select(&["2023-11-14T22:13:20Z", "2023-11-14T22:13:20.123+02:00"][..]),
        1 => select(&[
            "+262142-12-31T23:59:59Z",
            "-262143-01-01T00:00:00Z",
            "1700000000",
            "yesterday",
            "",
        ][..]),
    ]);
    let ce_id = proptest::option::of("[ -~]{0,12}");
    (ce_type, ce_time, ce_id).prop_map(|(t, time, id)| {
        let mut h = HeaderMap::new();
        h.insert("ce-type", HeaderValue::from_static(t));
        if let Some(time) = time {
            h.insert("ce-time", HeaderValue::from_static(time));
        }
        if let Some(v) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            h.insert("ce-id", v);
        }
        h
    })
}

/// One KServe v2 tensor, generated field by field.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: Option<&'static str>,
    pub shape: Option<Vec<i64>>,
    pub data: Vec<f64>,
    /// Data nested by this many values per inner list (0: flat).
    pub nest: usize,
    pub data_first: bool,
}

impl TensorSpec {
    pub fn json(&self) -> String {
        let data = if self.nest == 0 {
            serde_json::to_string(&self.data).unwrap()
        } else {
            let chunks: Vec<&[f64]> = self.data.chunks(self.nest).collect();
            serde_json::to_string(&chunks).unwrap()
        };
        let mut parts = vec![format!("\"data\":{data}"), "\"datatype\":\"FP64\"".into()];
        if let Some(s) = &self.shape {
            parts.push(format!("\"shape\":{}", serde_json::to_string(s).unwrap()));
        }
        if let Some(n) = self.name {
            parts.push(format!("\"name\":\"{n}\""));
        }
        if !self.data_first {
            parts.reverse();
        }
        format!("{{{}}}", parts.join(","))
    }
}

/// A tensor whose shape matches its data (mostly), or one with any shape and data.
pub fn tensor() -> impl Strategy<Value = TensorSpec> {
    let name = || {
        proptest::option::weighted(
            0.9,
            select(
                &[
                    "input-0",
                    "sepal_length",
                    "PETAL_WIDTH",
                    "x",
                    "label",
                    "other",
                ][..],
            ),
        )
    };
    let consistent = (
        name(),
        0usize..4,
        select(&[1usize, 2, 4, 8][..]),
        0usize..3,
        any::<u8>(),
    )
        .prop_flat_map(|(name, n, k, nest, bits)| {
            let shape = match bits % 3 {
                0 if k == 1 => vec![n as i64],
                1 if k % 2 == 0 => vec![n as i64, 2, k as i64 / 2],
                _ => vec![n as i64, k as i64],
            };
            let data = vec(-1e3f64..1e3, n * k);
            (
                Just(name),
                Just(Some(shape)),
                data,
                Just(nest),
                Just(bits & 8 == 0),
            )
        });
    let dim = prop_oneof![
        6 => 0i64..6,
        1 => select(&[-1i64, -4, 1 << 32, 1 << 62, i64::MAX, i64::MIN, 3 << 61][..]),
    ];
    let random = (
        name(),
        proptest::option::weighted(0.9, vec(dim, 0..4)),
        vec(-1e3f64..1e3, 0..13),
        0usize..4,
        any::<bool>(),
    );
    prop_oneof![3 => consistent, 2 => random].prop_map(|(name, shape, data, nest, data_first)| {
        TensorSpec {
            name,
            shape,
            data,
            nest,
            data_first,
        }
    })
}

pub static CSV_DICT: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    vec![
        ",",
        ";",
        "\t",
        "\"",
        "\"\"",
        "\n",
        "\r\n",
        "\r",
        " ",
        "é",
        "\u{feff}",
        "ts",
        "x",
        "label",
        "\"a,\nb\"",
        "2023-11-14T22:13:20Z",
        "1700000000.5",
        "later",
        "",
        "null",
    ]
});

/// Valid CSV (with a header line) for source kind `kind`.
pub fn csv_seeds(kind: usize) -> Vec<Vec<u8>> {
    bytes(match kind {
        0 => &[
            "request_id,ts,event_type,sepal_length,sepal_width,petal_length,petal_width\nr1,1700000000000,request,5.1,3.5,1.4,0.2\nr2,1700000000001,,1,2,3,4\n",
            "ts,sepal_length\n2023-11-14T22:13:20Z,5.1\r\n",
        ],
        1 => &["request_id,ts,n,big,flag,f,d,day,label,seen\nr,1700000000,1,2,true,1.5,3.25,2024-02-29,l,2023-01-01T00:00:00Z\n"],
        2 => &[
            "ts,x\n10,1.5\n11,\n",
            "x,extra,ts\n1.5,\"a,\nb\",10\n2.5,z,1700000000000\n",
        ],
        _ => &["request_id,ts\na,1\n\"b\",2023-11-14T22:13:20Z\n"],
    })
}

/// A Kafka source: metadata columns around the iris columns; the watermark on `ts` or on
/// the Kafka timestamp.
pub fn kafka_schema(on_kafka_time: bool, format: TimeFormat) -> Arc<SourceSchema> {
    let mut fields = vec![
        Field::new("_partition", DataType::Int32, true),
        Field::new("_offset", DataType::Int64, false),
        Field::new("_key", DataType::Utf8, true),
        Field::new("_timestamp", EVENT_TIME_TYPE, true),
        Field::new("request_id", DataType::Utf8, true),
        Field::new("ts", EVENT_TIME_TYPE, on_kafka_time),
    ];
    fields.extend(
        FEATURES
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true)),
    );
    let wm = if on_kafka_time { "_timestamp" } else { "ts" };
    Arc::new(SourceSchema::new("k", fields, Some((wm.into(), 1000)), format).unwrap())
}

#[derive(Debug, Clone)]
pub struct KafkaCase {
    pub format: MessageFormat,
    pub on_kafka_time: bool,
    pub time_format: TimeFormat,
    pub batch_size: usize,
    pub messages: Vec<RawMessage>,
}

/// Seeds whose bytes contain `needle`, or do not.
pub fn having(seeds: Vec<Vec<u8>>, needle: &str, wanted: bool) -> Vec<Vec<u8>> {
    let has = |s: &[u8]| s.windows(needle.len()).any(|w| w == needle.as_bytes());
    seeds.into_iter().filter(|s| has(s) == wanted).collect()
}

/// Valid payloads for the Kafka source's columns (request_id, ts, the iris features) in
/// `format`.
pub fn kafka_payloads(format: MessageFormat) -> Vec<Vec<u8>> {
    match format {
        MessageFormat::Json => bytes(&[
            "{\"request_id\":\"a\",\"ts\":1700000000000,\"sepal_length\":5.1,\"petal_width\":0.2}",
            "{\"ts\":\"2023-11-14T22:13:20Z\",\"sepal_width\":1}\n",
        ]),
        MessageFormat::Csv => bytes(&[
            "r1,1700000000000,5.1,3.5,1.4,0.2",
            "\"r\n2\",2023-11-14T22:13:20Z,1,2,3,4\r\n",
        ]),
        MessageFormat::InferenceLog => having(body_seeds(0), "\"payload\"", true),
        MessageFormat::CloudEvents => having(body_seeds(0), "\"payload\"", false),
    }
}

/// Kafka headers: a valid binary-mode CloudEvent set, or arbitrary names and bytes.
pub fn kafka_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let valid = (
        select(
            &[
                "org.kubeflow.serving.inference.request",
                "org.kubeflow.serving.inference.response",
            ][..],
        ),
        proptest::option::of(select(
            &["2023-11-14T22:13:20Z", "+262142-12-31T23:59:59Z", "x"][..],
        )),
    )
        .prop_map(|(t, time)| {
            let mut h = vec![("ce_type".to_string(), t.as_bytes().to_vec())];
            h.push(("ce_id".into(), b"id-1".to_vec()));
            if let Some(time) = time {
                h.push(("ce_time".into(), time.as_bytes().to_vec()));
            }
            h
        });
    let name = select(
        &[
            "ce_type",
            "ce-id",
            "ce_time",
            "CE_TYPE",
            "ce_\u{e9}",
            "x",
            "ce_ bad",
        ][..],
    );
    let value = prop_oneof![
        select(
            &[
                "org.kubeflow.serving.inference.request",
                "2023-11-14T22:13:20Z"
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        vec(any::<u8>(), 0..6),
    ];
    let arbitrary = vec((name.prop_map(String::from), value), 0..4);
    prop_oneof![3 => valid, 1 => arbitrary]
}

pub fn kafka_case() -> impl Strategy<Value = KafkaCase> {
    let format = select(
        &[
            MessageFormat::Json,
            MessageFormat::Csv,
            MessageFormat::InferenceLog,
            MessageFormat::CloudEvents,
        ][..],
    );
    format
        .prop_flat_map(|format| {
            let timestamp = proptest::option::of(prop_oneof![
                8 => 0i64..2_000_000_000_000,
                1 => select(&[i64::MAX, i64::MIN, MAX_TIME_MS + 1, -MAX_TIME_MS][..]),
            ]);
            let payload = proptest::option::weighted(
                0.95,
                json_input(kafka_payloads(format)).prop_map(|b| b.0),
            );
            let message = (
                -2i32..3,
                timestamp,
                proptest::option::of(vec(any::<u8>(), 0..6)),
                payload,
                kafka_headers(),
            );
            let time_format = prop_oneof![3 => Just(TimeFormat::Auto), 1 => select(&FORMATS[1..])];
            (
                Just(format),
                any::<bool>(),
                time_format,
                1usize..8,
                vec(message, 1..6),
                0i64..(i64::MAX - 16),
            )
        })
        .prop_map(
            |(format, on_kafka_time, time_format, batch_size, msgs, base)| KafkaCase {
                format,
                on_kafka_time,
                time_format,
                batch_size,
                messages: msgs
                    .into_iter()
                    .enumerate()
                    .map(
                        |(i, (partition, timestamp, key, payload, headers))| RawMessage {
                            partition,
                            offset: base + i as i64,
                            timestamp,
                            key,
                            payload,
                            headers,
                        },
                    )
                    .collect(),
            },
        )
}
