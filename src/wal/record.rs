//! Encoding and decoding of one record (see the layout in the module doc).

use std::io::Cursor;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::ipc::MetadataVersion;
use arrow::record_batch::RecordBatch;

use super::{WalEntry, WalError, MAX_PAYLOAD_BYTES};

/// Bytes of the record header: payload length and CRC.
pub(crate) const HEADER_LEN: usize = 8;
/// Bytes of the fixed part of a payload: lsn, arrival_ms, kind.
pub(crate) const PAYLOAD_FIXED_LEN: usize = 17;

const KIND_BATCH: u8 = 0;
const KIND_REJECTED: u8 = 1;

/// Splits a record header into (payload length, CRC).
pub(crate) fn parse_header(header: &[u8; HEADER_LEN]) -> (u32, u32) {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    (len, crc)
}

/// Why a length prefix cannot be a record's, or `None` if it can.
pub(crate) fn check_payload_len(len: u32) -> Option<String> {
    if (len as usize) < PAYLOAD_FIXED_LEN {
        Some(format!(
            "payload length {len} is below the minimum {PAYLOAD_FIXED_LEN}"
        ))
    } else if len > MAX_PAYLOAD_BYTES {
        Some(format!(
            "payload length {len} exceeds the limit {MAX_PAYLOAD_BYTES}"
        ))
    } else {
        None
    }
}

/// The LSN stored in a payload (which must be at least [`PAYLOAD_FIXED_LEN`] bytes).
pub(crate) fn payload_lsn(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload[0..8].try_into().expect("payload has a fixed part"))
}

/// Appends one framed record (header + payload) for `entry` with `lsn` to `buf`. On error `buf`
/// is left as it was.
pub(crate) fn encode_record(buf: &mut Vec<u8>, lsn: u64, entry: &WalEntry) -> Result<(), WalError> {
    let start = buf.len();
    let result = encode_into(buf, start, lsn, entry);
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

fn encode_into(
    buf: &mut Vec<u8>,
    start: usize,
    lsn: u64,
    entry: &WalEntry,
) -> Result<(), WalError> {
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    buf.extend_from_slice(&lsn.to_le_bytes());
    buf.extend_from_slice(&entry.arrival_ms().to_le_bytes());
    match entry {
        WalEntry::Batch { batch, .. } => {
            buf.push(KIND_BATCH);
            write_ipc_stream(buf, batch)?;
        }
        WalEntry::Rejected { raw, reason, .. } => {
            buf.push(KIND_REJECTED);
            let reason_len = u32::try_from(reason.len()).map_err(|_| too_large(reason.len()))?;
            buf.extend_from_slice(&reason_len.to_le_bytes());
            buf.extend_from_slice(reason.as_bytes());
            buf.extend_from_slice(raw);
        }
    }
    let payload_len = buf.len() - start - HEADER_LEN;
    let len = u32::try_from(payload_len)
        .ok()
        .filter(|len| *len <= MAX_PAYLOAD_BYTES)
        .ok_or_else(|| too_large(payload_len))?;
    let crc = crc32fast::hash(&buf[start + HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn too_large(len: usize) -> WalError {
    WalError::TooLarge {
        len: len as u64,
        max: u64::from(MAX_PAYLOAD_BYTES),
    }
}

/// Writes `batch` as an IPC stream (schema, batch, end-of-stream) to the end of `buf`. Buffers
/// are padded to 8 bytes rather than the default 64: it keeps small batches small, and readers
/// accept any alignment.
fn write_ipc_stream(buf: &mut Vec<u8>, batch: &RecordBatch) -> Result<(), WalError> {
    let options = IpcWriteOptions::try_new(8, false, MetadataVersion::V5)?;
    let mut writer = StreamWriter::try_new_with_options(&mut *buf, batch.schema_ref(), options)?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(())
}

/// Decodes a payload whose CRC already matched into (lsn, entry). The error is a reason for
/// [`WalError::Corrupt`].
pub(crate) fn decode_payload(payload: &[u8]) -> Result<(u64, WalEntry), String> {
    if payload.len() < PAYLOAD_FIXED_LEN {
        return Err(format!("payload of {} bytes is too short", payload.len()));
    }
    let lsn = payload_lsn(payload);
    let arrival_ms = i64::from_le_bytes(payload[8..16].try_into().expect("16 bytes checked"));
    let body = &payload[PAYLOAD_FIXED_LEN..];
    let entry = match payload[16] {
        KIND_BATCH => WalEntry::Batch {
            arrival_ms,
            batch: read_ipc_stream(body)?,
        },
        KIND_REJECTED => {
            let (raw, reason) = read_rejected(body)?;
            WalEntry::Rejected {
                arrival_ms,
                raw,
                reason,
            }
        }
        kind => return Err(format!("unknown record kind {kind}")),
    };
    Ok((lsn, entry))
}

fn read_ipc_stream(body: &[u8]) -> Result<RecordBatch, String> {
    let mut reader = StreamReader::try_new(Cursor::new(body), None)
        .map_err(|e| format!("bad Arrow IPC stream: {e}"))?;
    let batch = reader
        .next()
        .ok_or_else(|| "Arrow IPC stream holds no batch".to_string())?
        .map_err(|e| format!("bad Arrow IPC batch: {e}"))?;
    match reader.next() {
        None => Ok(batch),
        Some(Ok(_)) => Err("Arrow IPC stream holds more than one batch".to_string()),
        Some(Err(e)) => Err(format!("bad Arrow IPC stream end: {e}")),
    }
}

fn read_rejected(body: &[u8]) -> Result<(Vec<u8>, String), String> {
    let Some((len, rest)) = body.split_first_chunk::<4>() else {
        return Err("rejected entry has no reason length".to_string());
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > rest.len() {
        return Err(format!(
            "rejected entry's reason length {len} exceeds the {} bytes left",
            rest.len()
        ));
    }
    let (reason, raw) = rest.split_at(len);
    let reason = std::str::from_utf8(reason)
        .map_err(|e| format!("rejected entry's reason is not UTF-8: {e}"))?;
    Ok((raw.to_vec(), reason.to_string()))
}

#[cfg(test)]
mod unit {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array};

    use super::*;

    fn framed(lsn: u64, entry: &WalEntry) -> Vec<u8> {
        let mut buf = vec![0xAA]; // a record is appended after whatever the buffer holds
        encode_record(&mut buf, lsn, entry).unwrap();
        buf.split_off(1)
    }

    fn check(record: &[u8]) -> &[u8] {
        let (len, crc) = parse_header(record[..HEADER_LEN].try_into().unwrap());
        let payload = &record[HEADER_LEN..];
        assert_eq!(len as usize, payload.len());
        assert_eq!(crc, crc32fast::hash(payload));
        payload
    }

    #[test]
    fn rejected_layout_is_exact() {
        let entry = WalEntry::Rejected {
            arrival_ms: -5,
            raw: b"{bad".to_vec(),
            reason: "eof".to_string(),
        };
        let record = framed(7, &entry);
        let payload = check(&record);
        let mut expected = Vec::new();
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(&(-5i64).to_le_bytes());
        expected.push(1);
        expected.extend_from_slice(&3u32.to_le_bytes());
        expected.extend_from_slice(b"eof{bad");
        assert_eq!(payload, &expected[..]);
        assert_eq!(decode_payload(payload).unwrap(), (7, entry));
    }

    #[test]
    fn batch_round_trips_including_zero_columns() {
        let column: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(3)]));
        let batch = RecordBatch::try_from_iter([("x", column)]).unwrap();
        let empty = RecordBatch::try_new_with_options(
            Arc::new(arrow::datatypes::Schema::empty()),
            vec![],
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(4)),
        )
        .unwrap();
        for batch in [batch, empty] {
            let entry = WalEntry::Batch {
                arrival_ms: 9,
                batch,
            };
            let record = framed(u64::MAX, &entry);
            assert_eq!(record[HEADER_LEN + 16], 0);
            assert_eq!(decode_payload(check(&record)).unwrap(), (u64::MAX, entry));
        }
    }

    #[test]
    fn malformed_payloads_are_reported() {
        let mut payload = vec![0u8; PAYLOAD_FIXED_LEN];
        payload[16] = 7;
        assert!(decode_payload(&payload).unwrap_err().contains("kind 7"));
        payload[16] = 1;
        assert!(decode_payload(&payload).is_err()); // no reason length
        payload.extend_from_slice(&10u32.to_le_bytes());
        assert!(decode_payload(&payload).unwrap_err().contains("exceeds"));
        payload.truncate(PAYLOAD_FIXED_LEN);
        payload.extend_from_slice(&[1, 0, 0, 0, 0xFF]);
        assert!(decode_payload(&payload).unwrap_err().contains("UTF-8"));
        payload[16] = 0;
        assert!(decode_payload(&payload).unwrap_err().contains("IPC"));
        assert!(decode_payload(&payload[..10]).is_err());
        assert!(check_payload_len(16).is_some());
        assert!(check_payload_len(17).is_none());
        assert!(check_payload_len(MAX_PAYLOAD_BYTES + 1).is_some());
    }
}
