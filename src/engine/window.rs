//! Window definitions and the pane arithmetic shared by the input and the window operator.
//!
//! Tumbling and hopping windows are cut into *panes* of `gcd(slide, size)` milliseconds:
//! rows are aggregated once into their pane, and a window is the merge of the partial states
//! of the panes it covers, so overlapping hopping windows never re-aggregate raw rows.
//! Windows are aligned to the Unix epoch, like Flink's and RisingWave's.

/// The kind of window a monitor aggregates over, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`.
    Tumble {
        /// Window length.
        size: i64,
    },
    /// Windows of `size` starting every `slide`.
    Hop {
        /// Window length.
        size: i64,
        /// Distance between window starts.
        slide: i64,
    },
    /// Per-key sessions closed by a gap of inactivity.
    Session {
        /// Inactivity gap that ends a session.
        gap: i64,
    },
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Floor division that rounds towards negative infinity.
pub fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

impl WindowKind {
    /// Pane length for tumbling and hopping windows.
    pub fn pane(&self) -> Option<i64> {
        match *self {
            WindowKind::Tumble { size } => Some(size),
            WindowKind::Hop { size, slide } => Some(gcd(size, slide)),
            WindowKind::Session { .. } => None,
        }
    }

    /// Start of the pane holding event time `ts`.
    pub fn pane_start(&self, ts: i64) -> i64 {
        match self.pane() {
            Some(pane) => floor_div(ts, pane) * pane,
            None => ts,
        }
    }

    /// End (exclusive) of the first window a row at `ts` belongs to: once that window has
    /// been emitted, a row at `ts` is late. Sessions: `ts + gap`.
    pub fn first_window_end(&self, ts: i64) -> i64 {
        match *self {
            WindowKind::Tumble { size } => floor_div(ts, size) * size + size,
            WindowKind::Hop { size, slide } => {
                // Smallest window start w (a multiple of slide) with w + size > ts.
                let w = floor_div(ts - size, slide) * slide + slide;
                w + size
            }
            WindowKind::Session { gap } => ts + gap,
        }
    }

    /// For hopping and tumbling windows: the (start, end) of every window holding the pane
    /// starting at `pane_start`, in order of their end.
    pub fn windows_of_pane(&self, pane_start: i64) -> Vec<(i64, i64)> {
        match *self {
            WindowKind::Tumble { size } => vec![(pane_start, pane_start + size)],
            WindowKind::Hop { size, slide } => {
                let pane = gcd(size, slide);
                let first = self.first_window_end(pane_start) - size;
                let mut out = Vec::new();
                let mut w = first;
                while w <= pane_start && pane_start + pane <= w + size {
                    out.push((w, w + size));
                    w += slide;
                }
                out
            }
            WindowKind::Session { .. } => Vec::new(),
        }
    }

    /// Window length (sessions: the gap).
    pub fn size(&self) -> i64 {
        match *self {
            WindowKind::Tumble { size } | WindowKind::Hop { size, .. } => size,
            WindowKind::Session { gap } => gap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumble_panes_are_windows() {
        let w = WindowKind::Tumble { size: 15_000 };
        assert_eq!(w.pane_start(16_000), 15_000);
        assert_eq!(w.pane_start(-1), -15_000);
        assert_eq!(w.first_window_end(16_000), 30_000);
        assert_eq!(w.windows_of_pane(15_000), vec![(15_000, 30_000)]);
    }

    #[test]
    fn hop_pane_is_gcd_and_belongs_to_size_over_slide_windows() {
        let w = WindowKind::Hop {
            size: 15_000,
            slide: 5_000,
        };
        assert_eq!(w.pane(), Some(5_000));
        assert_eq!(w.first_window_end(12_000), 15_000);
        assert_eq!(
            w.windows_of_pane(10_000),
            vec![(0, 15_000), (5_000, 20_000), (10_000, 25_000)]
        );
        let odd = WindowKind::Hop {
            size: 10_000,
            slide: 4_000,
        };
        assert_eq!(odd.pane(), Some(2_000));
        // Pane [6000, 8000) is in windows [0,10000) and [4000,14000) only.
        assert_eq!(
            odd.windows_of_pane(6_000),
            vec![(0, 10_000), (4_000, 14_000)]
        );
        assert_eq!(odd.first_window_end(6_500), 10_000);
    }
}
