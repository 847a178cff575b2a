//! The report page: one self-contained HTML document (inline CSS, inline SVG, no script, a
//! Content-Security-Policy that forbids loading anything), every user-supplied text escaped.

use std::fmt::Write as _;

use super::collect::{Collected, MAX_SERIES};
use super::svg;
use crate::present::html::escape;

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #dde1e6;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
dl.meta dt{color:#5b6570}dl.meta dd{margin:0}
pre{background:#fff;border:1px solid #dde1e6;padding:10px;overflow:auto;font-size:12px}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #dde1e6;padding:3px 8px;text-align:left}th{background:#eef1f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td:first-child{border-left:4px solid #d62728}
svg.chart{display:block;width:100%;height:auto;background:#fff;border:1px solid #dde1e6;margin:4px 0}
svg text{font:11px system-ui,sans-serif;fill:#3b444d}
.note{color:#5b6570;font-size:12px}
.scroll{overflow:auto;max-height:520px}
"#;

/// The page of `c`, generated at `generated_ms`.
pub fn page(c: &Collected, generated_ms: i64) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let name = escape(&c.monitor);
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="driftwatch {}">
<title>driftwatch report: {name}</title><style>{STYLE}</style></head>
<body><main>
<h1>Monitor <span id="monitor-name">{name}</span></h1>
<dl class="meta">"#,
        env!("CARGO_PKG_VERSION")
    );
    let windowed = c.shape.is_windowed();
    let meta = [
        (
            "Time range",
            format!(
                "{} – {} (UTC)",
                svg::time_label(c.from_ms, false),
                svg::time_label(c.to_ms, false)
            ),
        ),
        (
            if windowed {
                "Windows"
            } else {
                "Distinct times"
            },
            c.windows.to_string(),
        ),
        ("Rows", c.rows.to_string()),
        (
            "Generated",
            format!("{} UTC", svg::time_label(generated_ms, false)),
        ),
    ];
    for (k, v) in meta {
        let _ = write!(h, "<dt>{k}</dt><dd>{}</dd>", escape(&v));
    }
    h.push_str("</dl>");
    match &c.definition {
        Some(d) => {
            let _ = write!(h, r#"<pre class="definition">{}</pre>"#, escape(d.trim()));
        }
        None => h.push_str(
            r#"<p class="note">The monitor's definition is not stored in the data dir (no checkpoint or catalog entry).</p>"#,
        ),
    }
    if let Some(d) = &c.drift {
        drift(&mut h, d);
    }
    if !c.charts.is_empty() {
        h.push_str(r#"<h2>Results over time</h2>"#);
    }
    for chart in &c.charts {
        let _ = write!(
            h,
            r#"<section class="measure"><h3>{}</h3>{}"#,
            escape(&chart.column),
            svg::line_chart(&chart.column, &chart.series)
        );
        if chart.hidden > 0 {
            let _ = write!(
                h,
                r#"<p class="note">{} more series not drawn (at most {MAX_SERIES} per chart{}).</p>"#,
                chart.hidden,
                if c.drift.is_some() {
                    ", the most drifted first"
                } else {
                    ", by name"
                }
            );
        }
        h.push_str("</section>");
    }
    if c.hidden_charts > 0 {
        let _ = write!(
            h,
            r#"<p class="note">{} more numeric columns not charted.</p>"#,
            c.hidden_charts
        );
    }
    if let Some(a) = &c.alerts {
        let _ = write!(
            h,
            r#"<h2>Alert rows</h2><p class="note">{} rows in the range{}.</p><div class="scroll"><table class="alerts"><thead><tr>"#,
            a.total,
            if a.total > a.rows.len() {
                format!(
                    "; the newest {} shown, {} more not listed",
                    a.rows.len(),
                    a.total - a.rows.len()
                )
            } else {
                String::new()
            }
        );
        for col in &a.columns {
            let _ = write!(h, "<th>{}</th>", escape(col));
        }
        h.push_str("</tr></thead><tbody>");
        for row in &a.rows {
            h.push_str("<tr>");
            for v in row {
                let _ = write!(h, "<td>{}</td>", escape(v));
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</main></body></html>\n");
    h
}

fn drift(h: &mut String, d: &super::collect::Drift) {
    let _ = write!(
        h,
        r#"<h2>Drift</h2><p class="note">Flag: <code>{}</code>{}. Features sorted by drifted share.</p>
<table class="drift-summary"><thead><tr><th>feature</th><th>windows</th><th>drifted</th><th>share</th><th>last score</th></tr></thead><tbody>"#,
        escape(&d.flag),
        d.score
            .as_ref()
            .map(|s| format!("; score: <code>{}</code>", escape(s)))
            .unwrap_or_default()
    );
    for f in &d.features {
        let _ = write!(
            h,
            r#"<tr class="{}" data-feature="{}"><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.1}%</td><td class="num">{}</td></tr>"#,
            if f.drifted > 0 { "drifted" } else { "stable" },
            escape(&f.name),
            escape(&f.name),
            f.windows,
            f.drifted,
            f.share() * 100.0,
            f.last_score
                .map(|s| escape(&svg::number(s)))
                .unwrap_or_else(|| "–".into())
        );
    }
    h.push_str("</tbody></table>");
    let rows: Vec<String> = d
        .features
        .iter()
        .take(super::collect::MAX_HEAT_ROWS)
        .map(|f| f.name.clone())
        .collect();
    h.push_str(
        r#"<h3>Feature × window</h3><p class="note">Red: drifted. Each column is one window"#,
    );
    h.push_str(if d.columns.len() >= super::collect::MAX_HEAT_COLUMNS {
        " or a run of consecutive windows (drifted if any of them is)"
    } else {
        ""
    });
    h.push_str(".</p>");
    if d.features.len() > rows.len() {
        let _ = write!(
            h,
            r#"<p class="note">{} less drifted features not shown.</p>"#,
            d.features.len() - rows.len()
        );
    }
    h.push_str(&svg::heat_map(&rows, &d.columns, &d.cells));
    if !d.histograms.is_empty() {
        h.push_str(r#"<h3>Drifted features against the baseline</h3><p class="note">The newest drifted window of each drifted feature, as shares of each side's count over the baseline's bins.</p>"#);
    }
    for p in &d.histograms {
        let _ = write!(
            h,
            r#"<section class="histogram-pair"><h3>{} <span class="note">[{} – {})</span></h3>{}</section>"#,
            escape(&p.feature),
            escape(&svg::time_label(p.window.0, false)),
            escape(&svg::time_label(p.window.1, false)),
            svg::histograms(&p.feature, &p.edges, &p.current, &p.baseline)
        );
    }
    if let Some(n) = &d.histogram_note {
        let _ = write!(h, r#"<p class="note">{}</p>"#, escape(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }
}
