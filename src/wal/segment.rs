//! Segment files: naming, listing, creation, and sequential reading of record headers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::record::{check_payload_len, parse_header, HEADER_LEN};
use super::WalError;

/// First bytes of every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"DWWAL001";
/// Length of [`MAGIC`], as a file offset.
pub(crate) const MAGIC_LEN: u64 = MAGIC.len() as u64;

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".wal";
const LSN_DIGITS: usize = 20;

/// Maps an `io::Error` to [`WalError::Io`] about `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A segment file found in the log directory.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    /// LSN of its first record (from the file name).
    pub first_lsn: u64,
    /// Its path.
    pub path: PathBuf,
}

/// File name of the segment whose first record has `first_lsn`.
pub(crate) fn segment_file_name(first_lsn: u64) -> String {
    format!("{PREFIX}{first_lsn:0width$}{SUFFIX}", width = LSN_DIGITS)
}

/// The first LSN encoded in a segment file name, or `None` for any other name.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != LSN_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, oldest first. A missing directory is an empty log.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentMeta>, WalError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(first_lsn) = name.to_str().and_then(parse_segment_file_name) {
            segments.push(SegmentMeta {
                first_lsn,
                path: entry.path(),
            });
        }
    }
    segments.sort_by_key(|s| s.first_lsn);
    Ok(segments)
}

/// fsyncs a directory, so that names created or removed in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Creates the segment for `first_lsn` in `dir`: the file, its magic, an fsync of the file and
/// one of the directory. On failure the file is removed again (best effort), so a half-made
/// segment does not linger with a name that later records would contradict.
pub(crate) fn create_segment(dir: &Path, first_lsn: u64) -> Result<(File, PathBuf), WalError> {
    let path = dir.join(segment_file_name(first_lsn));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let result = file
        .write_all(MAGIC)
        .and_then(|()| file.sync_all())
        .map_err(io_err(&path))
        .and_then(|()| sync_dir(dir));
    match result {
        Ok(()) => Ok((file, path)),
        Err(e) => {
            drop(file);
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// One step of [`SegmentReader::next_header`].
#[derive(Debug)]
pub(crate) enum Step {
    /// A plausible record header at `offset`; its payload follows.
    Record { offset: u64, len: u32, crc: u32 },
    /// The segment ends cleanly here.
    End,
    /// No valid record starts at `offset`: a torn tail in the last segment, damage elsewhere.
    Bad { offset: u64, reason: String },
}

/// Reads a segment front to back, record header by record header, up to the length the file
/// had when it was opened (bytes appended later are not seen).
#[derive(Debug)]
pub(crate) struct SegmentReader {
    path: PathBuf,
    reader: BufReader<File>,
    file_len: u64,
    /// Offset of the next unread byte.
    pos: u64,
    /// Why the segment header is unusable, if it is torn (the file ends within or right after a
    /// wrong magic, so it can hold no record).
    torn_magic: Option<String>,
}

impl SegmentReader {
    /// Opens `path` and checks its magic. A file of more than 8 bytes with a wrong magic is
    /// [`WalError::Corrupt`]; a shorter or exactly-8-byte one is reported as [`Step::Bad`] at
    /// offset 0 by the first [`next_header`](Self::next_header), since a crash while creating
    /// the segment leaves exactly that.
    pub(crate) fn open(path: &Path) -> Result<Self, WalError> {
        let file = File::open(path).map_err(io_err(path))?;
        let file_len = file.metadata().map_err(io_err(path))?.len();
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut magic = [0u8; MAGIC.len()];
        let have = file_len.min(MAGIC_LEN) as usize;
        reader
            .read_exact(&mut magic[..have])
            .map_err(io_err(path))?;
        let mut torn_magic = None;
        if magic[..have] != MAGIC[..have] {
            let reason = format!(
                "bad segment magic {:?}",
                String::from_utf8_lossy(&magic[..have])
            );
            if file_len > MAGIC_LEN {
                return Err(WalError::Corrupt {
                    path: path.to_path_buf(),
                    offset: 0,
                    reason,
                });
            }
            torn_magic = Some(reason);
        } else if file_len < MAGIC_LEN {
            torn_magic = Some(format!("segment header torn after {file_len} bytes"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            file_len,
            pos: have as u64,
            torn_magic,
        })
    }

    /// The segment's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length when it was opened.
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Reads the next record header and checks that its length is plausible and that the whole
    /// payload is present. After [`Step::Record`] call [`read_payload`](Self::read_payload) or
    /// [`skip_payload`](Self::skip_payload) before the next header.
    pub(crate) fn next_header(&mut self) -> Result<Step, WalError> {
        if let Some(reason) = &self.torn_magic {
            return Ok(Step::Bad {
                offset: 0,
                reason: reason.clone(),
            });
        }
        let offset = self.pos;
        let left = self.file_len - offset;
        if left == 0 {
            return Ok(Step::End);
        }
        if left < HEADER_LEN as u64 {
            return Ok(Step::Bad {
                offset,
                reason: format!("torn record header: {left} of {HEADER_LEN} bytes"),
            });
        }
        let mut header = [0u8; HEADER_LEN];
        self.reader
            .read_exact(&mut header)
            .map_err(io_err(&self.path))?;
        self.pos += HEADER_LEN as u64;
        let (len, crc) = parse_header(&header);
        if let Some(reason) = check_payload_len(len) {
            return Ok(Step::Bad { offset, reason });
        }
        let left = left - HEADER_LEN as u64;
        if u64::from(len) > left {
            return Ok(Step::Bad {
                offset,
                reason: format!("torn payload: {left} of {len} bytes"),
            });
        }
        Ok(Step::Record { offset, len, crc })
    }

    /// Reads the payload announced by the last header into `buf` and checks its CRC; `Ok(false)`
    /// on a mismatch.
    pub(crate) fn read_payload(
        &mut self,
        len: u32,
        crc: u32,
        buf: &mut Vec<u8>,
    ) -> Result<bool, WalError> {
        buf.clear();
        buf.resize(len as usize, 0);
        self.reader.read_exact(buf).map_err(io_err(&self.path))?;
        self.pos += u64::from(len);
        Ok(crc32fast::hash(buf) == crc)
    }

    /// Skips the payload announced by the last header without reading or checking it.
    pub(crate) fn skip_payload(&mut self, len: u32) -> Result<(), WalError> {
        self.reader
            .seek_relative(i64::from(len))
            .map_err(io_err(&self.path))?;
        self.pos += u64::from(len);
        Ok(())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(segment_file_name(42), "seg-00000000000000000042.wal");
        assert_eq!(segment_file_name(u64::MAX), "seg-18446744073709551615.wal");
        assert!(segment_file_name(9) < segment_file_name(10));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        for bad in [
            "seg-42.wal",
            "seg-0000000000000000004a.wal",
            "seg-00000000000000000042.wal.tmp",
            "seg-99999999999999999999.wal",
            "xseg-00000000000000000042.wal",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }
}
