//! `driftwatch report`: one self-contained HTML file summarising a monitor over a time range
//! (charts of every numeric result column per group, and for drift monitors a per-feature
//! summary, a feature × window heat map and the drifted windows' histograms against the
//! baseline), read offline from the data dir, to share like an Evidently report.
//!
//! - [`collect`]: reading the result store, the monitor's definition and baseline bins;
//! - [`svg`]: the charts, as inline SVG;
//! - [`html`]: the page.

pub mod collect;
pub mod html;
pub mod svg;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sinks::ResultStore;

/// Which results a report covers. Windows count by their end, rows of row-level monitors by
/// their event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// Everything stored.
    All,
    /// The last `Duration` before the newest stored result (not before now: a monitor that
    /// stopped still gets its last hour).
    Since(Duration),
    /// From and to (epoch ms, inclusive); an open end is the oldest / newest result.
    Between {
        /// Start, epoch ms.
        from: Option<i64>,
        /// End, epoch ms.
        to: Option<i64>,
    },
}

/// What to report and where.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The monitor (its result table).
    pub monitor: String,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The time range.
    pub range: Range,
    /// The HTML file to write.
    pub output: PathBuf,
}

/// What a written report covers.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    /// The file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// Rows covered.
    pub rows: usize,
    /// Windows (or distinct event times) covered.
    pub windows: usize,
    /// Range covered, epoch ms.
    pub from_ms: i64,
    /// End of the range, epoch ms.
    pub to_ms: i64,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No such result table.
    #[error("no monitor '{monitor}' in the data dir {dir}; {}", known_list(.known))]
    UnknownMonitor {
        /// Asked for.
        monitor: String,
        /// The data dir.
        dir: String,
        /// Tables that exist.
        known: Vec<String>,
    },
    /// The table has no readable rows at all.
    #[error("monitor '{0}' has no results yet")]
    NoResults(String),
    /// Nothing in the range.
    #[error("monitor '{monitor}' has no results between {from} and {to} UTC (its results span {first} – {last}); widen --since or --from/--to")]
    Empty {
        /// Monitor.
        monitor: String,
        /// Range start.
        from: String,
        /// Range end.
        to: String,
        /// Oldest result.
        first: String,
        /// Newest result.
        last: String,
    },
    /// A bad range.
    #[error("invalid range: {0}")]
    Range(String),
    /// Reading the store failed.
    #[error("reading the results of '{monitor}': {message}")]
    Read {
        /// Monitor.
        monitor: String,
        /// What failed.
        message: String,
    },
    /// Rendering a value failed.
    #[error("rendering the report: {0}")]
    Render(String),
    /// Writing the file failed.
    #[error("writing {}: {source}", .path.display())]
    Write {
        /// The output path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        return "it has no result tables yet (run a monitor file into it first)".into();
    }
    const SHOWN: usize = 30;
    let mut list = known[..known.len().min(SHOWN)].join(", ");
    if known.len() > SHOWN {
        list.push_str(&format!(" and {} more", known.len() - SHOWN));
    }
    format!("monitors and tables there: {list}")
}

/// Builds the report of `options.monitor` and writes it to `options.output` (atomically:
/// a failed run leaves no half-written file).
pub async fn write_report(options: &ReportOptions) -> Result<ReportSummary, ReportError> {
    if let Range::Between {
        from: Some(f),
        to: Some(t),
    } = options.range
    {
        if f > t {
            return Err(ReportError::Range("--from is after --to".into()));
        }
    }
    let html = render(options).await?;
    let c = html.1;
    write_file(&options.output, html.0.as_bytes())?;
    tracing::info!(monitor = %options.monitor, path = %options.output.display(), rows = c.rows, windows = c.windows, "report written");
    Ok(ReportSummary {
        path: options.output.clone(),
        bytes: html.0.len(),
        rows: c.rows,
        windows: c.windows,
        from_ms: c.from_ms,
        to_ms: c.to_ms,
    })
}

/// The report page of `options` (not written) and what it covers.
pub async fn render(options: &ReportOptions) -> Result<(String, collect::Collected), ReportError> {
    let store = ResultStore::new(&options.data_dir);
    let collected = collect::collect(&store, &options.monitor, &options.range).await?;
    let now = chrono::Utc::now().timestamp_millis();
    Ok((html::page(&collected, now), collected))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
