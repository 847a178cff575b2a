//! Inline SVG charts of a report: line charts over time, the drift heat map and histograms
//! of a window against its baseline. Plain geometry written as text: no font stack, no
//! script, every label escaped (names and values are user data).

use std::fmt::Write as _;

use crate::present::html::escape;

/// Colours of the series, cycled (with a dash pattern from the second cycle on).
const PALETTE: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
/// Width of every chart (the page scales it to its column).
const WIDTH: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

/// One line of a chart: its label and its points (time in epoch ms, value).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label (the group / feature).
    pub name: String,
    /// Points in time order; non-finite values break the line.
    pub points: Vec<(i64, f64)>,
}

/// A heat map cell: feature row `row`, window column `col`.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    /// Row (feature) index.
    pub row: usize,
    /// Column (window bucket) index.
    pub col: usize,
    /// Any window of the cell drifted.
    pub drifted: bool,
}

/// Keeps at most `max` points (at least 4): the series is cut into `max / 2` buckets of
/// consecutive points and each keeps its minimum and maximum (in time order), so spikes
/// survive the downsampling.
pub fn downsample(points: &[(i64, f64)], max: usize) -> Vec<(i64, f64)> {
    let max = max.max(4);
    if points.len() <= max {
        return points.to_vec();
    }
    let buckets = max / 2;
    let mut out = Vec::with_capacity(buckets * 2);
    for b in 0..buckets {
        let lo = b * points.len() / buckets;
        let hi = ((b + 1) * points.len() / buckets).max(lo + 1);
        let chunk = &points[lo..hi];
        let finite = || chunk.iter().enumerate().filter(|(_, p)| p.1.is_finite());
        let min = finite()
            .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map(|(i, _)| i);
        let max = finite()
            .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map(|(i, _)| i);
        match (min, max) {
            (Some(a), Some(b)) if a == b => out.push(chunk[a]),
            (Some(a), Some(b)) => {
                out.push(chunk[a.min(b)]);
                out.push(chunk[a.max(b)]);
            }
            // Only non-finite values: keep one, so the line breaks there.
            _ => out.push(chunk[0]),
        }
    }
    out
}

/// "Nice" tick values covering `[lo, hi]` (about `n` of them).
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= n as f64)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..=n * 2)
        .map(|i| first + i as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .collect()
}

/// A number for an axis label or a tooltip.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

/// Epoch ms as `YYYY-MM-DD HH:MM:SS` (UTC), or `short` as `HH:MM:SS`.
pub fn time_label(ms: i64, short: bool) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) if short => t.format("%H:%M:%S").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => ms.to_string(),
    }
}

/// A line chart of `series` over time, with axes, ticks and a legend; `title` labels the
/// chart for screen readers.
pub fn line_chart(title: &str, series: &[Series]) -> String {
    let height = 260.0;
    let (pw, ph) = (WIDTH - LEFT - RIGHT, height - TOP - BOTTOM);
    let finite = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.1.is_finite());
    let (mut t0, mut t1, mut y0, mut y1) = (i64::MAX, i64::MIN, f64::INFINITY, f64::NEG_INFINITY);
    for &(t, v) in finite {
        t0 = t0.min(t);
        t1 = t1.max(t);
        y0 = y0.min(v);
        y1 = y1.max(v);
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart line-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{}">"#,
        escape(title)
    );
    if t0 > t1 {
        svg.push_str(
            r#"<text x="20" y="40" class="empty">no finite values in the range</text></svg>"#,
        );
        return svg;
    }
    if y1 - y0 <= f64::EPSILON * y1.abs().max(1.0) {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        y0 -= pad;
        y1 += pad;
    } else {
        let pad = (y1 - y0) * 0.05;
        y0 -= pad;
        y1 += pad;
    }
    let span_t = (t1 - t0).max(1) as f64;
    let x = |t: i64| LEFT + (t - t0) as f64 / span_t * pw;
    let y = |v: f64| TOP + (1.0 - (v - y0) / (y1 - y0)) * ph;
    // Axes and grid.
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>"##
    );
    for v in ticks(y0, y1, 5) {
        grid_line(&mut svg, pw, y(v), &number(v));
    }
    let short = t1 - t0 < 86_400_000;
    for i in 0..=4 {
        let t = t0 + ((t1 - t0) as f64 * i as f64 / 4.0) as i64;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            x(t),
            TOP + ph + 16.0,
            escape(&time_label(t, short))
        );
    }
    // Lines, then the legend.
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let dash = if i >= PALETTE.len() {
            r#" stroke-dasharray="6 3""#
        } else {
            ""
        };
        let mut d = String::with_capacity(s.points.len() * 16);
        let mut pen_down = false;
        for &(t, v) in &s.points {
            if !v.is_finite() {
                pen_down = false;
                continue;
            }
            let _ = write!(
                d,
                "{}{:.1} {:.1}",
                if pen_down { " L" } else { " M" },
                x(t),
                y(v)
            );
            pen_down = true;
        }
        let _ = write!(
            svg,
            r#"<path class="series" data-series="{}" d="{}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}><title>{}</title></path>"#,
            escape(&s.name),
            d.trim_start(),
            escape(&s.name)
        );
        // A single point would be invisible as a path: mark every point of short series.
        if s.points.len() <= 2 {
            for &(t, v) in s.points.iter().filter(|p| p.1.is_finite()) {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    x(t),
                    y(v)
                );
            }
        }
        let ly = TOP + 10.0 + i as f64 * 16.0;
        if ly < height - 8.0 {
            let lx = LEFT + pw + 14.0;
            let _ = write!(
                svg,
                r#"<g class="legend-item"><line x1="{lx}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"{dash}/><text x="{:.1}" y="{:.1}" class="legend">{}</text></g>"#,
                lx + 18.0,
                lx + 24.0,
                ly + 4.0,
                escape(&truncate(&s.name, 24))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `s` cut to `n` characters with an ellipsis.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// The feature × window heat map: one row per feature, one column per window bucket
/// (`columns` holds each column's first window start and last window end); drifted cells
/// are red and carry `class="cell drifted"`, the others grey.
pub fn heat_map(features: &[String], columns: &[(i64, i64)], cells: &[Cell]) -> String {
    let label_w = 150.0;
    let row_h = 16.0;
    let pw = WIDTH - label_w - 20.0;
    let cw = pw / columns.len().max(1) as f64;
    let height = TOP + features.len() as f64 * row_h + BOTTOM;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart heat-map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="drift per feature and window">"#
    );
    for (r, f) in features.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
            label_w - 6.0,
            TOP + r as f64 * row_h + row_h * 0.7,
            escape(&truncate(f, 22))
        );
    }
    for c in cells {
        let (Some(f), Some(&(start, end))) = (features.get(c.row), columns.get(c.col)) else {
            continue;
        };
        let (class, fill) = if c.drifted {
            ("cell drifted", "#d62728")
        } else {
            ("cell", "#d9dee3")
        };
        let _ = write!(
            svg,
            r##"<rect class="{class}" data-feature="{}" x="{:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{fill}" stroke="#fff" stroke-width="0.5"><title>{} [{} – {}){}</title></rect>"##,
            escape(f),
            label_w + c.col as f64 * cw,
            TOP + c.row as f64 * row_h,
            cw.max(0.5),
            row_h - 1.0,
            escape(f),
            escape(&time_label(start, false)),
            escape(&time_label(end, false)),
            if c.drifted { ": drifted" } else { "" }
        );
    }
    if let (Some(first), Some(last)) = (columns.first(), columns.last()) {
        let y = TOP + features.len() as f64 * row_h + 16.0;
        let _ = write!(
            svg,
            r#"<text x="{label_w}" y="{y:.1}" class="tick">{}</text><text x="{:.1}" y="{y:.1}" text-anchor="end" class="tick">{}</text>"#,
            escape(&time_label(first.0, false)),
            label_w + pw,
            escape(&time_label(last.1, false))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Bars of a window's counts next to the baseline's over the same bins (`edges`, one more
/// than the counts), both as shares of their totals so the shapes compare.
pub fn histograms(feature: &str, edges: &[f64], window: &[i64], baseline: &[u64]) -> String {
    let height = 220.0;
    let (pw, ph) = (WIDTH - LEFT - RIGHT, height - TOP - BOTTOM);
    let bins = window
        .len()
        .min(baseline.len())
        .min(edges.len().saturating_sub(1));
    let wt: i64 = window.iter().take(bins).map(|c| (*c).max(0)).sum();
    let bt: u64 = baseline.iter().take(bins).sum();
    let share = |c: f64, t: f64| if t > 0.0 { c / t } else { 0.0 };
    let top = (0..bins)
        .map(|i| {
            share(window[i].max(0) as f64, wt as f64).max(share(baseline[i] as f64, bt as f64))
        })
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart histogram" data-feature="{}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="histogram of {} against the baseline">"#,
        escape(feature),
        escape(feature)
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>"##
    );
    for v in ticks(0.0, top, 4) {
        let label = format!("{}%", number(v * 100.0));
        grid_line(&mut svg, pw, TOP + (1.0 - v / top) * ph, &label);
    }
    let bw = pw / bins.max(1) as f64;
    for i in 0..bins {
        let x = LEFT + i as f64 * bw;
        for (k, (value, class, fill)) in [
            (
                share(window[i].max(0) as f64, wt as f64),
                "bar window",
                "#d62728",
            ),
            (
                share(baseline[i] as f64, bt as f64),
                "bar baseline",
                "#1f77b4",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let h = value / top * ph;
            let _ = write!(
                svg,
                r#"<rect class="{class}" x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{fill}" fill-opacity="0.8"><title>[{}, {}): {}%</title></rect>"#,
                x + bw * (0.1 + 0.4 * k as f64),
                TOP + ph - h,
                (bw * 0.4).max(0.5),
                h,
                escape(&number(edges[i])),
                escape(&number(edges[i + 1])),
                escape(&number(value * 100.0))
            );
        }
        let step = bins.div_ceil(8).max(1);
        if i % step == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
                TOP + ph + 16.0,
                escape(&number(edges[i]))
            );
        }
    }
    if bins > 0 {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            LEFT + pw,
            TOP + ph + 16.0,
            escape(&number(edges[bins]))
        );
    }
    let lx = LEFT + pw + 14.0;
    for (k, (label, fill)) in [
        (format!("window (n={wt})"), "#d62728"),
        (format!("baseline (n={bt})"), "#1f77b4"),
    ]
    .iter()
    .enumerate()
    {
        let ly = TOP + 10.0 + k as f64 * 18.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{:.1}" width="14" height="10" fill="{fill}"/><text x="{:.1}" y="{:.1}" class="legend">{}</text>"#,
            ly - 8.0,
            lx + 20.0,
            ly + 1.0,
            escape(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A horizontal grid line across a plot `pw` wide at height `y`, labelled on the left.
fn grid_line(svg: &mut String, pw: f64, y: f64, label: &str) {
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
        LEFT + pw,
        LEFT - 6.0,
        y + 4.0,
        escape(label)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_extremes_and_the_cap() {
        let mut pts: Vec<(i64, f64)> = (0..10_000).map(|i| (i, (i % 10) as f64)).collect();
        pts[5_003].1 = 1e6;
        let d = downsample(&pts, 1000);
        assert!(d.len() <= 1000, "{}", d.len());
        assert!(d.iter().any(|p| p.1 == 1e6), "the spike survives");
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "time order kept");
        assert_eq!(downsample(&pts[..10], 1000).len(), 10);
    }

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        let t = ticks(0.0, 1.0, 5);
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.len() >= 3 && t.len() <= 11, "{t:?}");
        assert_eq!(ticks(3.0, 3.0, 5), vec![3.0]);
    }

    #[test]
    fn labels_are_escaped() {
        let s = line_chart(
            "<b>",
            &[Series {
                name: "<script>x</script>".into(),
                points: vec![(0, 1.0), (1000, f64::NAN), (2000, 2.0)],
            }],
        );
        assert!(!s.contains("<script>"), "{s}");
        assert!(s.contains("&lt;script&gt;"));
        let h = heat_map(
            &["<i>".into()],
            &[(0, 10)],
            &[Cell {
                row: 0,
                col: 0,
                drifted: true,
            }],
        );
        assert!(
            h.contains(r#"class="cell drifted" data-feature="&lt;i&gt;""#),
            "{h}"
        );
    }

    #[test]
    fn histogram_bars_are_shares_of_each_side() {
        let s = histograms("x", &[0.0, 1.0, 2.0], &[3, 1], &[10, 30]);
        assert_eq!(s.matches(r#"class="bar window""#).count(), 2);
        assert_eq!(s.matches(r#"class="bar baseline""#).count(), 2);
        assert!(s.contains("75%") && s.contains("25%"), "{s}");
    }
}
