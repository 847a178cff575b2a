//! Tests of the repartition-topic records.

use std::sync::Arc;

use arrow::array::{
    BooleanArray, DictionaryArray, Float64Array, Int64Array, LargeStringArray, ListArray,
    StringArray, StringViewArray, TimestampMillisecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{Float64Type, Int32Type};

use arrow::array::ArrayRef;

use super::chunks::row_sizes;
use super::*;

fn state_batch(rows: usize) -> RecordBatch {
    let pane =
        TimestampMillisecondArray::from_iter_values((0..rows).map(|i| 60_000 * (i as i64 / 3)));
    let key =
        StringArray::from_iter((0..rows).map(|i| (i % 5 != 4).then(|| "k".repeat(i % 7 + 1))));
    let dict: DictionaryArray<Int32Type> = (0..rows).map(|i| ["x", "yy", "zzz"][i % 3]).collect();
    let sum = Float64Array::from_iter((0..rows).map(|i| (i % 4 != 0).then_some(i as f64 * 0.5)));
    let flag = BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0)));
    let list = ListArray::from_iter_primitive::<Float64Type, _, _>((0..rows).map(|i| {
        (i % 6 != 5).then(|| {
            (0..i % 4)
                .map(|j| (j % 3 != 2).then_some(j as f64))
                .collect::<Vec<_>>()
        })
    }));
    RecordBatch::try_from_iter([
        ("_pane_start", Arc::new(pane) as ArrayRef),
        ("_key0", Arc::new(key) as ArrayRef),
        ("_key1", Arc::new(dict) as ArrayRef),
        ("_s0_0", Arc::new(sum) as ArrayRef),
        ("_s1_0", Arc::new(flag) as ArrayRef),
        ("_s2_0", Arc::new(list) as ArrayRef),
    ])
    .unwrap()
}

fn pane(batch: RecordBatch) -> PartialPane {
    PartialPane {
        monitor: "drift_by_model".into(),
        plan_fingerprint: 0x0123_4567_89ab_cdef,
        source_partition: 5,
        pane_start: 1_764_000_000_000,
        chunk_index: 1,
        chunk_count: 3,
        batch,
    }
}

fn mark() -> WatermarkMark {
    WatermarkMark {
        monitor: "drift_by_model".into(),
        plan_fingerprint: 7,
        source_partition: 2,
        watermark: i64::MIN,
        idle: true,
        source_offset: 123_456,
    }
}

/// Recomputes the CRC after a test edited a field.
fn reseal(bytes: Vec<u8>) -> Vec<u8> {
    seal(bytes)
}

#[test]
fn partial_round_trip() {
    let p = pane(state_batch(40));
    let bytes = encode_partial(&p).unwrap();
    assert_eq!(decode(&bytes).unwrap(), ShuffleRecord::Partial(p.clone()));
    // A sliced chunk round-trips to the same rows.
    let sliced = PartialPane {
        batch: p.batch.slice(7, 11),
        ..p
    };
    assert_eq!(
        decode(&encode_partial(&sliced).unwrap()).unwrap(),
        ShuffleRecord::Partial(sliced)
    );
}

#[test]
fn watermark_round_trip() {
    for m in [
        mark(),
        WatermarkMark {
            watermark: 1_764_000_123_456,
            idle: false,
            source_offset: 0,
            ..mark()
        },
    ] {
        assert_eq!(
            decode(&encode_watermark(&m).unwrap()).unwrap(),
            ShuffleRecord::Watermark(m)
        );
    }
}

#[test]
fn truncated_and_garbled_input_is_an_error() {
    let records = [
        encode_partial(&pane(state_batch(6))).unwrap(),
        encode_watermark(&mark()).unwrap(),
    ];
    for bytes in &records {
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        for at in 0..bytes.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut garbled = bytes.clone();
                garbled[at] ^= mask;
                assert!(decode(&garbled).is_err(), "byte {at} ^ {mask:#x}");
            }
        }
    }
}

#[test]
fn garbled_ipc_stream_never_panics() {
    // Bypasses the CRC: the IPC checks alone must survive any corruption.
    let mut body = Vec::new();
    write_ipc_stream(&mut body, &state_batch(5)).unwrap();
    assert!(read_ipc_stream(&body).is_ok());
    for len in 0..body.len() {
        assert!(read_ipc_stream(&body[..len]).is_err(), "truncated to {len}");
    }
    for at in 0..body.len() {
        for mask in [0x01, 0x10, 0x80, 0xff] {
            let mut garbled = body.clone();
            garbled[at] ^= mask;
            let _ = read_ipc_stream(&garbled);
        }
    }
}

#[test]
fn ipc_stream_must_hold_one_batch() {
    let batch = state_batch(3);
    let mut two = Vec::new();
    let mut w = StreamWriter::try_new(&mut two, batch.schema_ref()).unwrap();
    w.write(&batch).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    assert!(matches!(read_ipc_stream(&two), Err(ExchangeError::Ipc(_))));
    let mut none = Vec::new();
    StreamWriter::try_new(&mut none, batch.schema_ref())
        .unwrap()
        .finish()
        .unwrap();
    assert!(matches!(read_ipc_stream(&none), Err(ExchangeError::Ipc(_))));
}

#[test]
fn wrong_magic_version_kind() {
    let bytes = encode_watermark(&mark()).unwrap();
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(matches!(decode(&b), Err(ExchangeError::BadMagic(_))));
    let mut b = bytes.clone();
    b[4..6].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(
        decode(&b),
        Err(ExchangeError::UnsupportedVersion { found: 2 })
    );
    let mut b = bytes.clone();
    b[6] = 9;
    assert_eq!(decode(&b), Err(ExchangeError::UnknownKind(9)));
    let mut b = bytes;
    b[PREFIX_LEN + 2] ^= 1;
    assert!(matches!(decode(&b), Err(ExchangeError::Checksum { .. })));
}

#[test]
fn field_bounds_are_checked() {
    let p = pane(state_batch(2));
    for (index, count) in [(0, 0), (3, 3), (4, 3)] {
        let bad = PartialPane {
            chunk_index: index,
            chunk_count: count,
            ..p.clone()
        };
        assert!(matches!(
            encode_partial(&bad),
            Err(ExchangeError::Invalid { .. })
        ));
    }
    assert!(encode_partial(&PartialPane {
        source_partition: -1,
        ..p.clone()
    })
    .is_err());
    assert!(encode_partial(&PartialPane {
        monitor: "m".repeat(MAX_MONITOR_NAME_BYTES + 1),
        ..p.clone()
    })
    .is_err());
    assert!(encode_watermark(&WatermarkMark {
        source_offset: -1,
        ..mark()
    })
    .is_err());
    // Decoding re-checks what a producer of another build could have written.
    let bytes = encode_partial(&p).unwrap();
    let at = PREFIX_LEN + 2 + p.monitor.len() + 8 + 4 + 8;
    for (index, count, field) in [(3u32, 3u32, "chunk index"), (0, 0, "chunk count")] {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&index.to_le_bytes());
        b[at + 4..at + 8].copy_from_slice(&count.to_le_bytes());
        assert!(
            matches!(decode(&reseal(b)), Err(ExchangeError::Invalid { field: f, .. }) if f == field)
        );
    }
    let mut b = bytes.clone();
    b[PREFIX_LEN..PREFIX_LEN + 2].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        decode(&reseal(b)),
        Err(ExchangeError::Invalid {
            field: "monitor name",
            ..
        })
    ));
    let wm = encode_watermark(&mark()).unwrap();
    let idle_at = wm.len() - 9;
    let mut b = wm.clone();
    b[idle_at] = 2;
    assert!(matches!(
        decode(&reseal(b)),
        Err(ExchangeError::Invalid {
            field: "idle flag",
            ..
        })
    ));
}

#[test]
fn origin_is_checked() {
    let r = decode(&encode_watermark(&mark()).unwrap()).unwrap();
    assert!(r.check_origin("drift_by_model", 7).is_ok());
    assert!(matches!(
        r.check_origin("drift_by_model", 8),
        Err(ExchangeError::WrongOrigin { .. })
    ));
    assert!(r.check_origin("other", 7).is_err());
}

#[test]
fn chunks_are_bounded_complete_and_deterministic() {
    let batch = state_batch(200);
    let sizes = |b: &RecordBatch| {
        let mut s = vec![0usize; b.num_rows()];
        for c in b.columns() {
            s.iter_mut()
                .zip(row_sizes(c.as_ref()))
                .for_each(|(s, c)| *s += c);
        }
        s
    };
    for max in [0, 1, 50, 400, 4_000, usize::MAX] {
        let chunks = split_into_chunks(&batch, max);
        assert!(chunks.iter().all(|c| c.num_rows() > 0));
        for c in &chunks {
            assert!(c.num_rows() == 1 || sizes(c).iter().sum::<usize>() <= max);
        }
        let joined = concat_batches(batch.schema_ref(), &chunks).unwrap();
        assert_eq!(joined, batch);
        // The same content laid out differently (a slice of a larger batch, and a
        // concatenation of pieces) splits the same way.
        let wider = state_batch(260).slice(0, 200);
        let pieces = concat_batches(
            batch.schema_ref(),
            &[batch.slice(0, 90), batch.slice(90, 110)],
        )
        .unwrap();
        let shape = |cs: Vec<RecordBatch>| cs.iter().map(|c| c.num_rows()).collect::<Vec<_>>();
        let expected = shape(chunks);
        assert_eq!(shape(split_into_chunks(&wider, max)), expected);
        assert_eq!(shape(split_into_chunks(&pieces, max)), expected);
    }
    assert_eq!(split_into_chunks(&batch, 0).len(), 200);
    assert_eq!(split_into_chunks(&batch, usize::MAX).len(), 1);
    assert!(split_into_chunks(&batch.slice(0, 0), 100).is_empty());
}

fn keys() -> Vec<ArrayRef> {
    let models = ["iris", "churn", "fraud", "iris", "ranker", "churn"];
    vec![
        Arc::new(StringArray::from_iter(
            models
                .iter()
                .enumerate()
                .map(|(i, m)| (i != 5).then_some(*m)),
        )),
        Arc::new(Int64Array::from(vec![1, 2, 3, 1, -7, i64::MAX])),
    ]
}

#[test]
fn partition_rows_is_stable() {
    // Pinned once from this implementation: it must never change, or groups of a
    // running cluster would move between repartition partitions on an upgrade.
    assert_eq!(
        partition_rows(&keys(), 6, 8).unwrap(),
        vec![0, 4, 1, 0, 7, 7]
    );
    assert_eq!(
        partition_rows(&keys(), 6, 8).unwrap()[0],
        partition_rows(&keys(), 6, 8).unwrap()[3]
    );
}

#[test]
fn partition_rows_ignores_physical_encoding() {
    let words: Vec<Option<&str>> = vec![Some("a"), None, Some("a much longer value"), Some("")];
    let expected = partition_rows(
        &[Arc::new(StringArray::from(words.clone())) as ArrayRef],
        4,
        13,
    )
    .unwrap();
    let dict: DictionaryArray<Int32Type> = words.iter().copied().collect();
    for column in [
        Arc::new(LargeStringArray::from(words.clone())) as ArrayRef,
        Arc::new(StringViewArray::from(words.clone())) as ArrayRef,
        Arc::new(dict) as ArrayRef,
        Arc::new(StringArray::from([vec![Some("pad")], words.clone()].concat()).slice(1, 4))
            as ArrayRef,
    ] {
        assert_eq!(partition_rows(&[column], 4, 13).unwrap(), expected);
    }
}

#[test]
fn partition_rows_bounds_and_spread() {
    let many: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1_000));
    let parts = partition_rows(&[many], 1_000, 8).unwrap();
    let mut counts = [0; 8];
    parts.iter().for_each(|p| counts[*p as usize] += 1);
    assert!(counts.iter().all(|c| (80..170).contains(c)), "{counts:?}");
    let none = partition_rows(&[], 3, 8).unwrap();
    assert!(none.iter().all(|p| *p == none[0]));
    assert!(partition_rows(&keys(), 6, 0).is_err());
    assert!(partition_rows(&keys(), 5, 8).is_err());
    let list: ArrayRef = state_batch(6).column(5).clone();
    assert!(matches!(
        partition_rows(&[list], 6, 8),
        Err(ExchangeError::UnsupportedKeyType(_))
    ));
}

#[test]
fn record_keys_are_deterministic_and_distinct() {
    assert_eq!(record_key("m", 1, 2, 3), record_key("m", 1, 2, 3));
    let all = [
        record_key("m", 1, 2, 3),
        record_key("m", 1, 2, 4),
        record_key("m", 1, 3, 3),
        record_key("m", 2, 2, 3),
        record_key("mm", 1, 2, 3),
        watermark_key("m", 1),
        watermark_key("m", 2),
    ];
    for (i, a) in all.iter().enumerate() {
        assert!(all[i + 1..].iter().all(|b| a != b));
    }
}
