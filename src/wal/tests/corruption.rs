//! Damage to segments other than the last, and records that are valid but out of sequence:
//! these are real corruption, reported by replay (or by open), never repaired silently.

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    expected, opts, read_all, replay, segment_files, write_log, WalEntry, WalError, WalRecord,
    WalWriter,
};

/// A log in segments of one record each, and a damaged copy of segment 1 (of 6 or more).
fn damage_second_segment(damage: impl FnOnce(&Path)) -> (tempfile::TempDir, Vec<WalEntry>) {
    let dir = tempfile::tempdir().unwrap();
    let entries = write_log(dir.path(), 8, 1);
    assert_eq!(segment_files(dir.path()).len(), 8);
    damage(&segment_files(dir.path())[1].1);
    (dir, entries)
}

fn corrupt_error(dir: &Path, from: u64) -> (Vec<WalRecord>, PathBuf, u64, String) {
    let mut records = Vec::new();
    for item in replay(dir, from).unwrap() {
        match item {
            Ok(record) => records.push(record),
            Err(WalError::Corrupt {
                path,
                offset,
                reason,
            }) => return (records, path, offset, reason),
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    panic!("replay from {from} found no corruption");
}

#[test]
fn flipped_byte_in_a_non_last_segment_is_an_error() {
    let (dir, entries) = damage_second_segment(|_| {});
    let victim = segment_files(dir.path())[1].1.clone();
    let pristine = fs::read(&victim).unwrap();
    // Every byte of the segment's one record: its length, its CRC and its payload.
    for i in 8..pristine.len() {
        let mut damaged = pristine.clone();
        damaged[i] ^= 0x55;
        fs::write(&victim, &damaged).unwrap();
        let (records, bad_path, offset, reason) = corrupt_error(dir.path(), 0);
        assert_eq!(records, expected(&entries[..1], 0), "byte {i}: {reason}");
        assert_eq!((&bad_path, offset), (&victim, 8), "byte {i}: {reason}");
        let error = replay(dir.path(), 1).unwrap().last().unwrap().unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&*victim.to_string_lossy()), "{message}");
        // Not repaired by the writer, and skipped cleanly when the replay starts after it.
        let wal = WalWriter::open(dir.path(), opts(1)).unwrap();
        assert_eq!(wal.next_lsn(), 8);
        assert_eq!(fs::read(&victim).unwrap(), damaged);
        assert_eq!(read_all(dir.path(), 2), expected(&entries, 2));
    }
    fs::write(&victim, &pristine).unwrap();
    assert_eq!(read_all(dir.path(), 0), expected(&entries, 0));
}

#[test]
fn other_damage_to_non_last_segments_is_an_error() {
    // Torn (cut short) like a crash tail, but not in the last segment.
    let (dir, _) = damage_second_segment(|p| {
        let bytes = fs::read(p).unwrap();
        fs::write(p, &bytes[..bytes.len() - 3]).unwrap();
    });
    let (records, _, offset, reason) = corrupt_error(dir.path(), 0);
    assert_eq!((records.len(), offset), (1, 8), "{reason}");
    // A bad magic.
    let (dir, _) = damage_second_segment(|p| {
        let mut bytes = fs::read(p).unwrap();
        bytes[..8].copy_from_slice(b"NOTAWAL!");
        fs::write(p, bytes).unwrap();
    });
    let (_, _, offset, reason) = corrupt_error(dir.path(), 0);
    assert_eq!(offset, 0, "{reason}");
    // A missing segment leaves a gap in the LSNs.
    let (dir, _) = damage_second_segment(|p| fs::remove_file(p).unwrap());
    let (records, path, _, reason) = corrupt_error(dir.path(), 0);
    assert_eq!(records.len(), 1);
    assert!(reason.contains("lsn"), "{reason}");
    assert_eq!(path, segment_files(dir.path())[1].1);
    // A record stored twice has a valid CRC but a repeated LSN.
    let (dir, _) = damage_second_segment(|p| {
        let mut bytes = fs::read(p).unwrap();
        let record = bytes[8..].to_vec();
        bytes.extend(record);
        fs::write(p, bytes).unwrap();
    });
    let (records, _, _, reason) = corrupt_error(dir.path(), 0);
    assert_eq!(records.len(), 2);
    assert!(reason.contains("expected lsn 2, found 1"), "{reason}");
}

#[test]
fn repeated_record_in_the_last_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, 1);
    let (_, last) = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let record = bytes[8..].to_vec();
    bytes.extend(record);
    fs::write(&last, &bytes).unwrap();
    match WalWriter::open(dir.path(), opts(1)) {
        Err(WalError::Corrupt { path, .. }) => assert_eq!(path, last),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        fs::read(&last).unwrap(),
        bytes,
        "a valid record must not be cut off"
    );
}
