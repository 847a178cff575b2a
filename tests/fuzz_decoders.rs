//! Fuzz targets for every decoder of raw input: JSON rows (NDJSON), HTTP bodies (inference-log
//! envelopes, bare KServe v1 / v2 bodies, plain rows), CloudEvents in binary mode, KServe v2
//! tensors (structure-aware: shapes with huge, zero and negative dimensions), CSV, and the
//! Kafka message path (headers, keys, timestamps, every message format). The inputs are in
//! `tests/fuzz_support/decoder_inputs.rs`.
//!
//! Each target must never panic, and checks what it cheaply can: a decoded batch has exactly
//! the source schema, NOT NULL columns hold no NULL, every timestamp is within the event-time
//! range, every input record is either a row or a rejected record (JSON lines, CSV, Kafka),
//! a tensor's rows match its shape, and errors say something. `DRIFTWATCH_FUZZ_CASES` sets
//! the cases per target (see `tests/fuzz_support`); `scripts/fuzz.sh` runs a million.
//!
//! The `regressions` section at the end keeps every crash and wrong result found, as plain
//! tests with the minimal input.

mod fuzz_support;
#[path = "fuzz_support/decoder_inputs.rs"]
mod inputs;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimestampMillisecondType};
use axum::http::HeaderMap;
use driftwatch::sources::decode::time::MAX_TIME_MS;
use driftwatch::sources::decode::{
    decode_csv, decode_http_body, BodyError, DecodedBody, HttpDecodeOptions, JsonLinesDecoder,
};
use driftwatch::sources::kafka::format::{MessageDecoder, RawMessage};
use driftwatch::sources::kafka::options::MessageFormat;
use driftwatch::sources::{SourceSchema, TimeFormat};
use fuzz_support::{mutated, outcome, raw_bytes, run};
use inputs::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------
// Sources and invariants

/// A decoded batch has the source's schema, fully valid arrays (UTF-8 strings included), no
/// NULL in NOT NULL columns, and only event times within ±MAX_TIME_MS.
fn check_batch(schema: &SourceSchema, batch: &RecordBatch) -> Result<(), TestCaseError> {
    let actual = batch.schema();
    prop_assert_eq!(actual.fields(), schema.arrow.fields());
    for (field, col) in schema.arrow.fields().iter().zip(batch.columns()) {
        prop_assert_eq!(col.len(), batch.num_rows());
        // Offsets, UTF-8 of strings, decimal precision: an array a decoder built unchecked
        // must still be valid.
        if let Err(e) = col.to_data().validate_full() {
            return Err(TestCaseError::fail(format!("column {}: {e}", field.name())));
        }
        if !field.is_nullable() {
            prop_assert_eq!(
                col.null_count(),
                0,
                "NULL in NOT NULL column {}",
                field.name()
            );
        }
        if matches!(field.data_type(), DataType::Timestamp(..)) {
            let ts = col.as_primitive::<TimestampMillisecondType>();
            for v in ts.iter().flatten() {
                prop_assert!(
                    v.abs() <= MAX_TIME_MS,
                    "{} = {v} out of range",
                    field.name()
                );
            }
        }
    }
    Ok(())
}

/// Counts a line decoder's outcome: all rows, all rejected, or both.
fn tally(rows: usize, rejected: usize) {
    outcome(match (rows, rejected) {
        (0, 0) => "empty",
        (_, 0) => "rows",
        (0, _) => "rejected",
        _ => "rows+rejected",
    });
}

fn check_body(
    schema: &SourceSchema,
    out: &Result<DecodedBody, BodyError>,
) -> Result<(), TestCaseError> {
    match out {
        Ok(d) => {
            outcome(if d.batch.num_rows() > 0 {
                "rows"
            } else {
                "no rows"
            });
            check_batch(schema, &d.batch)
        }
        Err(e) => {
            outcome("error");
            prop_assert!(!e.to_string().trim().is_empty(), "empty error message");
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Counting records the way the line decoders do

/// Non-blank lines, as the line decoders count them.
fn count_lines(input: &[u8]) -> usize {
    input
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count()
}

/// CSV records after the header, as `decode_csv` counts them (a newline inside double
/// quotes does not end a record, blank records are skipped).
fn count_records(input: &[u8], has_header: bool) -> usize {
    let body = if has_header {
        input
            .iter()
            .position(|b| *b == b'\n')
            .map_or(&[][..], |i| &input[i + 1..])
    } else {
        input
    };
    let (mut n, mut quoted, mut start) = (0, false, 0);
    let mut push = |rec: &[u8]| {
        if !rec.iter().all(u8::is_ascii_whitespace) {
            n += 1;
        }
    };
    for (i, b) in body.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&body[start..]);
    n
}

// ---------------------------------------------------------------------------------------
// Targets

#[test]
fn fuzz_json_rows() {
    let strategy =
        || source().prop_flat_map(|src| (Just(src), json_input(row_seeds(src.0)), 1usize..6));
    run("json_rows", strategy, |(src, input, batch_size)| {
        let schema = src.schema();
        let mut decoder = JsonLinesDecoder::new(Arc::clone(&schema), batch_size);
        let out = decoder.decode(3, 10, &input);
        tally(out.num_rows(), out.rejected.len());
        if let Some(b) = &out.batch {
            check_batch(&schema, b)?;
        }
        // Positions are line numbers, blank lines included.
        let last = 10 + input.split(|b| *b == b'\n').count() as i64;
        for r in &out.rejected {
            prop_assert!(!r.reason.is_empty());
            prop_assert!(matches!(r.position, Some(p) if (10..last).contains(&p)));
        }
        prop_assert_eq!(out.num_rows() + out.rejected.len(), count_lines(&input));
        Ok(())
    });
}

#[test]
fn fuzz_http_bodies() {
    let strategy =
        || source().prop_flat_map(|src| (Just(src), json_input(body_seeds(src.0)), log_type()));
    run("http_bodies", strategy, |(src, body, log_type)| {
        let schema = src.schema();
        let options = HttpDecodeOptions { log_type };
        let out = decode_http_body(&schema, &HeaderMap::new(), &body, &options);
        check_body(&schema, &out)
    });
}

#[test]
fn fuzz_cloudevents() {
    let strategy = || {
        source().prop_flat_map(|src| {
            let seeds = having(body_seeds(src.0), "\"payload\"", false);
            (Just(src), ce_headers(), json_input(seeds), log_type())
        })
    };
    run("cloudevents", strategy, |(src, headers, body, log_type)| {
        let schema = src.schema();
        let options = HttpDecodeOptions { log_type };
        let out = decode_http_body(&schema, &headers, &body, &options);
        check_body(&schema, &out)
    });
}

#[test]
fn fuzz_kserve_v2_tensors() {
    let wrapper = select(
        &[
            "{\"inputs\":#}",
            "{\"id\":\"q\",\"outputs\":#}",
            "{\"type\":\"request\",\"id\":\"e\",\"time\":1700000000,\"payload\":{\"inputs\":#}}",
            "{\"type\":\"request\",\"payload\":#}",
        ][..],
    );
    let strategy = || (source(), vec(tensor(), 1..4), wrapper.clone());
    run("kserve_v2_tensors", strategy, |(src, tensors, wrapper)| {
        let schema = src.schema();
        let list: Vec<String> = tensors.iter().map(TensorSpec::json).collect();
        let body = wrapper.replace('#', &format!("[{}]", list.join(",")));
        let out = decode_http_body(
            &schema,
            &HeaderMap::new(),
            body.as_bytes(),
            &Default::default(),
        );
        check_body(&schema, &out)?;
        if let Ok(d) = &out {
            let values: usize = tensors.iter().map(|t| t.data.len()).sum();
            let rows = d.batch.num_rows();
            prop_assert!(rows <= values, "{rows} rows from {values} values: {body}");
            if let [TensorSpec {
                shape: Some(shape), ..
            }] = tensors.as_slice()
            {
                if let Some(n) = shape.first() {
                    prop_assert_eq!(rows as i64, *n, "rows against shape {:?}", shape);
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_csv() {
    let strategy = || {
        let delimiter = select(&[b',', b';', b'\t', b'|'][..]);
        source().prop_flat_map(move |src| {
            let input = prop_oneof![
                9 => mutated(csv_seeds(src.0), CSV_DICT.as_slice(), 4),
                1 => raw_bytes(128),
            ];
            (
                Just(src),
                input,
                proptest::bool::weighted(0.8),
                delimiter.clone(),
            )
        })
    };
    run("csv", strategy, |(src, input, has_header, delimiter)| {
        let schema = src.schema();
        let input: Vec<u8> = input
            .0
            .into_iter()
            .map(|b| if b == b',' { delimiter } else { b })
            .collect();
        let out = decode_csv(&schema, 1, &input, has_header, delimiter);
        tally(out.num_rows(), out.rejected.len());
        if let Some(b) = &out.batch {
            check_batch(&schema, b)?;
        }
        for r in &out.rejected {
            prop_assert!(!r.reason.is_empty() && r.position.is_some_and(|p| p >= 1));
        }
        let records = count_records(&input, has_header);
        prop_assert_eq!(out.num_rows() + out.rejected.len(), records);
        Ok(())
    });
}

#[test]
fn fuzz_kafka_messages() {
    run("kafka_messages", kafka_case, |case| {
        let schema = kafka_schema(case.on_kafka_time, case.time_format);
        let mut decoder = MessageDecoder::new(
            Arc::clone(&schema),
            case.format,
            None,
            b',',
            case.batch_size,
        )
        .unwrap();
        let out = decoder.decode(&case.messages);
        tally(out.num_rows(), out.rejected.len());
        let partitions: HashMap<i64, i32> = case
            .messages
            .iter()
            .map(|m| (m.offset, m.partition))
            .collect();
        let mut with_rows = BTreeSet::new();
        if let Some(b) = &out.batch {
            check_batch(&schema, b)?;
            let offsets = b.column(1).as_primitive::<Int64Type>();
            let parts = b.column(0).as_primitive::<Int32Type>();
            for (o, p) in offsets.values().iter().zip(parts.values()) {
                prop_assert_eq!(partitions.get(o), Some(p), "row of offset {}", o);
                with_rows.insert(*o);
            }
        }
        let rejected: BTreeSet<i64> = out.rejected.iter().filter_map(|r| r.position).collect();
        prop_assert_eq!(
            rejected.len(),
            out.rejected.len(),
            "a message rejected twice"
        );
        prop_assert!(
            with_rows.is_disjoint(&rejected),
            "a message both decoded and rejected"
        );
        for r in &out.rejected {
            prop_assert!(!r.reason.is_empty());
        }
        if matches!(case.format, MessageFormat::Json | MessageFormat::Csv) {
            let all: BTreeSet<i64> = partitions.keys().copied().collect();
            let seen: BTreeSet<i64> = with_rows.union(&rejected).copied().collect();
            prop_assert_eq!(seen, all, "every message is decoded or rejected");
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// Regressions: the issue's case, and every crash or wrong result the targets found.

fn v2(shape: &str, data: &str) -> Result<DecodedBody, BodyError> {
    let body = format!("{{\"inputs\":[{{\"name\":\"in\",\"shape\":{shape},\"datatype\":\"FP32\",\"data\":{data}}}]}}");
    decode_http_body(
        &schema(0, TimeFormat::Auto),
        &HeaderMap::new(),
        body.as_bytes(),
        &Default::default(),
    )
}

fn invalid(out: Result<DecodedBody, BodyError>) -> String {
    match out {
        Err(BodyError::Invalid(m)) => m,
        other => panic!("expected a 400 (invalid body), got {other:?}"),
    }
}

/// Issue 10: `[2^62, 4]` passed the size check by wrap-around (2^62 × 4 = 0 mod 2^64) and
/// then laid out 2^62 rows. Now an error before anything is allocated (the test is instant).
#[test]
fn v2_shape_product_overflow_is_an_error() {
    let m = invalid(v2("[4611686018427387904, 4]", "[]"));
    assert!(
        m.contains("too large") && m.contains("4611686018427387904"),
        "{m}"
    );
    let m = invalid(v2("[4294967296, 4294967296]", "[]"));
    assert!(m.contains("too large"), "{m}");
    let m = invalid(v2("[9223372036854775807, 4]", "[1, 2, 3, 4]"));
    assert!(m.contains("too large"), "{m}");
}

#[test]
fn v2_negative_and_huge_dimensions_are_errors() {
    for shape in [
        "[-1, 4]",
        "[4, -1]",
        "[2, -2, -2]",
        "[-9223372036854775808, 4]",
    ] {
        let m = invalid(v2(shape, "[1, 2, 3, 4, 5, 6, 7, 8]"));
        assert!(m.contains("negative dimension"), "{shape}: {m}");
    }
    // Fits in usize but no data: a clear count mismatch, not 2^62 rows of nothing.
    let m = invalid(v2("[4611686018427387904, 1, 4]", "[]"));
    assert!(
        m.contains("needs 18446744073709551616") || m.contains("too large"),
        "{m}"
    );
    let m = invalid(v2("[1152921504606846976, 4]", "[]"));
    assert!(m.contains("needs 4611686018427387904 values, got 0"), "{m}");
    // A named tensor with a negative [n] shape.
    let body = br#"{"inputs":[{"name":"sepal_length","shape":[-2],"data":[1,2]},{"name":"petal_width","shape":[2],"data":[1,2]}]}"#;
    let m = invalid(decode_http_body(
        &schema(0, TimeFormat::Auto),
        &HeaderMap::new(),
        body,
        &Default::default(),
    ));
    assert!(m.contains("negative dimension"), "{m}");
    // A source with no payload column: [n, 0] would be n rows without any value.
    let body = br#"{"inputs":[{"name":"t","shape":[4611686018427387904, 0],"data":[]}]}"#;
    let m = invalid(decode_http_body(
        &schema(3, TimeFormat::Auto),
        &HeaderMap::new(),
        body,
        &Default::default(),
    ));
    assert!(m.contains("no value per instance"), "{m}");
    // Valid shapes still decode.
    assert_eq!(
        v2("[2, 4]", "[1,2,3,4,5,6,7,8]").unwrap().batch.num_rows(),
        2
    );
    assert_eq!(v2("[0, 4]", "[]").unwrap().batch.num_rows(), 0);
}

/// Epoch milliseconds beyond the event-time range were taken as they are (JSON lines in
/// `auto` format), and epoch seconds saturated to `i64::MAX`: both now reject the line.
#[test]
fn out_of_range_times_are_rejected() {
    let mut d = JsonLinesDecoder::new(schema(2, TimeFormat::Auto), 16);
    let out = d.decode(
        0,
        1,
        b"{\"ts\":9223372036854775807}\n{\"ts\":1000}\n{\"ts\":-8200000000000001}\n",
    );
    assert_eq!(out.num_rows(), 1);
    let pos: Vec<_> = out.rejected.iter().map(|r| r.position.unwrap()).collect();
    assert_eq!(pos, [1, 3]);
    assert!(
        out.rejected[0].reason.contains("out of range"),
        "{}",
        out.rejected[0].reason
    );
    for format in [TimeFormat::EpochSeconds, TimeFormat::EpochMillis] {
        let out = decode_csv(
            &schema(2, format),
            0,
            b"ts,x\n100000000000000000,1\n5,2\n",
            true,
            b',',
        );
        assert_eq!((out.num_rows(), out.rejected.len()), (1, 1), "{format:?}");
    }
    let body = br#"[{"ts":100000000000000000,"x":1}]"#;
    let s = schema(2, TimeFormat::EpochSeconds);
    let m = invalid(decode_http_body(
        &s,
        &HeaderMap::new(),
        body,
        &Default::default(),
    ));
    assert!(m.contains("out of range"), "{m}");
}

/// A u64 time value above i64::MAX became NULL silently (parquet UInt64 columns).
#[test]
fn u64_time_values_beyond_i64_are_reported() {
    use driftwatch::sources::decode::time::to_event_time;
    let a = arrow::array::UInt64Array::from(vec![u64::MAX, 1000]);
    let (out, bad) = to_event_time(&a, TimeFormat::EpochMillis);
    assert_eq!(out.null_count(), 1);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].row, 0);
    assert!(
        bad[0].reason.contains("18446744073709551615"),
        "{}",
        bad[0].reason
    );
}

#[test]
fn kafka_timestamp_out_of_range_is_rejected() {
    let schema = kafka_schema(true, TimeFormat::Auto);
    let mut d = MessageDecoder::new(schema, MessageFormat::Json, None, b',', 8).unwrap();
    let msg = |offset, timestamp| RawMessage {
        offset,
        timestamp: Some(timestamp),
        payload: Some(b"{\"x\":1}".to_vec()),
        ..Default::default()
    };
    let out = d.decode(&[msg(0, i64::MAX), msg(1, 1_700_000_000_000)]);
    assert_eq!(out.num_rows(), 1);
    assert_eq!(out.rejected.len(), 1);
    assert!(
        out.rejected[0].reason.contains("message timestamp"),
        "{}",
        out.rejected[0].reason
    );
}

/// The seeds are valid for their source (under `auto` times), so unmutated cases reach
/// past the parsers: a seed that stops decoding makes the fuzzing shallow.
#[test]
fn seeds_decode() {
    for kind in 0..4 {
        let s = schema(kind, TimeFormat::Auto);
        for seed in body_seeds(kind) {
            let out = decode_http_body(&s, &HeaderMap::new(), &seed, &Default::default());
            assert!(
                out.is_ok(),
                "kind {kind}: {}: {out:?}",
                String::from_utf8_lossy(&seed)
            );
        }
        for seed in row_seeds(kind) {
            let out = JsonLinesDecoder::new(Arc::clone(&s), 8).decode(0, 1, &seed);
            assert!(out.rejected.is_empty(), "kind {kind}: {:?}", out.rejected);
        }
        for seed in csv_seeds(kind) {
            let out = decode_csv(&s, 0, &seed, true, b',');
            assert!(out.rejected.is_empty(), "kind {kind}: {:?}", out.rejected);
        }
    }
}

/// Found by `json_rows`: a JSON value spread over two lines (or a string holding a raw
/// newline) was accepted as one row when the rest of its chunk was good, and its lines
/// rejected one by one otherwise; rows and rejections did not add up to the lines. Now the
/// lines are always rejected, whatever the chunk holds.
#[test]
fn json_value_spanning_lines_is_rejected_whatever_the_chunk() {
    let s = schema(2, TimeFormat::Auto);
    let cases: [(&[u8], usize, &[i64]); 3] = [
        (b"{\"ts\"\n:1500,\"x\":1}", 0, &[1, 2]),
        (b"{\"ts\":5,\"x\":1}\n{\"ts\"\n:1500,\"x\":1}\n", 1, &[2, 3]),
        (
            b"{\"ts\":1,\"request_id\":\"a\nb\"}\n{\"ts\":2}",
            1,
            &[1, 2],
        ),
    ];
    for (input, rows, bad) in cases {
        let out = JsonLinesDecoder::new(Arc::clone(&s), 8).decode(0, 1, input);
        let positions: Vec<i64> = out.rejected.iter().filter_map(|r| r.position).collect();
        let text = String::from_utf8_lossy(input);
        assert_eq!(
            (out.num_rows(), positions.as_slice()),
            (rows, bad),
            "{text}"
        );
    }
}

/// The stricter line decoder must not cost Kafka `json` messages that hold several values
/// (NDJSON) or one value over several lines: each is decoded on its own.
#[test]
fn kafka_json_messages_of_several_lines_still_decode() {
    let schema = kafka_schema(true, TimeFormat::Auto);
    let mut d = MessageDecoder::new(schema, MessageFormat::Json, None, b',', 8).unwrap();
    let msg = |offset, payload: &str| RawMessage {
        offset,
        timestamp: Some(1_700_000_000_000),
        payload: Some(payload.as_bytes().to_vec()),
        ..Default::default()
    };
    let messages = [
        msg(0, "{\"sepal_length\":1}\n{\"sepal_length\":2}"),
        msg(1, "{\"sepal_length\":3}"),
        msg(2, "{\n  \"sepal_length\": 4\n}\n"),
        msg(3, "{\"sepal_length\":"),
    ];
    let out = d.decode(&messages);
    let batch = out.batch.expect("rows");
    let offsets = batch
        .column(1)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(offsets, [0, 0, 1, 2]);
    let rejected: Vec<_> = out.rejected.iter().map(|r| r.position).collect();
    assert_eq!(rejected, [Some(3)]);
}

/// Found by `csv` (release, 2 workers): in the record `\xc3,\xa9` the delimiter splits a
/// two-byte character. arrow-csv checks UTF-8 over the fields joined (`\xc3\xa9` is "é")
/// and then hands out each field as a `&str` that is not UTF-8: undefined behaviour, seen
/// as a panic inside `<str as Debug>::fmt` while formatting the bad time value. Records
/// that are not UTF-8 are now rejected before arrow-csv sees them.
#[test]
fn csv_record_splitting_a_character_is_rejected() {
    let s = schema(3, TimeFormat::Auto);
    let out = decode_csv(&s, 0, b"\xc3,\xa9\nr,1700000000000\n", false, b',');
    assert_eq!(out.num_rows(), 1);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].position, Some(1));
    assert!(
        out.rejected[0].reason.contains("invalid UTF-8"),
        "{}",
        out.rejected[0].reason
    );
    // A non-ASCII delimiter byte could split a character of valid UTF-8 text.
    let out = decode_csv(&s, 0, "é,1\n".as_bytes(), false, 0xa9);
    assert_eq!((out.num_rows(), out.rejected.len()), (0, 1));
    assert!(
        out.rejected[0].reason.contains("not an ASCII"),
        "{}",
        out.rejected[0].reason
    );
}
