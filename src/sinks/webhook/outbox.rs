//! The durable local outbox of a webhook sink: `<data dir>/webhooks/<monitor>/`.
//!
//! - `outbox.log`: append-only JSON lines, one record each — a notification decided
//!   (`n`: sequence number, id, body, the key's state after the decision), delivered
//!   (`d`) or dropped (`x`: outbox full, or refused for good by the receiver). Written
//!   with one `write` per record and fsynced before a notification is handed to the
//!   delivery task, and after every delivery record.
//! - `state.json`: the state machine's state (see [`super::policy`]) and the sequence
//!   number it covers, written atomically at every checkpoint flush. Records from that
//!   sequence number on update it when the outbox is opened again.
//!
//! Opening reads both back: undelivered notifications are delivered again (in order), a
//! delivered one never; a torn last line (a crash mid-write) is cut off. The log is
//! compacted to the undelivered records after a state write when it grew past
//! [`COMPACT_BYTES`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::policy::{KeyState, MachineState};
use crate::durable;

/// Size of the log beyond which it is rewritten to the undelivered records.
pub const COMPACT_BYTES: u64 = 1 << 20;

const LOG: &str = "outbox.log";
const STATE: &str = "state.json";

/// Error of the outbox, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("webhook outbox {path}: {source}")]
pub struct OutboxError {
    path: PathBuf,
    source: std::io::Error,
}

/// A notification not delivered yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Position in the log.
    pub seq: u64,
    /// Stable id (`Idempotency-Key`).
    pub id: String,
    /// The body without `sent_at`.
    pub body: Value,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Record {
    #[serde(rename = "n")]
    Notify {
        seq: u64,
        id: String,
        body: Value,
        key: String,
        state: KeyState,
    },
    #[serde(rename = "d")]
    Delivered { seq: u64 },
    #[serde(rename = "x")]
    Dropped { seq: u64, why: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    covers: u64,
    machine: MachineState,
}

/// The open outbox of one monitor.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    log: File,
    log_bytes: u64,
    next_seq: u64,
    pending: VecDeque<Pending>,
    unsynced: bool,
    max_pending: usize,
    dropped: u64,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir` and returns the state machine's state to
    /// continue from (`None`: nothing decided yet). At most `max_pending` notifications are
    /// kept undelivered (see [`Outbox::append`]).
    pub fn open(
        dir: &Path,
        max_pending: usize,
    ) -> Result<(Self, Option<MachineState>), OutboxError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OutboxError { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let state_path = dir.join(STATE);
        let mut covers = 0;
        let mut machine = match std::fs::read(&state_path) {
            Ok(bytes) => {
                let s: StateFile = serde_json::from_slice(&bytes).map_err(|e| OutboxError {
                    path: state_path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })?;
                covers = s.covers;
                Some(s.machine)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(&state_path)(e)),
        };
        let log_path = dir.join(LOG);
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut next_seq = covers;
        let mut good_bytes = 0u64;
        if let Ok(file) = File::open(&log_path) {
            let mut reader = BufReader::new(file);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(err(&log_path))?;
                if n == 0 {
                    break;
                }
                let record = match (line.last() == Some(&b'\n'))
                    .then(|| serde_json::from_slice::<Record>(&line))
                {
                    Some(Ok(r)) => r,
                    _ => {
                        tracing::warn!(
                            path = %log_path.display(), offset = good_bytes,
                            "webhook outbox: cutting off a torn or unreadable record (and \
                             what follows it)"
                        );
                        break;
                    }
                };
                good_bytes += n as u64;
                match record {
                    Record::Notify {
                        seq,
                        id,
                        body,
                        key,
                        state,
                    } => {
                        if seq >= covers {
                            machine
                                .get_or_insert_with(|| MachineState {
                                    horizon: i64::MIN,
                                    ..MachineState::default()
                                })
                                .keys
                                .insert(key, state);
                        }
                        next_seq = next_seq.max(seq + 1);
                        pending.push_back(Pending { seq, id, body });
                    }
                    Record::Delivered { seq } | Record::Dropped { seq, .. } => {
                        pending.retain(|p| p.seq != seq);
                    }
                }
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(err(&log_path))?;
        if log.metadata().map_err(err(&log_path))?.len() > good_bytes {
            log.set_len(good_bytes).map_err(err(&log_path))?;
            log.sync_all().map_err(err(&log_path))?;
        }
        durable::sync_dir(dir).map_err(err(dir))?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                log,
                log_bytes: good_bytes,
                next_seq,
                pending,
                unsynced: false,
                max_pending: max_pending.max(1),
                dropped: 0,
            },
            machine,
        ))
    }

    fn write(&mut self, record: &Record) -> Result<(), OutboxError> {
        let mut line = serde_json::to_vec(record).map_err(|e| self.io_error(e.into()))?;
        line.push(b'\n');
        self.log.write_all(&line).map_err(|e| self.io_error(e))?;
        self.log_bytes += line.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    fn io_error(&self, source: std::io::Error) -> OutboxError {
        OutboxError {
            path: self.dir.join(LOG),
            source,
        }
    }

    /// Appends a decided notification (not synced: see [`Outbox::sync`]). A notification
    /// with the id of one still undelivered is not appended twice. When `max_pending` are
    /// undelivered already, the oldest is dropped and returned (the newest say more about
    /// now than the oldest; refusing would hold the monitor back).
    pub fn append(
        &mut self,
        id: String,
        body: Value,
        key: &str,
        state: &KeyState,
    ) -> Result<Option<Pending>, OutboxError> {
        if self.pending.iter().any(|p| p.id == id) {
            return Ok(None);
        }
        let seq = self.next_seq;
        self.write(&Record::Notify {
            seq,
            id: id.clone(),
            body: body.clone(),
            key: key.to_string(),
            state: state.clone(),
        })?;
        self.next_seq += 1;
        self.pending.push_back(Pending { seq, id, body });
        if self.pending.len() > self.max_pending {
            if let Some(oldest) = self.pending.front().cloned() {
                self.settle(oldest.seq, Some("outbox full".into()))?;
                self.dropped += 1;
                return Ok(Some(oldest));
            }
        }
        Ok(None)
    }

    /// Forces appended records to disk.
    pub fn sync(&mut self) -> Result<(), OutboxError> {
        if self.unsynced {
            self.log.sync_data().map_err(|e| self.io_error(e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Records that notification `seq` was delivered (`why = None`) or dropped for good,
    /// durably.
    pub fn settle(&mut self, seq: u64, why: Option<String>) -> Result<(), OutboxError> {
        let Some(at) = self.pending.iter().position(|p| p.seq == seq) else {
            return Ok(());
        };
        match why {
            None => self.write(&Record::Delivered { seq })?,
            Some(why) => self.write(&Record::Dropped { seq, why })?,
        }
        self.pending.remove(at);
        self.sync()
    }

    /// The oldest undelivered notification.
    pub fn front(&self) -> Option<&Pending> {
        self.pending.front()
    }

    /// Undelivered notifications.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Notifications dropped because the outbox was full, since it was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes the state machine's state durably (covering every record so far) and
    /// compacts the log when it grew past [`COMPACT_BYTES`].
    pub fn save_state(&mut self, machine: &MachineState) -> Result<(), OutboxError> {
        self.sync()?;
        let path = self.dir.join(STATE);
        let file = StateFile {
            covers: self.next_seq,
            machine: machine.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| self.io_error(e.into()))?;
        durable::write_atomic(&path, &bytes).map_err(|source| OutboxError { path, source })?;
        if self.log_bytes > COMPACT_BYTES {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the log to the undelivered records (all covered by the state file).
    fn compact(&mut self) -> Result<(), OutboxError> {
        let path = self.dir.join(LOG);
        let mut bytes = Vec::new();
        for p in &self.pending {
            let record = Record::Notify {
                seq: p.seq,
                id: p.id.clone(),
                body: p.body.clone(),
                // Covered by the state file: never applied to the state machine again.
                key: String::new(),
                state: KeyState {
                    firing: false,
                    notified: false,
                    last_start: 0,
                    last_end: 0,
                    last_resolved: None,
                },
            };
            serde_json::to_writer(&mut bytes, &record).map_err(|e| self.io_error(e.into()))?;
            bytes.push(b'\n');
        }
        durable::write_atomic(&path, &bytes).map_err(|source| OutboxError {
            path: path.clone(),
            source,
        })?;
        self.log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| OutboxError { path, source })?;
        self.log_bytes = bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ks(end: i64) -> KeyState {
        KeyState {
            firing: true,
            notified: true,
            last_start: end - 10,
            last_end: end,
            last_resolved: None,
        }
    }

    #[test]
    fn undelivered_survive_a_reopen_and_delivered_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (mut o, state) = Outbox::open(dir.path(), 100).unwrap();
        assert!(state.is_none());
        for i in 0..3 {
            o.append(
                format!("id{i}"),
                json!({"i": i}),
                &format!("k{i}"),
                &ks(i * 100),
            )
            .unwrap();
        }
        o.sync().unwrap();
        let first = o.front().unwrap().seq;
        o.settle(first, None).unwrap();
        drop(o);
        // A torn record at the end (a crash mid-write) is cut off.
        let log = dir.path().join(LOG);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"t\":\"d\",\"se").unwrap();
        drop(f);
        let (o, state) = Outbox::open(dir.path(), 100).unwrap();
        let ids: Vec<_> = o.pending.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["id1", "id2"]);
        let keys = state.unwrap().keys;
        assert_eq!(keys.len(), 3, "key states of decision records are restored");
        assert_eq!(keys["k2"].last_end, 200);
    }

    #[test]
    fn the_state_file_covers_older_records_and_compaction_keeps_pending() {
        let dir = tempfile::tempdir().unwrap();
        let (mut o, _) = Outbox::open(dir.path(), 100).unwrap();
        o.append("a".into(), json!(1), "k", &ks(10)).unwrap();
        let mut machine = MachineState {
            horizon: 50,
            ..MachineState::default()
        };
        machine.keys.insert("k".into(), ks(40));
        o.save_state(&machine).unwrap();
        o.compact().unwrap();
        o.append("b".into(), json!(2), "k", &ks(60)).unwrap();
        o.sync().unwrap();
        drop(o);
        let (o, state) = Outbox::open(dir.path(), 100).unwrap();
        let state = state.unwrap();
        assert_eq!(state.horizon, 50);
        assert_eq!(state.keys["k"].last_end, 60, "the newer record applies");
        assert_eq!(o.pending(), 2);
        assert_eq!(o.front().unwrap().id, "a");
    }

    #[test]
    fn a_full_outbox_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut o, _) = Outbox::open(dir.path(), 2).unwrap();
        assert!(o
            .append("a".into(), json!(1), "k", &ks(1))
            .unwrap()
            .is_none());
        assert!(o
            .append("a".into(), json!(1), "k", &ks(1))
            .unwrap()
            .is_none());
        assert_eq!(o.pending(), 1, "same id not appended twice");
        o.append("b".into(), json!(2), "k", &ks(2)).unwrap();
        let dropped = o.append("c".into(), json!(3), "k", &ks(3)).unwrap();
        assert_eq!(dropped.unwrap().id, "a");
        assert_eq!(o.dropped(), 1);
        drop(o);
        let (o, _) = Outbox::open(dir.path(), 2).unwrap();
        let ids: Vec<_> = o.pending.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
    }
}
