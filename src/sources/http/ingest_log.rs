//! The durable path of the embedded HTTP ingest: every accepted body goes through a
//! write-ahead log ([`crate::wal`]) before it reaches the engine, so a 2xx survives a crash.
//!
//! Two stages, each in order, connected by a channel:
//!
//! 1. a writer thread takes every request waiting, appends their rows as one group (one
//!    write, one fsync with `wal_sync = 'always'`: group commit) and passes the group on;
//! 2. an async pusher delivers each entry, in LSN order, to the source's feed with position
//!    `Wal { next_lsn }`, then answers the request.
//!
//! So an answer means "in the log and in the engine", and the feed's position is always a
//! prefix of the log: a checkpoint at position `n` covers exactly the entries below `n`, a
//! restart replays the entries from `n` ([`IngestLog::start`]), and segments below the oldest
//! kept checkpoint are deleted ([`IngestLog::truncate_before`]).
//!
//! `wal_sync = 'always'` (default) fsyncs each group before answering: a 2xx survives a
//! power loss. `wal_sync = 'interval'` answers after the write and fsyncs every
//! `wal_sync_interval` (default 100 ms): a 2xx survives a crash of the process, not a power
//! loss within the interval, in exchange for fewer fsyncs.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::sources::feed::{Delivery, SourceFeed};
use crate::sources::position::SourcePosition;
use crate::sources::rejected::RejectedRecord;
use crate::wal::{self, WalEntry, WalError, WalOptions, WalRecord, WalSync, WalWriter};

/// Directory of the HTTP ingest logs in a data dir (one subdirectory per source).
pub const WAL_DIR: &str = "wal";

/// Requests whose rows are written as one group at most.
const MAX_GROUP: usize = 512;

/// When the log is forced to disk (`wal_sync` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// fsync every group before answering.
    #[default]
    Always,
    /// fsync at most this long after a write; answer after the write.
    Interval(Duration),
}

enum Command {
    Append { entry: WalEntry, reply: Reply },
    Truncate(u64),
}

/// Where the answer to one request goes.
type Reply = oneshot::Sender<Result<(), String>>;

/// Entries written together, with their LSNs and the requests waiting for them.
struct Group {
    entries: Vec<(u64, WalEntry, Reply)>,
}

/// The write-ahead log of one HTTP source.
#[derive(Debug, Clone)]
pub struct IngestLog {
    dir: PathBuf,
    commands: std_mpsc::SyncSender<Command>,
}

/// The log directory of `source` in `data_dir`; fails for a name that would leave it.
pub fn log_dir(data_dir: &Path, source: &str) -> std::io::Result<PathBuf> {
    crate::durable::child_path(&data_dir.join(WAL_DIR), &source.to_ascii_lowercase())
}

fn entry_delivery(lsn: u64, entry: WalEntry) -> Delivery {
    let position = Some(SourcePosition::Wal { next_lsn: lsn + 1 });
    match entry {
        WalEntry::Batch { arrival_ms, batch } => Delivery {
            batch: Some(batch),
            rejected: Vec::new(),
            position,
            arrival_ms,
        },
        WalEntry::Rejected {
            arrival_ms,
            raw,
            reason,
        } => Delivery {
            batch: None,
            rejected: vec![RejectedRecord::new(0, Some(lsn as i64), &raw, reason)],
            position,
            arrival_ms,
        },
    }
}

impl IngestLog {
    /// Opens the log in `dir` (repairing a torn tail), replays into `feed` every entry from
    /// the feed's position on, then starts the writer and pusher stages.
    pub async fn start(
        dir: PathBuf,
        policy: SyncPolicy,
        feed: SourceFeed,
    ) -> Result<Self, WalError> {
        let from = feed.position(0).and_then(|p| p.wal_lsn()).unwrap_or(0);
        let open_dir = dir.clone();
        let writer =
            tokio::task::spawn_blocking(move || WalWriter::open(&open_dir, WalOptions::default()))
                .await
                .map_err(|e| WalError::Io {
                    path: dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                })??;
        let replayed = Self::replay(&dir, from, &feed).await?;
        if replayed > 0 {
            tracing::info!(source = %feed.schema().name, entries = replayed, from, "write-ahead log replayed");
        }
        let (commands, rx) = std_mpsc::sync_channel(4 * MAX_GROUP);
        let (groups_tx, groups_rx) = mpsc::channel(4);
        let name = feed.schema().name.clone();
        std::thread::Builder::new()
            .name(format!("wal-{name}"))
            .spawn(move || write_loop(writer, policy, rx, groups_tx))
            .map_err(|source| WalError::Io {
                path: dir.clone(),
                source,
            })?;
        tokio::spawn(push_loop(feed, groups_rx));
        Ok(Self { dir, commands })
    }

    /// Delivers every entry with LSN `>= from` to `feed` (entries are read on a blocking
    /// thread, a group at a time); returns how many.
    async fn replay(dir: &Path, from: u64, feed: &SourceFeed) -> Result<u64, WalError> {
        let (tx, mut rx) = mpsc::channel::<Result<WalRecord, WalError>>(64);
        let read_dir = dir.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || {
            let records = match wal::replay(&read_dir, from) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            for r in records {
                if tx.blocking_send(r).is_err() {
                    return;
                }
            }
        });
        let mut n = 0;
        while let Some(record) = rx.recv().await {
            let record = record?;
            if feed
                .deliver(0, entry_delivery(record.lsn, record.entry))
                .await
                .is_err()
            {
                break;
            }
            n += 1;
        }
        let _ = reader.await;
        Ok(n)
    }

    /// Appends `entry`; resolves once it is in the log (per the sync policy) and in the
    /// engine.
    pub async fn append(&self, entry: WalEntry) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        let closed = || "the write-ahead log is closed".to_string();
        match self.commands.try_send(Command::Append { entry, reply }) {
            Ok(()) => {}
            Err(std_mpsc::TrySendError::Disconnected(_)) => return Err(closed()),
            // The queue is bounded: a full one holds the request (back-pressure).
            Err(std_mpsc::TrySendError::Full(command)) => {
                let commands = self.commands.clone();
                tokio::task::spawn_blocking(move || commands.send(command))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|_| closed())?;
            }
        }
        rx.await
            .map_err(|_| "the write-ahead log stopped before the rows were stored".to_string())?
    }

    /// Deletes the segments every entry of which is below `lsn`.
    pub fn truncate_before(&self, lsn: u64) {
        let _ = self.commands.try_send(Command::Truncate(lsn));
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Stage 1: group commit. Ends when every sender is gone.
fn write_loop(
    mut writer: WalWriter,
    policy: SyncPolicy,
    rx: std_mpsc::Receiver<Command>,
    groups: mpsc::Sender<Group>,
) {
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let first = match (policy, unsynced_since) {
            (SyncPolicy::Interval(every), Some(since)) => {
                let wait = every.saturating_sub(since.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(c) => Some(c),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => break,
            },
        };
        if let (SyncPolicy::Interval(every), Some(since)) = (policy, unsynced_since) {
            if since.elapsed() >= every {
                if let Err(e) = writer.sync() {
                    tracing::error!(error = %e, "write-ahead log fsync failed");
                }
                unsynced_since = None;
            }
        }
        let Some(first) = first else { continue };
        let mut pending = vec![first];
        while pending.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => pending.push(c),
                Err(_) => break,
            }
        }
        let mut entries = Vec::new();
        let mut replies = Vec::new();
        for c in pending {
            match c {
                Command::Append { entry, reply } => {
                    entries.push(entry);
                    replies.push(reply);
                }
                Command::Truncate(lsn) => match writer.truncate_before(lsn) {
                    Ok(n) if n > 0 => {
                        tracing::debug!(segments = n, lsn, "write-ahead log truncated")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "write-ahead log truncation failed"),
                },
            }
        }
        if entries.is_empty() {
            continue;
        }
        let sync = match policy {
            SyncPolicy::Always => WalSync::Always,
            SyncPolicy::Interval(_) => WalSync::Never,
        };
        match writer.append(&entries, sync) {
            Ok(lsns) => {
                if matches!(policy, SyncPolicy::Interval(_)) && unsynced_since.is_none() {
                    unsynced_since = Some(Instant::now());
                }
                let group = Group {
                    entries: lsns
                        .zip(entries)
                        .zip(replies)
                        .map(|((lsn, e), r)| (lsn, e, r))
                        .collect(),
                };
                if groups.blocking_send(group).is_err() {
                    break;
                }
            }
            Err(e) => {
                let message = format!("write-ahead log: {e}");
                tracing::error!(error = %message, "rows not stored");
                for r in replies {
                    let _ = r.send(Err(message.clone()));
                }
            }
        }
    }
    if let Err(e) = writer.sync() {
        tracing::error!(error = %e, "write-ahead log fsync at close failed");
    }
}

/// Stage 2: deliver in LSN order, then answer.
async fn push_loop(feed: SourceFeed, mut groups: mpsc::Receiver<Group>) {
    while let Some(group) = groups.recv().await {
        for (lsn, entry, reply) in group.entries {
            let result = feed
                .deliver(0, entry_delivery(lsn, entry))
                .await
                .map_err(|e| e.to_string());
            let _ = reply.send(result);
        }
    }
}
