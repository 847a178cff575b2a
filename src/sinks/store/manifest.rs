//! The manifest of a table directory, `_manifest.json`: which compacted files are live and
//! which files they replaced.
//!
//! What a reader sees in a table directory (the *visibility rule*):
//! * an appended file (`part-…`) unless the manifest lists it as `superseded`;
//! * a compacted file (`cpt-…`) only if the manifest lists it in `compacted`.
//!
//! Compaction writes its output durably first (invisible: not listed yet), then switches
//! the manifest atomically (temp file, fsync, rename, directory fsync): the output becomes
//! visible and its inputs invisible in the same rename. Inputs are deleted later (after a
//! grace period, so readers holding an older listing can still open them). A crash at any
//! step leaves either the old or the new manifest, and the rule shows every row once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::names::Level;
use super::StoreError;
use crate::durable;

/// File name of the manifest in a table directory.
pub const MANIFEST_FILE: &str = "_manifest.json";

/// What time a compacted file's bucket is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Basis {
    /// `window_start` of the results.
    Window,
    /// Wall-clock write time of the files (tables without windows).
    Write,
}

/// A live compacted file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compacted {
    /// File name in the table directory.
    pub file: String,
    /// Bucket size.
    pub level: Level,
    /// Start of the bucket (epoch ms).
    pub bucket_ms: i64,
    /// What the bucket is measured in.
    pub basis: Basis,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Newest write time of the files it replaced (retention works on it).
    pub max_write_ms: i64,
    /// Largest epoch of the files it replaced.
    pub epoch: u64,
    /// Fingerprint of the file's schema ([`super::index::schema_id`]). With `rows`,
    /// `bytes` and `ranges` it lets a reader plan the file without opening its footer.
    /// None in manifests written before the statistics were kept: the footer is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<u64>,
    /// Min and max of the file's timestamp columns (as [`super::FileInfo::ranges`]): a
    /// column is listed only when every input had statistics for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<ColumnRange>,
}

/// Min and max of one timestamp column of a file, in the column's own unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRange {
    /// Column name.
    pub column: String,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
}

/// A file replaced by a compacted file, waiting to be deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// File name in the table directory.
    pub file: String,
    /// When it was replaced (wall-clock epoch ms).
    pub since_ms: i64,
}

/// The manifest of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Incremented by every switch.
    pub generation: u64,
    /// Live compacted files.
    pub compacted: Vec<Compacted>,
    /// Replaced files not deleted yet.
    pub superseded: Vec<Superseded>,
}

impl Manifest {
    /// Path of the manifest of `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads the manifest of `dir` (empty when there is none). An unreadable manifest is an
    /// error: guessing would show rows twice or not at all.
    pub fn load(dir: &Path) -> Result<Self, StoreError> {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Manifest {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Writes the manifest of `dir` atomically and durably, with the next generation.
    pub fn save(&mut self, dir: &Path) -> Result<(), StoreError> {
        self.generation += 1;
        let path = Self::path(dir);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        durable::write_atomic(&path, &bytes).map_err(|source| StoreError::Io { path, source })
    }

    /// Whether `file` is a live compacted file.
    pub fn is_live(&self, file: &str) -> bool {
        self.compacted.iter().any(|c| c.file == file)
    }

    /// Whether `file` was replaced.
    pub fn is_superseded(&self, file: &str) -> bool {
        self.superseded.iter().any(|s| s.file == file)
    }

    /// The visibility rule (see the module docs) for a result file named `file`.
    pub fn visible(&self, file: &str, compacted: bool) -> bool {
        if compacted {
            self.is_live(file)
        } else {
            !self.is_superseded(file)
        }
    }

    /// Makes `output` live and `inputs` superseded, in memory (call [`Manifest::save`]).
    pub fn switch(&mut self, output: Compacted, inputs: &[String], now_ms: i64) {
        self.compacted.retain(|c| !inputs.contains(&c.file));
        self.compacted.push(output);
        for file in inputs {
            if !self.is_superseded(file) {
                self.superseded.push(Superseded {
                    file: file.clone(),
                    since_ms: now_ms,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compacted(file: &str) -> Compacted {
        Compacted {
            file: file.into(),
            level: Level::Hour,
            bucket_ms: 0,
            basis: Basis::Window,
            rows: 3,
            bytes: 10,
            max_write_ms: 1,
            epoch: 1,
            schema_id: Some(7),
            ranges: vec![ColumnRange {
                column: "window_start".into(),
                min: 1,
                max: 2,
            }],
        }
    }

    #[test]
    fn a_switch_hides_inputs_and_shows_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::load(dir.path()).unwrap();
        assert!(m.visible("part-a", false) && !m.visible("cpt-a", true));
        m.switch(compacted("cpt-a"), &["part-a".into(), "part-b".into()], 5);
        m.save(dir.path()).unwrap();
        let back = Manifest::load(dir.path()).unwrap();
        assert_eq!(back, m);
        assert!(!back.visible("part-a", false) && back.visible("cpt-a", true));
        assert!(back.visible("part-c", false));
        // Compacting the compacted file again replaces it.
        let mut m = back;
        m.switch(compacted("cpt-b"), &["cpt-a".into(), "part-c".into()], 6);
        assert!(!m.visible("cpt-a", true) && m.visible("cpt-b", true));
        assert_eq!(m.superseded.len(), 4);
    }

    #[test]
    fn a_manifest_without_statistics_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"generation": 3, "compacted": [{"file": "cpt-a", "level": "Hour",
            "bucket_ms": 0, "basis": "Window", "rows": 3, "bytes": 10, "max_write_ms": 1,
            "epoch": 1}], "superseded": []}"#;
        std::fs::write(Manifest::path(dir.path()), old).unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m.compacted[0].schema_id, None);
        assert!(m.compacted[0].ranges.is_empty());
    }

    #[test]
    fn a_damaged_manifest_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Manifest::path(dir.path()), b"{not json").unwrap();
        assert!(matches!(
            Manifest::load(dir.path()),
            Err(StoreError::Manifest { .. })
        ));
    }
}
