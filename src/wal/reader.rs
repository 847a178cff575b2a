//! The replaying side of the log.

use std::iter::FusedIterator;
use std::path::Path;

use super::record::{decode_payload, payload_lsn};
use super::segment::{list_segments, SegmentMeta, SegmentReader, Step};
use super::{WalError, WalRecord};

/// A buffer that grew past this for one record is dropped afterwards instead of kept.
const MAX_RETAINED_BUFFER: usize = 16 << 20;

/// Reads the records with `lsn >= from`, in LSN order, across segments.
///
/// A torn or CRC-failing record in the last segment ends the iteration cleanly (that is a crash
/// tail, which [`WalWriter::open`](super::WalWriter::open) will cut off); anywhere else it is an
/// `Err(`[`WalError::Corrupt`]`)` naming the file and offset, and so is a gap or repeat in the
/// LSNs. The iterator ends after its first error. Records before `from` are skipped cheaply
/// (read the length, seek past the payload, no CRC check and no decoding); segments that end
/// before `from` are not opened at all.
///
/// If `from` is older than the first retained segment (it was deleted by
/// [`WalWriter::truncate_before`](super::WalWriter::truncate_before)) this returns
/// `Err(`[`WalError::Truncated`]`)`. A missing directory is an empty log; a `from` past the end
/// of the log yields nothing.
///
/// The set of segments is fixed when this is called, and each segment is read up to the length
/// it had when the iterator reached it.
pub fn replay(dir: &Path, from: u64) -> Result<WalReplay, WalError> {
    let segments = list_segments(dir)?;
    if let Some(first) = segments.first() {
        if from < first.first_lsn {
            return Err(WalError::Truncated {
                requested: from,
                first_available: first.first_lsn,
            });
        }
    }
    // Start in the last segment that begins at or before `from`.
    let next_segment = segments
        .partition_point(|s| s.first_lsn <= from)
        .saturating_sub(1);
    Ok(WalReplay {
        segments,
        next_segment,
        current: None,
        expected_lsn: 0,
        from,
        payload: Vec::new(),
        done: false,
    })
}

/// Iterator returned by [`replay`]: yields `Ok(record)` in LSN order, and at most one `Err`,
/// after which it is exhausted.
#[derive(Debug)]
pub struct WalReplay {
    segments: Vec<SegmentMeta>,
    /// Index of the segment after `current` (or of the next one to open).
    next_segment: usize,
    current: Option<SegmentReader>,
    /// LSN of the next record in `current`.
    expected_lsn: u64,
    from: u64,
    /// Payload buffer, reused across records.
    payload: Vec<u8>,
    done: bool,
}

impl WalReplay {
    fn advance(&mut self) -> Result<Option<WalRecord>, WalError> {
        loop {
            let reader = match &mut self.current {
                Some(reader) => reader,
                None => {
                    let Some(segment) = self.segments.get(self.next_segment) else {
                        return Ok(None);
                    };
                    self.expected_lsn = segment.first_lsn;
                    self.next_segment += 1;
                    self.current.insert(SegmentReader::open(&segment.path)?)
                }
            };
            let is_last = self.next_segment == self.segments.len();
            let (offset, len, crc) = match reader.next_header()? {
                Step::Record { offset, len, crc } => (offset, len, crc),
                Step::End => {
                    if let Some(next) = self.segments.get(self.next_segment) {
                        if next.first_lsn != self.expected_lsn {
                            return Err(WalError::Corrupt {
                                path: next.path.clone(),
                                offset: 0,
                                reason: format!(
                                    "segment starts at lsn {} but the previous one ends before lsn {}",
                                    next.first_lsn, self.expected_lsn
                                ),
                            });
                        }
                    }
                    self.current = None;
                    continue;
                }
                Step::Bad { offset, reason } => {
                    return bad_record(reader, is_last, offset, reason);
                }
            };
            if self.expected_lsn < self.from {
                reader.skip_payload(len)?;
                self.expected_lsn += 1;
                continue;
            }
            if !reader.read_payload(len, crc, &mut self.payload)? {
                return bad_record(reader, is_last, offset, "payload CRC mismatch".to_string());
            }
            let corrupt = |reason| WalError::Corrupt {
                path: reader.path().to_path_buf(),
                offset,
                reason,
            };
            let lsn = payload_lsn(&self.payload);
            if lsn != self.expected_lsn {
                return Err(corrupt(format!(
                    "expected lsn {}, found {lsn}",
                    self.expected_lsn
                )));
            }
            let (lsn, entry) = decode_payload(&self.payload).map_err(corrupt)?;
            self.expected_lsn += 1;
            if self.payload.capacity() > MAX_RETAINED_BUFFER {
                self.payload = Vec::new();
            }
            return Ok(Some(WalRecord { lsn, entry }));
        }
    }
}

/// A record that is not valid: the clean end of a crash tail in the last segment, corruption
/// anywhere else.
fn bad_record(
    reader: &SegmentReader,
    is_last: bool,
    offset: u64,
    reason: String,
) -> Result<Option<WalRecord>, WalError> {
    if is_last {
        tracing::debug!(
            path = %reader.path().display(),
            offset,
            %reason,
            "WAL replay stops at the torn tail of the last segment"
        );
        Ok(None)
    } else {
        Err(WalError::Corrupt {
            path: reader.path().to_path_buf(),
            offset,
            reason,
        })
    }
}

impl Iterator for WalReplay {
    type Item = Result<WalRecord, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.advance().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

impl FusedIterator for WalReplay {}
