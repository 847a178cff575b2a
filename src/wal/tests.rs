//! Tests of the WAL through its public API (plus direct damage to the files on disk).

mod corruption;
mod prop;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{replay, WalEntry, WalError, WalOptions, WalRecord, WalSync, WalWriter};

fn opts(segment_bytes: u64) -> WalOptions {
    WalOptions { segment_bytes }
}

/// A batch of `rows` rows in one of three schemas: numbers with nulls; strings with nulls and
/// booleans; timestamps with a time zone, a dictionary column and schema/field metadata.
fn batch(kind: u8, rows: usize, seed: u64) -> RecordBatch {
    let n = |i: usize| seed.wrapping_mul(31).wrapping_add(i as u64);
    let columns: Vec<(Field, ArrayRef)> = match kind % 3 {
        0 => vec![
            (
                Field::new("id", DataType::Int64, false),
                Arc::new(Int64Array::from_iter_values((0..rows).map(|i| n(i) as i64))),
            ),
            (
                Field::new("score", DataType::Float64, true),
                Arc::new(Float64Array::from_iter(
                    (0..rows).map(|i| (n(i) % 3 != 0).then(|| n(i) as f64 / 7.0)),
                )),
            ),
        ],
        1 => vec![
            (
                Field::new("model", DataType::Utf8, true),
                Arc::new(StringArray::from_iter((0..rows).map(|i| {
                    (n(i) % 4 != 1).then(|| format!("model-{}-é", n(i) % 5))
                }))),
            ),
            (
                Field::new("ok", DataType::Boolean, true),
                Arc::new(BooleanArray::from_iter(
                    (0..rows).map(|i| (n(i) % 5 != 0).then_some(n(i) % 2 == 0)),
                )),
            ),
        ],
        _ => vec![
            (
                Field::new(
                    "ts",
                    DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
                    true,
                )
                .with_metadata([("unit".to_string(), "ms".to_string())].into()),
                Arc::new(
                    TimestampMillisecondArray::from_iter(
                        (0..rows).map(|i| (n(i) % 6 != 2).then(|| 1_700_000_000_000 + n(i) as i64)),
                    )
                    .with_timezone("+00:00"),
                ),
            ),
            (
                Field::new(
                    "label",
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    true,
                ),
                Arc::new(DictionaryArray::<Int32Type>::from_iter((0..rows).map(
                    |i| (n(i) % 3 != 0).then(|| ["cat", "dog", "bird"][n(i) as usize % 3]),
                ))),
            ),
        ],
    };
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    let schema = Schema::new_with_metadata(
        fields,
        [("source".to_string(), format!("schema-{}", kind % 3))].into(),
    );
    RecordBatch::try_new(Arc::new(schema), arrays).unwrap()
}

/// `n` entries: mostly batches of the three schemas (0 to 6 rows), every fourth one rejected.
fn mixed_entries(n: usize) -> Vec<WalEntry> {
    (0..n)
        .map(|i| {
            if i % 4 == 3 {
                WalEntry::Rejected {
                    arrival_ms: 1_000 + i as i64,
                    raw: vec![b'{'; i % 9],
                    reason: format!("bad JSON at byte {i} ✗"),
                }
            } else {
                WalEntry::Batch {
                    arrival_ms: -(i as i64),
                    batch: batch(i as u8, i % 7, i as u64),
                }
            }
        })
        .collect()
}

/// What a replay from `from` must return after `entries` were appended to an empty log.
fn expected(entries: &[WalEntry], from: u64) -> Vec<WalRecord> {
    (0u64..)
        .zip(entries)
        .skip(from as usize)
        .map(|(lsn, entry)| WalRecord {
            lsn,
            entry: entry.clone(),
        })
        .collect()
}

fn read_all(dir: &Path, from: u64) -> Vec<WalRecord> {
    replay(dir, from)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Segment files in `dir`, oldest first, with the first LSN their name gives.
fn segment_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let digits = name.strip_prefix("seg-")?.strip_suffix(".wal")?;
            assert_eq!(digits.len(), 20, "{name}");
            Some((digits.parse().unwrap(), path))
        })
        .collect();
    files.sort();
    files
}

fn file_bytes_total(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|(_, p)| fs::metadata(p).unwrap().len())
        .sum()
}

/// A log of `n` mixed entries, one per group, in segments of `segment_bytes`.
fn write_log(dir: &Path, n: usize, segment_bytes: u64) -> Vec<WalEntry> {
    let entries = mixed_entries(n);
    let mut wal = WalWriter::open(dir, opts(segment_bytes)).unwrap();
    for entry in &entries {
        wal.append(std::slice::from_ref(entry), WalSync::Never)
            .unwrap();
    }
    wal.sync().unwrap();
    entries
}

#[test]
fn round_trip_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let entries = mixed_entries(60);
    let mut wal = WalWriter::open(dir.path(), opts(700)).unwrap();
    assert_eq!(wal.next_lsn(), 0);
    let (mut at, mut group_starts) = (0, vec![]);
    for (i, size) in [1, 3, 2, 5, 1, 4].into_iter().cycle().enumerate() {
        if at == entries.len() {
            break;
        }
        let group = &entries[at..(at + size).min(entries.len())];
        let sync = if i % 2 == 0 {
            WalSync::Always
        } else {
            WalSync::Never
        };
        let range = wal.append(group, sync).unwrap();
        assert_eq!(range, at as u64..(at + group.len()) as u64);
        group_starts.push(at as u64);
        at += group.len();
        assert_eq!(wal.next_lsn(), at as u64);
    }
    assert_eq!(wal.disk_bytes(), file_bytes_total(dir.path()));
    let files = segment_files(dir.path());
    assert!(files.len() >= 4, "only {} segments", files.len());
    for (i, (first, path)) in files.iter().enumerate() {
        assert!(group_starts.contains(first), "a group spans into {path:?}");
        if i + 1 < files.len() {
            assert!(
                fs::metadata(path).unwrap().len() >= 700,
                "{path:?} rotated early"
            );
        }
    }
    assert_eq!(read_all(dir.path(), 0), expected(&entries, 0));
    drop(wal);
    assert_eq!(read_all(dir.path(), 0), expected(&entries, 0));
}

#[test]
fn lsns_stay_dense_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/wal");
    let mut all = Vec::new();
    for round in 0..6u64 {
        let mut wal = WalWriter::open(&path, opts(300)).unwrap();
        assert_eq!(wal.next_lsn(), all.len() as u64);
        let bytes = wal.disk_bytes();
        assert_eq!(
            wal.append(&[], WalSync::Always).unwrap(),
            wal.next_lsn()..wal.next_lsn()
        );
        assert_eq!(wal.disk_bytes(), bytes);
        let group = mixed_entries(round as usize + 2).split_off(round as usize);
        let first = all.len() as u64;
        assert_eq!(
            wal.append(&group, WalSync::Never).unwrap(),
            first..first + 2
        );
        all.extend(group);
        if round % 2 == 0 {
            wal.sync().unwrap();
        }
    }
    assert!(segment_files(&path).len() > 2);
    assert_eq!(read_all(&path, 0), expected(&all, 0));
}

#[test]
fn replay_from_every_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let entries = write_log(dir.path(), 30, 500);
    assert!(segment_files(dir.path()).len() >= 3);
    for from in 0..entries.len() as u64 + 3 {
        assert_eq!(
            read_all(dir.path(), from),
            expected(&entries, from),
            "from {from}"
        );
    }
    assert!(read_all(&dir.path().join("missing"), 5).is_empty());
}

/// Cuts the last segment at every offset inside its last record, and flips every byte of that
/// record: each time `open` must drop exactly that record and appends must go on from there.
fn check_torn_tail(segment_bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let entries = write_log(dir.path(), 6, segment_bytes);
    let (_, before_path) = segment_files(dir.path()).pop().unwrap();
    let before_len = fs::metadata(&before_path).unwrap().len();
    let last = WalEntry::Batch {
        arrival_ms: 77,
        batch: batch(2, 5, 9),
    };
    let mut wal = WalWriter::open(dir.path(), opts(segment_bytes)).unwrap();
    wal.append(std::slice::from_ref(&last), WalSync::Always)
        .unwrap();
    drop(wal);
    let (_, last_path) = segment_files(dir.path()).pop().unwrap();
    let full = fs::read(&last_path).unwrap();
    let fresh_segment = last_path != before_path;
    let record_start = if fresh_segment {
        8
    } else {
        before_len as usize
    };
    let mut with_last = entries.clone();
    with_last.push(last.clone());
    let n = entries.len() as u64;

    let cuts =
        (if fresh_segment { 0 } else { record_start }..full.len()).map(|cut| full[..cut].to_vec());
    let flips = (record_start..full.len()).map(|i| {
        let mut bytes = full.clone();
        bytes[i] ^= 0xFF;
        bytes
    });
    for damaged in cuts.chain(flips) {
        fs::write(&last_path, &damaged).unwrap();
        assert_eq!(read_all(dir.path(), 0), expected(&entries, 0));
        let mut wal = WalWriter::open(dir.path(), opts(segment_bytes)).unwrap();
        assert_eq!(wal.next_lsn(), n, "damaged length {}", damaged.len());
        assert_eq!(fs::metadata(&last_path).unwrap().len(), record_start as u64);
        assert_eq!(wal.disk_bytes(), file_bytes_total(dir.path()));
        assert_eq!(read_all(dir.path(), 0), expected(&entries, 0));
        let range = wal
            .append(std::slice::from_ref(&last), WalSync::Never)
            .unwrap();
        assert_eq!(range, n..n + 1);
        assert_eq!(read_all(dir.path(), 0), expected(&with_last, 0));
        assert_eq!(fs::read(&last_path).unwrap(), full);
    }
}

#[test]
fn torn_tail_after_other_records_in_the_segment() {
    check_torn_tail(1 << 20);
}

#[test]
fn torn_tail_alone_in_a_fresh_segment() {
    check_torn_tail(1);
}

#[test]
fn truncate_before_deletes_only_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let entries = mixed_entries(40);
    let mut wal = WalWriter::open(dir.path(), opts(300)).unwrap();
    for group in entries.chunks(2) {
        wal.append(group, WalSync::Never).unwrap();
    }
    let files = segment_files(dir.path());
    let firsts: Vec<u64> = files.iter().map(|(first, _)| *first).collect();
    assert!(firsts.len() >= 6, "{firsts:?}");
    assert!(firsts.windows(2).all(|w| w[1] >= w[0] + 2), "{firsts:?}");

    assert_eq!(wal.truncate_before(0).unwrap(), 0);
    assert_eq!(wal.truncate_before(firsts[1] - 1).unwrap(), 0);
    assert_eq!(wal.truncate_before(firsts[1]).unwrap(), 1);
    assert_eq!(segment_files(dir.path()), files[1..]);
    // Segment 3 still holds lsn firsts[3], which is below firsts[3] + 1.
    assert_eq!(wal.truncate_before(firsts[3] + 1).unwrap(), 2);
    assert_eq!(segment_files(dir.path()), files[3..]);
    assert_eq!(wal.disk_bytes(), file_bytes_total(dir.path()));
    match replay(dir.path(), firsts[3] - 1) {
        Err(WalError::Truncated {
            requested,
            first_available,
        }) => assert_eq!((requested, first_available), (firsts[3] - 1, firsts[3])),
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert_eq!(
        read_all(dir.path(), firsts[3]),
        expected(&entries, firsts[3])
    );

    // Never the segment being written to.
    let last_first = *firsts.last().unwrap();
    assert_eq!(wal.truncate_before(u64::MAX).unwrap(), files.len() - 4);
    assert_eq!(segment_files(dir.path()), files[files.len() - 1..]);
    assert_eq!(wal.truncate_before(u64::MAX).unwrap(), 0);
    let more = mixed_entries(3);
    assert_eq!(wal.append(&more, WalSync::Always).unwrap(), 40..43);
    assert_eq!(wal.disk_bytes(), file_bytes_total(dir.path()));
    drop(wal);
    let wal = WalWriter::open(dir.path(), opts(300)).unwrap();
    assert_eq!(wal.next_lsn(), 43);
    let mut all = entries.clone();
    all.extend(more);
    assert_eq!(read_all(dir.path(), last_first), expected(&all, last_first));
    assert!(matches!(
        replay(dir.path(), 0),
        Err(WalError::Truncated { requested: 0, first_available }) if first_available == last_first
    ));
}
