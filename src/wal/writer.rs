//! The appending side of the log.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::record::{encode_record, payload_lsn};
use super::segment::{
    create_segment, io_err, list_segments, sync_dir, SegmentReader, Step, MAGIC, MAGIC_LEN,
};
use super::{WalEntry, WalError, WalOptions, WalSync};

/// A group buffer that grew past this is dropped after its append instead of being kept for
/// reuse, so one huge request does not pin its size in memory for good.
const MAX_RETAINED_BUFFER: usize = 16 << 20;

/// A segment as the writer tracks it.
#[derive(Debug)]
struct Segment {
    first_lsn: u64,
    path: PathBuf,
    bytes: u64,
}

/// Appends entries to the log in `dir`; the only writer of that directory.
///
/// Owned by one thread (the ingest's WAL thread); every call blocks on disk I/O. Dropping it
/// does not sync: call [`sync`](Self::sync) first if [`WalSync::Never`] appends must be durable.
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    options: WalOptions,
    /// All segments on disk, oldest first; the last is the one written to.
    segments: VecDeque<Segment>,
    /// The last segment, open for writing at its end.
    file: File,
    next_lsn: u64,
    /// Encoding buffer, reused across appends.
    buf: Vec<u8>,
    /// Set when a failure left the file or the page cache in an unknown state.
    poisoned: Option<String>,
}

impl WalWriter {
    /// Opens (creating the directory if needed) the log in `dir`.
    ///
    /// Scans the last segment to find the end of its valid records: a torn or corrupt tail
    /// (short length prefix, short payload, CRC mismatch, as a crash mid-write leaves) is cut
    /// off (`set_len` + fsync) and logged with `tracing::warn`. Earlier segments are not read;
    /// damage there is reported by [`replay`](super::replay). A record with a valid CRC but an
    /// out-of-sequence LSN, or a wrong magic in a file longer than the magic, is not a crash
    /// artefact and fails the open with [`WalError::Corrupt`] (nothing is cut). A last segment
    /// of at most 8 bytes without a full magic (a crash while it was being created) gets its
    /// magic rewritten. Returns the writer positioned after the last valid record.
    pub fn open(dir: &Path, options: WalOptions) -> Result<WalWriter, WalError> {
        let existed = dir.exists();
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        if !existed {
            if let Some(parent) = dir.parent() {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                sync_dir(parent)?;
            }
        }
        let metas = list_segments(dir)?;
        let Some(last) = metas.last() else {
            let (file, path) = create_segment(dir, 0)?;
            let segment = Segment {
                first_lsn: 0,
                path,
                bytes: MAGIC_LEN,
            };
            return Ok(Self::new(dir, options, VecDeque::from([segment]), file, 0));
        };
        let (end, next_lsn) = recover_last_segment(&last.path, last.first_lsn)?;
        let mut segments = VecDeque::with_capacity(metas.len());
        for meta in &metas[..metas.len() - 1] {
            let bytes = fs::metadata(&meta.path).map_err(io_err(&meta.path))?.len();
            segments.push_back(Segment {
                first_lsn: meta.first_lsn,
                path: meta.path.clone(),
                bytes,
            });
        }
        let mut file = OpenOptions::new()
            .write(true)
            .open(&last.path)
            .map_err(io_err(&last.path))?;
        file.seek(SeekFrom::Start(end))
            .map_err(io_err(&last.path))?;
        segments.push_back(Segment {
            first_lsn: last.first_lsn,
            path: last.path.clone(),
            bytes: end,
        });
        Ok(Self::new(dir, options, segments, file, next_lsn))
    }

    fn new(
        dir: &Path,
        options: WalOptions,
        segments: VecDeque<Segment>,
        file: File,
        next_lsn: u64,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            options,
            segments,
            file,
            next_lsn,
            buf: Vec::new(),
            poisoned: None,
        }
    }

    /// LSN the next appended record will get (0 for an empty log; LSNs are dense and increase
    /// by 1 per record across segments).
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Appends every entry as one write group, in order, and returns the LSN range assigned.
    ///
    /// The group is encoded into one reused buffer and written with one `write` call, into a
    /// single segment (rotation happens first if the current segment already holds
    /// [`WalOptions::segment_bytes`]). With [`WalSync::Always`] the data is fsynced
    /// (`File::sync_data`) before returning; with [`WalSync::Never`] it is only written (in the
    /// OS page cache: it survives a process crash, not a power loss). An empty `entries` writes
    /// nothing and returns an empty range.
    ///
    /// Encoding errors ([`WalError::Arrow`], [`WalError::TooLarge`]) write nothing. A failed
    /// write is rolled back when possible; a failed fsync or rotation, or a write that cannot be
    /// rolled back, makes every later `append` and `sync` fail: reopen the log.
    pub fn append(&mut self, entries: &[WalEntry], sync: WalSync) -> Result<Range<u64>, WalError> {
        self.check_usable()?;
        let first = self.next_lsn;
        if entries.is_empty() {
            return Ok(first..first);
        }
        self.buf.clear();
        for (lsn, entry) in (first..).zip(entries) {
            encode_record(&mut self.buf, lsn, entry)?;
        }
        let current = self.segments.back().expect("a segment is always open");
        if current.bytes >= self.options.segment_bytes && current.bytes > MAGIC_LEN {
            self.rotate()?;
        }
        self.write_group()?;
        self.next_lsn = first + entries.len() as u64;
        if sync == WalSync::Always {
            self.sync_current()?;
        }
        if self.buf.capacity() > MAX_RETAINED_BUFFER {
            self.buf = Vec::new();
        }
        Ok(first..self.next_lsn)
    }

    /// Forces everything appended so far to disk. Only the current segment can hold unsynced
    /// data: rotation syncs the segment it leaves.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        self.sync_current()
    }

    /// Deletes every segment all of whose records have an LSN below `lsn`, oldest first, never
    /// the segment currently written to, then fsyncs the directory. Returns how many files were
    /// deleted. Call it once everything below `lsn` is persisted elsewhere.
    pub fn truncate_before(&mut self, lsn: u64) -> Result<usize, WalError> {
        let mut deleted = 0;
        let mut failure = None;
        // Segment i holds lsns [first_i, first_{i+1}): fully below `lsn` iff first_{i+1} <= lsn.
        while self.segments.len() > 1 && self.segments[1].first_lsn <= lsn {
            let path = &self.segments[0].path;
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    failure = Some(io_err(path)(e));
                    break;
                }
            }
            self.segments.pop_front();
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.dir)?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// Bytes currently on disk over all segments (for metrics), as tracked by the writer.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn check_usable(&self) -> Result<(), WalError> {
        match &self.poisoned {
            None => Ok(()),
            Some(why) => Err(WalError::Io {
                path: self.current_path().to_path_buf(),
                source: io::Error::other(format!(
                    "WAL writer is unusable after an earlier failure ({why}); reopen the log"
                )),
            }),
        }
    }

    fn current_path(&self) -> &Path {
        &self.segments.back().expect("a segment is always open").path
    }

    fn poison(&mut self, error: WalError) -> WalError {
        self.poisoned = Some(error.to_string());
        error
    }

    /// Writes the encoded group at the end of the current segment. On failure, cuts the file
    /// back to its previous length so that no partial group stays in it.
    fn write_group(&mut self) -> Result<(), WalError> {
        let current = self.segments.back_mut().expect("a segment is always open");
        let before = current.bytes;
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                current.bytes += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                let error = io_err(&current.path)(e);
                let rolled_back = self
                    .file
                    .set_len(before)
                    .and_then(|()| self.file.seek(SeekFrom::Start(before)).map(drop));
                match rolled_back {
                    Ok(()) => Err(error),
                    Err(_) => Err(self.poison(error)),
                }
            }
        }
    }

    fn sync_current(&mut self) -> Result<(), WalError> {
        match self.file.sync_data() {
            Ok(()) => Ok(()),
            Err(e) => {
                let error = io_err(self.current_path())(e);
                Err(self.poison(error))
            }
        }
    }

    /// Starts a new segment at `next_lsn`. The old segment is synced first: once the new name is
    /// durable the old segment is no longer the last, and a tail torn by a power loss would then
    /// read as corruption instead of being repaired.
    fn rotate(&mut self) -> Result<(), WalError> {
        self.sync_current()?;
        match create_segment(&self.dir, self.next_lsn) {
            Ok((file, path)) => {
                self.file = file;
                self.segments.push_back(Segment {
                    first_lsn: self.next_lsn,
                    path,
                    bytes: MAGIC_LEN,
                });
                Ok(())
            }
            Err(e) => Err(self.poison(e)),
        }
    }
}

/// Scans the last segment, cuts off a torn tail, and returns (end of valid data, next LSN).
fn recover_last_segment(path: &Path, first_lsn: u64) -> Result<(u64, u64), WalError> {
    let mut reader = SegmentReader::open(path)?;
    let mut next_lsn = first_lsn;
    let mut payload = Vec::new();
    let tail = loop {
        match reader.next_header()? {
            Step::End => break None,
            Step::Bad { offset, reason } => break Some((offset, reason)),
            Step::Record { offset, len, crc } => {
                if !reader.read_payload(len, crc, &mut payload)? {
                    break Some((offset, "payload CRC mismatch".to_string()));
                }
                let lsn = payload_lsn(&payload);
                if lsn != next_lsn {
                    return Err(WalError::Corrupt {
                        path: path.to_path_buf(),
                        offset,
                        reason: format!("expected lsn {next_lsn}, found {lsn}"),
                    });
                }
                next_lsn += 1;
            }
        }
    };
    let file_len = reader.file_len();
    drop(reader);
    let Some((offset, reason)) = tail else {
        return Ok((file_len, next_lsn));
    };
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let end = if offset < MAGIC_LEN {
        // The crash hit while the segment was being created: it holds no record yet.
        file.set_len(0)
            .and_then(|()| file.write_all(MAGIC))
            .map_err(io_err(path))?;
        MAGIC_LEN
    } else {
        file.set_len(offset).map_err(io_err(path))?;
        offset
    };
    file.sync_all().map_err(io_err(path))?;
    tracing::warn!(
        path = %path.display(),
        offset,
        dropped_bytes = file_len - offset,
        %reason,
        next_lsn,
        "truncated the torn tail of the last WAL segment"
    );
    Ok((end, next_lsn))
}
