//! The Arrow IPC stream inside a partial-pane record: written, framing-checked before
//! Arrow's reader sees it, and read with panics contained.

use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::{root_as_message, MessageHeader};

use super::*;

/// Reads an IPC stream that must hold exactly one batch, after checking its framing.
pub(super) fn read_ipc_stream(body: &[u8]) -> Result<RecordBatch, ExchangeError> {
    check_ipc_framing(body)?;
    let read = || -> Result<RecordBatch, String> {
        let mut reader =
            StreamReader::try_new(Cursor::new(body), None).map_err(|e| e.to_string())?;
        let batch = reader
            .next()
            .ok_or("the stream holds no batch")?
            .map_err(|e| e.to_string())?;
        match reader.next() {
            None => Ok(batch),
            Some(Ok(_)) => Err("the stream holds more than one batch".to_string()),
            Some(Err(e)) => Err(e.to_string()),
        }
    };
    // The framing check leaves only crafted metadata (e.g. an unknown type in the schema)
    // that Arrow's reader may assert on; that must be an error, not a crash.
    match catch_unwind(AssertUnwindSafe(read)) {
        Ok(result) => result.map_err(ExchangeError::Ipc),
        Err(_) => Err(ExchangeError::Ipc(
            "the Arrow decoder rejected the stream".into(),
        )),
    }
}

/// Walks the stream's messages: continuation-marked lengths within the bytes, verified
/// flatbuffer metadata, body lengths and buffer ranges within the bytes, no compression, one
/// schema first, dictionaries, exactly one record batch, the end-of-stream marker, nothing
/// after it.
pub(super) fn check_ipc_framing(body: &[u8]) -> Result<(), ExchangeError> {
    let err = ExchangeError::Ipc;
    let mut r = Reader { buf: body, pos: 0 };
    let (mut schemas, mut batches) = (0, 0);
    loop {
        if r.u32("IPC continuation marker")? != IPC_CONTINUATION {
            return Err(err("missing continuation marker".into()));
        }
        let meta_len = r.i32("IPC metadata length")?;
        if meta_len == 0 {
            break;
        }
        let meta_len =
            usize::try_from(meta_len).map_err(|_| err(format!("metadata length {meta_len}")))?;
        let meta = r.take(meta_len, "IPC metadata")?;
        let message = root_as_message(meta).map_err(|e| err(format!("bad metadata: {e}")))?;
        let body_len = usize::try_from(message.bodyLength())
            .ok()
            .filter(|len| *len <= r.remaining())
            .ok_or_else(|| err(format!("body length {} out of range", message.bodyLength())))?;
        let data = match message.header_type() {
            MessageHeader::Schema if schemas == 0 => {
                schemas += 1;
                None
            }
            MessageHeader::DictionaryBatch if schemas == 1 && batches == 0 => {
                let dict = message.header_as_dictionary_batch();
                Some(
                    dict.and_then(|d| d.data())
                        .ok_or_else(|| err("empty dictionary".into()))?,
                )
            }
            MessageHeader::RecordBatch if schemas == 1 && batches == 0 => {
                batches += 1;
                Some(
                    message
                        .header_as_record_batch()
                        .ok_or_else(|| err("no batch".into()))?,
                )
            }
            h => return Err(err(format!("unexpected message {h:?}"))),
        };
        if let Some(data) = data {
            if data.compression().is_some() {
                return Err(err("compressed buffers are not accepted".into()));
            }
            for b in data.buffers().iter().flatten() {
                let in_range = usize::try_from(b.offset())
                    .ok()
                    .zip(usize::try_from(b.length()).ok())
                    .and_then(|(o, l)| o.checked_add(l))
                    .is_some_and(|end| end <= body_len);
                if !in_range {
                    return Err(err("a buffer lies outside the message body".into()));
                }
            }
        }
        r.take(body_len, "IPC message body")?;
    }
    if batches != 1 {
        return Err(err("the stream holds no batch".into()));
    }
    if r.remaining() > 0 {
        return Err(err(format!(
            "{} bytes after the end of stream",
            r.remaining()
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Chunking
