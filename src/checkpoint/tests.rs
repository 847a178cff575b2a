use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::*;
use crate::sources::watermark::WatermarkState;
use crate::sources::SourcePosition;

fn state_batch(rows: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("_pane_start", DataType::Int64, false),
        Field::new("_key0", DataType::Utf8, true),
        Field::new("_s0_0", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows)),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("k{i}")),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| i as f64 / 3.0),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn checkpoint(id: u64) -> Checkpoint {
    let mut positions = BTreeMap::new();
    positions.insert(0, SourcePosition::Kafka { next_offset: 41 });
    positions.insert(
        1,
        SourcePosition::File {
            file: "a.jsonl".into(),
            offset: 1024,
            line: 17,
            done: false,
        },
    );
    let mut sources = BTreeMap::new();
    sources.insert(
        "iris".to_string(),
        SourceEntry {
            identity: "kafka:iris".into(),
            finished: false,
            positions,
            watermark: WatermarkState {
                current: 9_000,
                max_event_ms: Some(15_000),
                partitions: [(0, Some(15_000)), (1, None)].into_iter().collect(),
            },
        },
    );
    let mut monitors = BTreeMap::new();
    monitors.insert(
        "stats".to_string(),
        MonitorEntry {
            definition: "CREATE MONITOR stats AS …".into(),
            source: "iris".into(),
            watermark: 9_000,
            emitted_until: 5_000,
            has_state: true,
            counters: MonitorCounters {
                windows: 3,
                rows_out: 3,
                late_rows: 1,
                last_window_end: 5_000,
            },
            sinks: [("kafka:out".to_string(), [(0, 12)].into_iter().collect())]
                .into_iter()
                .collect(),
            finished: false,
        },
    );
    Checkpoint {
        manifest: Manifest {
            version: MANIFEST_VERSION,
            id,
            created_ms: 1_767_225_600_000,
            sources,
            monitors,
        },
        states: [("stats".to_string(), state_batch(50))]
            .into_iter()
            .collect(),
    }
}

#[test]
fn round_trip_keeps_manifest_and_state() {
    let c = checkpoint(7);
    let bytes = store::encode(&c).unwrap();
    let back = store::decode(&bytes).unwrap();
    assert_eq!(back.manifest, c.manifest);
    assert_eq!(back.states["stats"], c.states["stats"]);
}

#[test]
fn every_truncation_and_every_flipped_byte_is_detected() {
    let bytes = store::encode(&checkpoint(1)).unwrap();
    for len in 0..bytes.len() {
        assert!(store::decode(&bytes[..len]).is_err(), "truncated to {len}");
    }
    for i in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(store::decode(&bad).is_err(), "byte {i} flipped");
    }
}

#[test]
fn latest_falls_back_over_corrupt_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path());
    for id in 1..=3 {
        store.write(&checkpoint(id)).unwrap();
    }
    assert_eq!(store.latest().unwrap().manifest.id, 3);
    // Truncate the newest: the previous one is used.
    let p3 = store.path(3);
    let len = std::fs::metadata(&p3).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p3)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_eq!(store.latest().unwrap().manifest.id, 2);
    // Corrupt the next one in the middle: the one before is used.
    let p2 = store.path(2);
    let mut bytes = std::fs::read(&p2).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&p2, bytes).unwrap();
    assert_eq!(store.latest().unwrap().manifest.id, 1);
    assert_eq!(store.valid_newest_first().len(), 1);
}

#[test]
fn retain_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path());
    for id in 1..=5 {
        store.write(&checkpoint(id)).unwrap();
    }
    assert_eq!(store.retain(KEEP_CHECKPOINTS).unwrap(), 2);
    assert_eq!(store.ids(), vec![3, 4, 5]);
    store.clear().unwrap();
    assert!(store.ids().is_empty());
    assert!(store.latest().is_none());
}
