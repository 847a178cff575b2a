//! The Kafka topics a cluster keeps per monitor, their names and the retention the
//! repartition topic needs.
//!
//! A cluster `NAME` running monitor `M` uses:
//!
//! | topic                | written by | read by        | holds                                   |
//! |----------------------|------------|----------------|-----------------------------------------|
//! | `NAME.M.repartition` | stage 1    | stage 2        | partial panes and watermark marks       |
//! | `NAME.M.results`     | stage 2    | every instance | emitted windows (the stores' source)    |
//! | `NAME.M.changelog`   | stage 1    | a new owner    | open partial state per partition, compacted |
//!
//! Names follow Kafka's rules for topic names (ASCII letters, digits, `.`, `_`, `-`; at
//! most 249 bytes; not `.` or `..`), and a cluster name has no `.`, so that a topic names
//! one (cluster, monitor) pair only (`a.b` + `c` and `a` + `b.c` would share topics). Both
//! are checked here, so a name Kafka would refuse fails at `--cluster` with a message, not
//! later at topic creation. Kafka treats `.` and `_` alike in metric names, so two names
//! that differ only there collide in the broker's metrics; [`ClusterTopics::collides_with`]
//! tells.

use std::fmt;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_BYTES: usize = 249;

/// Why a cluster or monitor name cannot name a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    /// Empty name.
    #[error("the {what} name is empty")]
    Empty {
        /// `cluster` or `monitor`.
        what: &'static str,
    },
    /// A character Kafka does not allow in topic names.
    #[error(
        "the {what} name {name:?} has {found:?} at byte {at}: it must be ASCII letters, \
         digits, '_' and '-' (and '.' in a monitor name), as Kafka topic names are"
    )]
    Character {
        /// `cluster` or `monitor`.
        what: &'static str,
        /// The name.
        name: String,
        /// The character refused.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// The longest topic name would exceed Kafka's limit.
    #[error(
        "topic {topic:?} would be {len} bytes; Kafka allows at most {MAX_TOPIC_NAME_BYTES} \
         (shorten the cluster or monitor name)"
    )]
    TooLong {
        /// The longest of the names.
        topic: String,
        /// Its length.
        len: usize,
    },
}

/// The topics of one monitor in one cluster (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTopics {
    cluster: String,
    monitor: String,
}

/// Checks a name; `dots`: whether it may contain `.`.
fn check(what: &'static str, name: &str, dots: bool) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty { what });
    }
    if let Some((at, found)) = name.char_indices().find(|&(_, c)| {
        !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-') || (dots && c == '.'))
    }) {
        return Err(TopicNameError::Character {
            what,
            name: name.to_string(),
            found,
            at,
        });
    }
    Ok(())
}

impl ClusterTopics {
    /// The topics of `monitor` in `cluster`, both checked against Kafka's naming rules.
    pub fn new(cluster: &str, monitor: &str) -> Result<Self, TopicNameError> {
        check("cluster", cluster, false)?;
        check("monitor", monitor, true)?;
        let topics = Self {
            cluster: cluster.to_string(),
            monitor: monitor.to_string(),
        };
        // Every name is `cluster.monitor.<suffix>`, never `.` or `..`: only the length of
        // the longest one is left to check.
        let longest = topics.repartition();
        if longest.len() > MAX_TOPIC_NAME_BYTES {
            return Err(TopicNameError::TooLong {
                len: longest.len(),
                topic: longest,
            });
        }
        Ok(topics)
    }

    fn topic(&self, suffix: &str) -> String {
        format!("{}.{}.{suffix}", self.cluster, self.monitor)
    }

    /// Partial panes and watermark marks, stage 1 to stage 2.
    pub fn repartition(&self) -> String {
        self.topic("repartition")
    }

    /// Emitted windows, stage 2 to every instance's store.
    pub fn results(&self) -> String {
        self.topic("results")
    }

    /// Open partial state per source partition, for the partition's next owner.
    pub fn changelog(&self) -> String {
        self.topic("changelog")
    }

    /// Whether the topics of `self` and of `other` differ only in `.` against `_`, which
    /// Kafka's metric names do not tell apart (and Kafka warns about).
    pub fn collides_with(&self, other: &ClusterTopics) -> bool {
        let fold = |t: &ClusterTopics| t.repartition().replace('.', "_");
        self != other && fold(self) == fold(other)
    }
}

impl fmt::Display for ClusterTopics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.*", self.cluster, self.monitor)
    }
}

/// The shortest retention the repartition topic may have: a restarted stage-2 task re-reads
/// every partial of a window that is still open, from the first pane of the longest window
/// (`longest_window_ms`) through its allowed lateness, plus the checkpoint interval by
/// which its committed offset trails what it has read. Shorter, and a restart after a
/// quiet spell finds the first panes of an open window deleted.
pub fn min_repartition_retention_ms(
    longest_window_ms: i64,
    allowed_lateness_ms: i64,
    checkpoint_interval_ms: i64,
) -> i64 {
    longest_window_ms
        .max(0)
        .saturating_add(allowed_lateness_ms.max(0))
        .saturating_add(checkpoint_interval_ms.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cluster_dot_monitor_dot_role() {
        let t = ClusterTopics::new("prod-eu", "iris_drift").unwrap();
        assert_eq!(t.repartition(), "prod-eu.iris_drift.repartition");
        assert_eq!(t.results(), "prod-eu.iris_drift.results");
        assert_eq!(t.changelog(), "prod-eu.iris_drift.changelog");
        assert_eq!(t.to_string(), "prod-eu.iris_drift.*");
    }

    #[test]
    fn names_kafka_refuses_are_rejected_with_where_and_why() {
        assert_eq!(
            ClusterTopics::new("", "m"),
            Err(TopicNameError::Empty { what: "cluster" })
        );
        let e = ClusterTopics::new("c", "drift über").unwrap_err();
        assert_eq!(
            e,
            TopicNameError::Character {
                what: "monitor",
                name: "drift über".into(),
                found: ' ',
                at: 5,
            }
        );
        assert!(e.to_string().contains("ASCII letters"), "{e}");
        assert!(ClusterTopics::new("a/b", "m").is_err());
        // A dot in the cluster name would let `a.b` + `c` and `a` + `b.c` share topics.
        assert!(matches!(
            ClusterTopics::new("a.b", "c"),
            Err(TopicNameError::Character {
                what: "cluster",
                found: '.',
                at: 1,
                ..
            })
        ));
        assert!(ClusterTopics::new("a", "b.c").is_ok());
        // The longest name ("….repartition") decides: 249 bytes pass, 250 do not.
        let fits = "m".repeat(MAX_TOPIC_NAME_BYTES - "c..repartition".len());
        assert!(ClusterTopics::new("c", &fits).is_ok());
        let e = ClusterTopics::new("c", &format!("{fits}m")).unwrap_err();
        assert!(
            matches!(e, TopicNameError::TooLong { len: 250, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn dot_and_underscore_collisions_are_detected() {
        let a = ClusterTopics::new("prod", "iris.drift").unwrap();
        let b = ClusterTopics::new("prod", "iris_drift").unwrap();
        let c = ClusterTopics::new("prod", "iris-drift").unwrap();
        let d = ClusterTopics::new("prod_iris", "drift").unwrap();
        assert!(a.collides_with(&b) && b.collides_with(&a));
        assert!(
            a.collides_with(&d),
            "prod.iris.drift against prod_iris.drift"
        );
        assert!(!a.collides_with(&c));
        assert!(
            !a.collides_with(&a.clone()),
            "a monitor does not collide with itself"
        );
    }

    #[test]
    fn retention_covers_window_lateness_and_checkpoint_lag() {
        assert_eq!(
            min_repartition_retention_ms(3_600_000, 6_000, 10_000),
            3_616_000
        );
        assert_eq!(min_repartition_retention_ms(-5, -1, 0), 0);
        assert_eq!(min_repartition_retention_ms(i64::MAX, 1, 1), i64::MAX);
    }
}
