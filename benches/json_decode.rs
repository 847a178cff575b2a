//! Decoding throughput: 100 k Iris-like JSON lines through `JsonLinesDecoder`, and the same
//! rows as inference-log envelopes through `decode_http_body`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use axum::http::HeaderMap;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use driftwatch::sources::decode::{decode_http_body, HttpDecodeOptions, JsonLinesDecoder};
use driftwatch::sources::{SourceSchema, TimeFormat, EVENT_TIME_TYPE};

const ROWS: usize = 100_000;

fn schema(format: TimeFormat) -> Arc<SourceSchema> {
    let mut fields = vec![
        Field::new("request_id", DataType::Utf8, true),
        Field::new("ts", EVENT_TIME_TYPE, false),
    ];
    for f in ["sepal_length", "sepal_width", "petal_length", "petal_width"] {
        fields.push(Field::new(f, DataType::Float64, true));
    }
    Arc::new(SourceSchema::new("iris", fields, Some(("ts".into(), 6000)), format).unwrap())
}

fn value(i: usize, k: usize) -> f64 {
    ((i * 7 + k * 13) % 50) as f64 / 10.0 + 1.0
}

fn lines(ts: impl Fn(usize) -> String) -> Vec<u8> {
    let mut out = String::with_capacity(ROWS * 120);
    for i in 0..ROWS {
        out.push_str(&format!(
            "{{\"request_id\":\"r{i}\",\"ts\":{},\"sepal_length\":{},\"sepal_width\":{},\"petal_length\":{},\"petal_width\":{}}}\n",
            ts(i),
            value(i, 0),
            value(i, 1),
            value(i, 2),
            value(i, 3)
        ));
    }
    out.into_bytes()
}

fn envelopes(per_envelope: usize) -> Vec<u8> {
    let mut out = String::with_capacity(ROWS * 30);
    for e in 0..ROWS / per_envelope {
        let instances: Vec<String> = (0..per_envelope)
            .map(|j| {
                let i = e * per_envelope + j;
                format!(
                    "[{},{},{},{}]",
                    value(i, 0),
                    value(i, 1),
                    value(i, 2),
                    value(i, 3)
                )
            })
            .collect();
        out.push_str(&format!(
            "{{\"type\":\"request\",\"id\":\"r{e}\",\"time\":{}.5,\"payload\":{{\"instances\":[{}]}}}}\n",
            1_700_000_000 + e,
            instances.join(",")
        ));
    }
    out.into_bytes()
}

fn line_chunks(input: &[u8], lines: usize) -> Vec<(i64, &[u8])> {
    let mut out = Vec::new();
    let (mut start, mut n, mut first) = (0, 0, 1i64);
    for (i, b) in input.iter().enumerate() {
        if *b == b'\n' {
            n += 1;
            if n == lines {
                out.push((first, &input[start..=i]));
                first += n as i64;
                start = i + 1;
                n = 0;
            }
        }
    }
    if start < input.len() {
        out.push((first, &input[start..]));
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_decode");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);

    let cases = [
        (
            "jsonl_epoch_ms",
            TimeFormat::Auto,
            lines(|i| (1_700_000_000_000u64 + i as u64).to_string()),
        ),
        (
            "jsonl_rfc3339",
            TimeFormat::Rfc3339,
            lines(|i| format!("\"2023-11-14T22:{:02}:{:02}.123Z\"", (i / 60) % 60, i % 60)),
        ),
        (
            "jsonl_epoch_seconds",
            TimeFormat::EpochSeconds,
            lines(|i| format!("{}.25", 1_700_000_000 + i)),
        ),
    ];
    for (name, format, input) in &cases {
        let schema = schema(*format);
        group.bench_function(*name, |b| {
            let mut decoder = JsonLinesDecoder::new(schema.clone(), 8192);
            // Chunks of 8192 lines, as the file connector feeds them.
            let chunks = line_chunks(input, 8192);
            b.iter(|| {
                let rows: usize = chunks
                    .iter()
                    .map(|(line, chunk)| decoder.decode(0, *line, chunk).num_rows())
                    .sum();
                assert_eq!(rows, ROWS);
            })
        });
    }

    let schema = schema(TimeFormat::Auto);
    let options = HttpDecodeOptions::default();
    let headers = HeaderMap::new();
    for per in [1usize, 100] {
        let body = envelopes(per);
        group.bench_function(format!("envelope_ndjson_{per}_instances"), |b| {
            b.iter(|| {
                let out = decode_http_body(&schema, &headers, &body, &options).unwrap();
                assert_eq!(out.batch.num_rows(), ROWS);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
