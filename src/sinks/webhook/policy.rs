//! When a webhook notification is due: the firing / resolved state machine with cooldown,
//! per (monitor, group key), in event time (window time) so that a replay of the same
//! windows after a crash makes the same decisions. Pure: no I/O, no clock.
//!
//! # Definitions
//!
//! Every row a monitor emits is an *alert row* (filter with `HAVING` / `WHERE`) for its
//! group key, in the window `[start, end)`. The *horizon* `H` is how far the monitor's
//! output is complete: every window ending at or before `H` has been handed over.
//!
//! - **firing**: the first alert row of an idle key notifies `firing` (window of that row).
//!   Further alert rows of a firing key notify nothing.
//! - **resolved**: a firing key whose last alert row ended at `E` is resolved at
//!   `R = E + resolve_after` (default: that row's window length, i.e. the next tumbling
//!   window) once the windows up to `R` were emitted without an alert row for it — that is
//!   when the horizon reaches `R`, or when its next alert row ends after `R`. One
//!   `resolved` notification, stamped `R`.
//! - **cooldown**: an alert row of an idle key ending before `R + cooldown` (`R` of its
//!   last `resolved` notification) is *suppressed*: the key fires silently (no `firing`).
//!   If it still alerts at or after `R + cooldown`, `firing` is notified then; if it
//!   resolves before, nothing is notified for the whole flap.
//! - **replay**: alert rows ending at or before the horizon, or at or before the key's last
//!   alert row, were decided already and are ignored; so are horizons not past the current.
//!
//! Decisions depend only on the alert rows and the windows' ends, never on when the
//! horizon is learned, so a replay (different checkpoint moments) decides the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The key started alerting.
    Firing,
    /// The key stopped alerting.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// The cooldown and resolution settings (milliseconds of event time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// After a `resolved` at `R`, alert rows ending before `R + cooldown` are suppressed.
    pub cooldown_ms: i64,
    /// A firing key resolves this long after the end of its last alert row (None: that
    /// row's window length).
    pub resolve_after_ms: Option<i64>,
}

/// The state of one group key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// Between its first alert row and its resolution.
    pub firing: bool,
    /// Whether this firing episode was notified (false: suppressed by the cooldown).
    pub notified: bool,
    /// Start of the last alert row's window.
    pub last_start: i64,
    /// End of the last alert row's window.
    pub last_end: i64,
    /// Event time of the last `resolved` notification.
    pub last_resolved: Option<i64>,
}

/// One notification decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The group key (canonical text).
    pub key: String,
    /// Firing or resolved.
    pub status: Status,
    /// Window of the alert row (firing) or of the last alert row (resolved).
    pub window_start: i64,
    /// See `window_start`.
    pub window_end: i64,
    /// Event time of the decision: the window end (firing) or `R` (resolved).
    pub at: i64,
    /// Index of the alert row in the batch that caused it (firing only).
    pub row: Option<usize>,
}

/// The persistent part of a [`Machine`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineState {
    /// Every window ending at or before it was decided.
    pub horizon: i64,
    /// Keys that alerted and whose cooldown has not ended.
    pub keys: BTreeMap<String, KeyState>,
}

/// The state machine of one monitor's keys.
#[derive(Debug, Clone)]
pub struct Machine {
    policy: Policy,
    state: MachineState,
}

impl Machine {
    /// A machine continuing from `state` (`MachineState::default()` with `horizon =
    /// i64::MIN` for a new monitor, see [`Machine::new`]).
    pub fn with_state(policy: Policy, state: MachineState) -> Self {
        Self { policy, state }
    }

    /// A machine that decided nothing yet.
    pub fn new(policy: Policy) -> Self {
        Self::with_state(
            policy,
            MachineState {
                horizon: i64::MIN,
                keys: BTreeMap::new(),
            },
        )
    }

    /// The state to persist.
    pub fn state(&self) -> &MachineState {
        &self.state
    }

    /// Replaces the state of one key (a decision record read back from the outbox).
    pub fn set_key(&mut self, key: &str, state: KeyState) {
        self.state.keys.insert(key.to_string(), state);
    }

    /// The state of `key`, if it alerted and its cooldown has not ended.
    pub fn key(&self, key: &str) -> Option<&KeyState> {
        self.state.keys.get(key)
    }

    fn resolve_at(&self, k: &KeyState) -> i64 {
        let after = self
            .policy
            .resolve_after_ms
            .unwrap_or(k.last_end.saturating_sub(k.last_start))
            .max(1);
        k.last_end.saturating_add(after)
    }

    fn resolve(key: &str, k: &mut KeyState, at: i64, out: &mut Vec<Decision>) {
        k.firing = false;
        if k.notified {
            k.last_resolved = Some(at);
            out.push(Decision {
                key: key.to_string(),
                status: Status::Resolved,
                window_start: k.last_start,
                window_end: k.last_end,
                at,
                row: None,
            });
        }
        k.notified = false;
    }

    /// An alert row of `key` in the window `[start, end)`, row `row` of its batch. Rows
    /// must come in order of `end` (windows are emitted in order).
    pub fn alert(&mut self, key: &str, start: i64, end: i64, row: usize, out: &mut Vec<Decision>) {
        if end <= self.state.horizon {
            return;
        }
        let cooldown = self.policy.cooldown_ms;
        let mut k = match self.state.keys.get(key) {
            Some(k) if end <= k.last_end => return,
            Some(k) => k.clone(),
            None => KeyState {
                firing: false,
                notified: false,
                last_start: start,
                last_end: end,
                last_resolved: None,
            },
        };
        if k.firing {
            let r = self.resolve_at(&k);
            if end > r {
                Self::resolve(key, &mut k, r, out);
            }
        }
        let cooled = k
            .last_resolved
            .is_none_or(|r| end >= r.saturating_add(cooldown));
        if !k.firing {
            k.firing = true;
            k.notified = false;
        }
        if !k.notified && cooled {
            k.notified = true;
            out.push(Decision {
                key: key.to_string(),
                status: Status::Firing,
                window_start: start,
                window_end: end,
                at: end,
                row: Some(row),
            });
        }
        k.last_start = start;
        k.last_end = end;
        self.state.keys.insert(key.to_string(), k);
    }

    /// The horizon reached `horizon`: resolves the firing keys whose resolution time it
    /// passed, and forgets idle keys whose cooldown ended.
    pub fn progress(&mut self, horizon: i64, out: &mut Vec<Decision>) {
        if horizon <= self.state.horizon {
            return;
        }
        self.state.horizon = horizon;
        let cooldown = self.policy.cooldown_ms;
        let mut due = Vec::new();
        for (key, k) in &self.state.keys {
            if k.firing {
                let r = self.resolve_at(k);
                if r <= horizon {
                    due.push((key.clone(), r));
                }
            }
        }
        for (key, r) in due {
            if let Some(k) = self.state.keys.get_mut(&key) {
                Self::resolve(&key, k, r, out);
            }
        }
        // An idle key past its cooldown behaves as a key never seen: forget it.
        self.state.keys.retain(|_, k| {
            k.firing
                || k.last_end > horizon
                || k.last_resolved
                    .is_some_and(|r| r.saturating_add(cooldown) > horizon)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 15_000;

    fn policy(cooldown_ms: i64) -> Policy {
        Policy {
            cooldown_ms,
            resolve_after_ms: None,
        }
    }

    /// Feeds windows `0..n` of length W; `alerting(i)` lists the keys alerting in window
    /// i; the horizon advances after every window (as checkpoints would).
    fn run(
        m: &mut Machine,
        windows: std::ops::Range<i64>,
        alerting: impl Fn(i64) -> Vec<&'static str>,
        progress_every: i64,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        for i in windows {
            for (row, key) in alerting(i).into_iter().enumerate() {
                m.alert(key, i * W, (i + 1) * W, row, &mut out);
            }
            if progress_every > 0 && i % progress_every == 0 {
                m.progress((i + 1) * W, &mut out);
            }
        }
        out
    }

    #[test]
    fn sustained_drift_is_one_firing_and_one_resolved() {
        let mut m = Machine::new(policy(30 * 60_000));
        // 240 windows of drift on petal_length, then 20 quiet windows.
        let out = run(
            &mut m,
            0..260,
            |i| {
                if i < 240 {
                    vec!["petal_length"]
                } else {
                    vec![]
                }
            },
            1,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!((out[0].status, out[0].at), (Status::Firing, W));
        assert_eq!(out[1].status, Status::Resolved);
        assert_eq!(out[1].window_end, 240 * W, "last alert window");
        assert_eq!(
            out[1].at,
            241 * W,
            "resolved when the next window passed without alert"
        );
    }

    #[test]
    fn decisions_do_not_depend_on_when_the_horizon_is_learned() {
        let alerting = |i: i64| match i {
            0..=9 | 12..=14 | 40..=41 => vec!["a", "b"],
            20..=22 => vec!["b"],
            _ => vec![],
        };
        let mut every = Machine::new(policy(0));
        let mut reference = run(&mut every, 0..60, alerting, 1);
        every.progress(100 * W, &mut reference);
        for step in [0, 2, 7, 13] {
            let mut m = Machine::new(policy(0));
            let mut out = run(&mut m, 0..60, alerting, step);
            m.progress(100 * W, &mut out);
            let key = |d: &Decision| (d.key.clone(), d.at, d.status.as_str());
            let mut a: Vec<_> = out.iter().map(key).collect();
            let mut b: Vec<_> = reference.iter().map(key).collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "progress every {step} windows");
        }
        // a: fires 0, resolves 11, fires 12, resolves 16, fires 40, resolves 43.
        let a: Vec<_> = reference
            .iter()
            .filter(|d| d.key == "a")
            .map(|d| (d.status, d.at / W))
            .collect();
        use Status::*;
        assert_eq!(
            a,
            [
                (Firing, 1),
                (Resolved, 11),
                (Firing, 13),
                (Resolved, 16),
                (Firing, 41),
                (Resolved, 43)
            ]
        );
    }

    #[test]
    fn flapping_within_the_cooldown_is_suppressed() {
        // Resolved at window 11; with a 20-window cooldown the flaps at 12..=14 and 20..=22
        // notify nothing; the alert at 40 (after 11 + 20) fires again.
        let alerting = |i: i64| match i {
            0..=9 | 12..=14 | 20..=22 | 40 => vec!["a"],
            _ => vec![],
        };
        let mut m = Machine::new(policy(20 * W));
        let out = run(&mut m, 0..60, alerting, 1);
        let got: Vec<_> = out.iter().map(|d| (d.status, d.at / W)).collect();
        use Status::*;
        assert_eq!(
            got,
            [(Firing, 1), (Resolved, 11), (Firing, 41), (Resolved, 42)]
        );
        // A flap that outlasts the cooldown is notified when the cooldown ends.
        let mut m = Machine::new(policy(5 * W));
        let out = run(
            &mut m,
            0..40,
            |i| {
                if i < 3 || (5..30).contains(&i) {
                    vec!["a"]
                } else {
                    vec![]
                }
            },
            1,
        );
        let got: Vec<_> = out.iter().map(|d| (d.status, d.at / W)).collect();
        assert_eq!(
            got,
            [(Firing, 1), (Resolved, 4), (Firing, 9), (Resolved, 31)]
        );
    }

    #[test]
    fn a_replay_of_decided_windows_decides_nothing() {
        let alerting = |i: i64| {
            if (3..50).contains(&i) {
                vec!["a", "b"]
            } else {
                vec![]
            }
        };
        let mut m = Machine::new(policy(0));
        let first = run(&mut m, 0..30, alerting, 4);
        assert_eq!(first.len(), 2, "a and b fired: {first:?}");
        // Persist, restart and replay from window 20 (an older checkpoint).
        let mut again = Machine::with_state(policy(0), m.state().clone());
        let replay = run(&mut again, 20..30, alerting, 4);
        assert!(replay.is_empty(), "{replay:?}");
        assert_eq!(again.state(), m.state());
        // Going on decides once more: both resolve after window 49.
        let rest = run(&mut again, 30..60, alerting, 4);
        assert_eq!(rest.len(), 2);
        assert!(rest
            .iter()
            .all(|d| d.status == Status::Resolved && d.at == 51 * W));
        let mut none = Vec::new();
        again.progress(55 * W, &mut none);
        again.alert("a", 40 * W, 41 * W, 0, &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn idle_keys_are_forgotten_after_their_cooldown() {
        let mut m = Machine::new(policy(10 * W));
        let mut out = Vec::new();
        m.alert("a", 0, W, 0, &mut out);
        m.progress(5 * W, &mut out);
        assert!(m.key("a").is_some(), "in cooldown");
        m.progress(12 * W, &mut out);
        assert!(m.key("a").is_none());
        assert_eq!(out.len(), 2);
    }
}
