//! Per-monitor bounds on window state ([`StateLimits`]), set with
//! `CREATE MONITOR m WITH (max_state = '256MB', max_groups = 100000, max_open_windows = 10000)`.
//!
//! The window operator checks them after every batch it aggregates, next to the reservation it
//! holds in the DataFusion memory pool for the same bytes; crossing one fails the monitor with
//! [`StateLimits`]' message (the process and the other monitors keep running).

use super::usage::StateUsage;

/// Upper bounds on one monitor's open window state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Bytes of open state: accumulators, group keys and kept pane states.
    pub max_state_bytes: usize,
    /// Distinct group keys in one open pane or among open sessions.
    pub max_groups: usize,
    /// Open panes (TUMBLE/HOP) or open sessions (SESSION).
    pub max_open_windows: usize,
}

impl StateLimits {
    /// Default `max_state`: 256 MiB, so four busy monitors fit a 2 GB machine.
    pub const DEFAULT_MAX_STATE_BYTES: usize = 256 << 20;
    /// Default `max_groups`.
    pub const DEFAULT_MAX_GROUPS: usize = 100_000;
    /// Default `max_open_windows`.
    pub const DEFAULT_MAX_OPEN_WINDOWS: usize = 100_000;
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            max_state_bytes: Self::DEFAULT_MAX_STATE_BYTES,
            max_groups: Self::DEFAULT_MAX_GROUPS,
            max_open_windows: Self::DEFAULT_MAX_OPEN_WINDOWS,
        }
    }
}

impl StateLimits {
    /// Checks `usage` against the bounds; the error message names the bound crossed, the
    /// current value, the bound and the `CREATE MONITOR … WITH (…)` option that raises it.
    pub fn check(&self, usage: &StateUsage) -> Result<(), String> {
        if usage.bytes > self.max_state_bytes {
            return Err(format!(
                "window state is {}, above max_state = {}; raise it with WITH (max_state = '{}') \
                 or group by fewer keys / shorter windows",
                format_bytes(usage.bytes),
                format_bytes(self.max_state_bytes),
                option_bytes(self.max_state_bytes.saturating_mul(2).max(usage.bytes)),
            ));
        }
        if usage.groups > self.max_groups {
            return Err(format!(
                "window state has {} groups, above max_groups = {}; raise it with \
                 WITH (max_groups = {}) or group by fewer keys",
                usage.groups,
                self.max_groups,
                self.max_groups.saturating_mul(2).max(usage.groups),
            ));
        }
        if usage.open_windows > self.max_open_windows {
            return Err(format!(
                "window state has {} open windows, above max_open_windows = {}; raise it with \
                 WITH (max_open_windows = {}) or use a shorter window, a longer slide or a \
                 smaller allowed_lateness",
                usage.open_windows,
                self.max_open_windows,
                self.max_open_windows
                    .saturating_mul(2)
                    .max(usage.open_windows),
            ));
        }
        Ok(())
    }
}

/// Message for a memory pool that refused the state's reservation.
pub(super) fn pool_refused(bytes: usize, error: &datafusion::common::DataFusionError) -> String {
    format!(
        "window state is {}, more than the memory pool grants ({error}); lower max_state, \
         group by fewer keys / shorter windows, or give the process more memory",
        format_bytes(bytes)
    )
}

/// `bytes` for people: `270.1 MiB`, `256 MiB`, `812 B`.
pub fn format_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `bytes` as a `max_state` option value (`'512MB'`-style, rounded up to whole units).
fn option_bytes(bytes: usize) -> String {
    const MIB: usize = 1 << 20;
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{}GB", bytes >> 30)
    } else if bytes >= MIB {
        format!("{}MB", bytes.div_ceil(MIB))
    } else {
        format!("{}KB", bytes.div_ceil(1024).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_limit_value_bound_and_option() {
        let limits = StateLimits::default();
        let over = StateUsage {
            bytes: 283_220_378,
            groups: 1,
            open_windows: 1,
        };
        let msg = limits.check(&over).unwrap_err();
        assert_eq!(
            msg,
            "window state is 270.1 MiB, above max_state = 256 MiB; raise it with \
             WITH (max_state = '512MB') or group by fewer keys / shorter windows"
        );
        let groups = StateUsage {
            bytes: 10,
            groups: 100_001,
            open_windows: 1,
        };
        assert!(limits
            .check(&groups)
            .unwrap_err()
            .starts_with("window state has 100001 groups, above max_groups = 100000"));
        assert!(limits.check(&StateUsage::default()).is_ok());
        assert_eq!(format_bytes(812), "812 B");
    }
}
