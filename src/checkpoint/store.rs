//! Checkpoint files in `<data dir>/checkpoints/`: one self-checking file per checkpoint,
//! written atomically, the newest valid one restored, the last few kept.
//!
//! Layout of `ckpt-<id, 20 digits>.dwc` (integers little-endian):
//!
//! ```text
//! "DWCKPT01" | u32 manifest length | manifest JSON
//!            | u32 state count | per state: u32 name length | name | u64 length | Arrow IPC file
//!            | u32 CRC-32 of every byte before it | "DWCKPTOK"
//! ```
//!
//! A file that is truncated, has a wrong checksum or does not parse is skipped with a
//! warning and the previous checkpoint is used: a crash while writing never leaves the data
//! dir without a restorable checkpoint (the file only gets its final name once complete).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use super::manifest::{Checkpoint, Manifest, MANIFEST_VERSION};
use crate::durable;

const MAGIC: &[u8; 8] = b"DWCKPT01";
const TRAILER: &[u8; 8] = b"DWCKPTOK";
/// Checkpoints kept on disk; older ones are deleted once a newer one is durable.
pub const KEEP_CHECKPOINTS: usize = 3;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not a complete, intact checkpoint.
    #[error("{path}: {reason}")]
    Invalid {
        /// File involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Encoding state failed.
    #[error("encoding checkpoint state: {0}")]
    Encode(String),
}

/// A checkpoint as written: where and how big.
#[derive(Debug, Clone)]
pub struct Written {
    /// Checkpoint id.
    pub id: u64,
    /// File written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The checkpoint directory of a data dir.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

fn file_name(id: u64) -> String {
    format!("ckpt-{id:020}.dwc")
}

fn parse_id(name: &str) -> Option<u64> {
    name.strip_prefix("ckpt-")?
        .strip_suffix(".dwc")?
        .parse()
        .ok()
}

/// Encodes a checkpoint into its file bytes.
pub fn encode(checkpoint: &Checkpoint) -> Result<Vec<u8>, CheckpointError> {
    let manifest = serde_json::to_vec(&checkpoint.manifest)
        .map_err(|e| CheckpointError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(manifest.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    out.extend_from_slice(&manifest);
    out.extend_from_slice(&(checkpoint.states.len() as u32).to_le_bytes());
    for (name, batch) in &checkpoint.states {
        let ipc = ipc_bytes(batch)?;
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(ipc.len() as u64).to_le_bytes());
        out.extend_from_slice(&ipc);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(TRAILER);
    Ok(out)
}

fn ipc_bytes(batch: &RecordBatch) -> Result<Vec<u8>, CheckpointError> {
    let err = |e: arrow::error::ArrowError| CheckpointError::Encode(e.to_string());
    let mut writer = FileWriter::try_new(Vec::new(), &batch.schema()).map_err(err)?;
    writer.write(batch).map_err(err)?;
    writer.finish().map_err(err)?;
    writer.into_inner().map_err(err)
}

/// Bounds-checked reader over the file bytes.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Decodes and verifies checkpoint file bytes.
pub fn decode(data: &[u8]) -> Result<Checkpoint, String> {
    if data.len() < MAGIC.len() + TRAILER.len() + 4 || &data[..8] != MAGIC {
        return Err("not a checkpoint file (bad magic or too short)".into());
    }
    if &data[data.len() - 8..] != TRAILER {
        return Err("incomplete (no trailer): the write was interrupted".into());
    }
    let body_end = data.len() - 12;
    let stored = u32::from_le_bytes(data[body_end..body_end + 4].try_into().expect("4 bytes"));
    if crc32fast::hash(&data[..body_end]) != stored {
        return Err("checksum mismatch: the file is corrupt".into());
    }
    let mut r = Bytes {
        data: &data[..body_end],
        at: 8,
    };
    let len = r.u32()? as usize;
    let manifest: Manifest =
        serde_json::from_slice(r.take(len)?).map_err(|e| format!("manifest: {e}"))?;
    if manifest.version != MANIFEST_VERSION {
        return Err(format!(
            "manifest version {} (this build reads {MANIFEST_VERSION})",
            manifest.version
        ));
    }
    let count = r.u32()?;
    let mut states = BTreeMap::new();
    for _ in 0..count {
        let len = r.u32()? as usize;
        let name = String::from_utf8(r.take(len)?.to_vec()).map_err(|e| e.to_string())?;
        let len = usize::try_from(r.u64()?).map_err(|e| e.to_string())?;
        let ipc = r.take(len)?;
        let mut reader =
            FileReader::try_new(Cursor::new(ipc), None).map_err(|e| format!("{name}: {e}"))?;
        let batch = reader
            .next()
            .ok_or_else(|| format!("{name}: no state batch"))?
            .map_err(|e| format!("{name}: {e}"))?;
        states.insert(name, batch);
    }
    if r.at != body_end {
        return Err("trailing bytes after the last state".into());
    }
    Ok(Checkpoint { manifest, states })
}

impl CheckpointStore {
    /// The checkpoints of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("checkpoints"),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> CheckpointError {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Ids of the checkpoint files present, ascending (valid or not).
    pub fn ids(&self) -> Vec<u64> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut ids: Vec<u64> = entries
            .flatten()
            .filter_map(|e| parse_id(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Path of checkpoint `id`.
    pub fn path(&self, id: u64) -> PathBuf {
        self.dir.join(file_name(id))
    }

    /// Writes a checkpoint atomically and durably; returns where and how big.
    pub fn write(&self, checkpoint: &Checkpoint) -> Result<Written, CheckpointError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let bytes = encode(checkpoint)?;
        let path = self.path(checkpoint.manifest.id);
        durable::write_atomic(&path, &bytes).map_err(self.io(&path))?;
        Ok(Written {
            id: checkpoint.manifest.id,
            path,
            bytes: bytes.len() as u64,
        })
    }

    /// Reads and verifies checkpoint `id`.
    pub fn read(&self, id: u64) -> Result<Checkpoint, CheckpointError> {
        let path = self.path(id);
        let data = std::fs::read(&path).map_err(self.io(&path))?;
        let checkpoint = decode(&data).map_err(|reason| CheckpointError::Invalid {
            path: path.clone(),
            reason,
        })?;
        if checkpoint.manifest.id != id {
            return Err(CheckpointError::Invalid {
                path,
                reason: format!("holds checkpoint {}", checkpoint.manifest.id),
            });
        }
        Ok(checkpoint)
    }

    /// Every valid checkpoint, newest first, with a warning for each invalid one skipped.
    pub fn valid_newest_first(&self) -> Vec<Checkpoint> {
        let mut out = Vec::new();
        for id in self.ids().into_iter().rev() {
            match self.read(id) {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!(error = %e, "skipping unusable checkpoint"),
            }
        }
        out
    }

    /// The newest valid checkpoint.
    pub fn latest(&self) -> Option<Checkpoint> {
        for id in self.ids().into_iter().rev() {
            match self.read(id) {
                Ok(c) => return Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping unusable checkpoint; trying the previous one")
                }
            }
        }
        None
    }

    /// Deletes all but the newest `keep` checkpoint files (and leftover temporary files).
    pub fn retain(&self, keep: usize) -> Result<usize, CheckpointError> {
        let ids = self.ids();
        let mut removed = 0;
        for id in ids.iter().take(ids.len().saturating_sub(keep)) {
            let path = self.path(*id);
            std::fs::remove_file(&path).map_err(self.io(&path))?;
            removed += 1;
        }
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with('.') {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if removed > 0 {
            durable::sync_dir(&self.dir).map_err(self.io(&self.dir))?;
        }
        Ok(removed)
    }

    /// Deletes every checkpoint (`--from-scratch`).
    pub fn clear(&self) -> Result<(), CheckpointError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(&self.dir)(e)),
        }
    }
}
