//! Names of the files in a table directory, and what a name says about its file.
//!
//! * `part-<write ms>-<epoch>-<seq>.parquet`: results appended by a writer (one flush);
//!   `part-<write ms>-<seq>.parquet` is the layout of data dirs written before epochs.
//! * `cpt-<level>-<bucket ms>-<write ms>-<epoch>-<seq>.parquet`: a compacted file, which
//!   replaces several others (see [`super::compaction`]); visible only once the table's
//!   manifest lists it.
//! * `_manifest.json`: the table's manifest ([`super::manifest`]).
//! * Names starting with `.` are temporary files, never read.

/// Prefix of appended result files.
pub const PART_PREFIX: &str = "part-";
/// Prefix of compacted files.
pub const COMPACT_PREFIX: &str = "cpt-";

/// Size of the bucket a compacted file covers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Level {
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl Level {
    /// Length of a bucket in milliseconds.
    pub fn span_ms(self) -> i64 {
        match self {
            Level::Hour => 3_600_000,
            Level::Day => 86_400_000,
        }
    }

    /// Start of the bucket holding `t_ms`.
    pub fn bucket_of(self, t_ms: i64) -> i64 {
        t_ms.div_euclid(self.span_ms()) * self.span_ms()
    }

    fn tag(self) -> char {
        match self {
            Level::Hour => 'h',
            Level::Day => 'd',
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "h" => Some(Level::Hour),
            "d" => Some(Level::Day),
            _ => None,
        }
    }
}

/// What a file name of a table directory says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileName {
    /// An appended file.
    Part {
        /// Wall-clock write time (epoch ms).
        write_ms: i64,
        /// Checkpoint epoch (0: written without checkpoints, or before epochs existed).
        epoch: u64,
    },
    /// A compacted file.
    Compacted {
        /// Bucket size.
        level: Level,
        /// Start of the bucket (epoch ms).
        bucket_ms: i64,
        /// Wall-clock time it was written.
        write_ms: i64,
        /// Largest epoch of the files it replaces.
        epoch: u64,
    },
}

impl FileName {
    /// Parses a file name; `None` for anything that is not a result file (temporary
    /// files, the manifest, foreign files).
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(stem) = name
            .strip_prefix(PART_PREFIX)
            .and_then(|s| s.strip_suffix(".parquet"))
        {
            let parts: Vec<&str> = stem.split('-').collect();
            return match parts.as_slice() {
                [ms, epoch, seq] => {
                    seq.parse::<u64>().ok()?;
                    Some(FileName::Part {
                        write_ms: ms.parse().ok()?,
                        epoch: epoch.parse().ok()?,
                    })
                }
                [ms, seq] => {
                    seq.parse::<u64>().ok()?;
                    Some(FileName::Part {
                        write_ms: ms.parse().ok()?,
                        epoch: 0,
                    })
                }
                _ => None,
            };
        }
        let stem = name
            .strip_prefix(COMPACT_PREFIX)?
            .strip_suffix(".parquet")?;
        let parts: Vec<&str> = stem.split('-').collect();
        match parts.as_slice() {
            [level, bucket, ms, epoch, seq] => {
                seq.parse::<u64>().ok()?;
                Some(FileName::Compacted {
                    level: Level::from_tag(level)?,
                    bucket_ms: bucket.parse().ok()?,
                    write_ms: ms.parse().ok()?,
                    epoch: epoch.parse().ok()?,
                })
            }
            _ => None,
        }
    }

    /// The checkpoint epoch of the file.
    pub fn epoch(&self) -> u64 {
        match self {
            FileName::Part { epoch, .. } | FileName::Compacted { epoch, .. } => *epoch,
        }
    }

    /// Wall-clock write time.
    pub fn write_ms(&self) -> i64 {
        match self {
            FileName::Part { write_ms, .. } | FileName::Compacted { write_ms, .. } => *write_ms,
        }
    }

    /// Whether this is a compacted file.
    pub fn is_compacted(&self) -> bool {
        matches!(self, FileName::Compacted { .. })
    }
}

/// Name of an appended file.
pub fn part_name(write_ms: i64, epoch: u64, seq: u64) -> String {
    format!("{PART_PREFIX}{write_ms:013}-{epoch:010}-{seq:06}.parquet")
}

/// Name of a compacted file.
pub fn compacted_name(level: Level, bucket_ms: i64, write_ms: i64, epoch: u64, seq: u64) -> String {
    format!(
        "{COMPACT_PREFIX}{}-{bucket_ms:013}-{write_ms:013}-{epoch:010}-{seq:06}.parquet",
        level.tag()
    )
}

/// Whether `name` is a temporary file (written, not yet renamed into place).
pub fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(
            FileName::parse(&part_name(1_700_000_000_000, 7, 3)),
            Some(FileName::Part {
                write_ms: 1_700_000_000_000,
                epoch: 7
            })
        );
        assert_eq!(
            FileName::parse("part-1700000000000-000012.parquet"),
            Some(FileName::Part {
                write_ms: 1_700_000_000_000,
                epoch: 0
            })
        );
        let c = compacted_name(Level::Day, 86_400_000, 5, 9, 1);
        assert_eq!(
            FileName::parse(&c),
            Some(FileName::Compacted {
                level: Level::Day,
                bucket_ms: 86_400_000,
                write_ms: 5,
                epoch: 9
            })
        );
        for bad in [
            "_manifest.json",
            ".part-1-2-3.parquet.tmp-9",
            "part-x-1.parquet",
            "cpt-q-1-2-3-4.parquet",
        ] {
            assert_eq!(FileName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn buckets_are_aligned() {
        assert_eq!(Level::Hour.bucket_of(3_600_000 * 5 + 17), 3_600_000 * 5);
        assert_eq!(Level::Day.bucket_of(-1), -86_400_000);
    }
}
