//! `driftwatch report`: writes one self-contained HTML report of a monitor (see
//! [`driftwatch::report`]).

use std::path::PathBuf;
use std::time::Duration;

use driftwatch::report::{write_report, Range, ReportOptions};

/// Arguments of `driftwatch report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The monitor (its result table in the data dir).
    pub monitor: String,
    /// Cover the windows that ended within this long before the newest stored result (e.g.
    /// `1h`, `30m`, `2d`); default: everything stored.
    #[arg(long, value_parser = parse_since, conflicts_with_all = ["from", "to"])]
    pub since: Option<Duration>,
    /// Start of the range (RFC 3339, e.g. `2026-01-01T12:00:00Z`; no offset means UTC).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<i64>,
    /// End of the range (RFC 3339, inclusive).
    #[arg(long, value_parser = parse_time)]
    pub to: Option<i64>,
    /// Data dir.
    #[arg(long, env = "DRIFTWATCH_DATA_DIR", default_value = "driftwatch-data")]
    pub data_dir: PathBuf,
    /// The HTML file to write.
    #[arg(long, short, default_value = "report.html")]
    pub output: PathBuf,
}

fn parse_since(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. '1h', '30m', '2d')"))?;
    if d.is_zero() {
        return Err("a zero range covers nothing".into());
    }
    if d.as_millis() > i64::MAX as u128 {
        return Err("too long".into());
    }
    Ok(d)
}

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{e} (RFC 3339, e.g. '2026-01-01T12:00:00Z')"))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "before 1970".to_string())?
        .as_millis();
    i64::try_from(ms).map_err(|_| "too far in the future".to_string())
}

/// Runs `driftwatch report`.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let range = match (args.since, args.from, args.to) {
        (Some(d), _, _) => Range::Since(d),
        (None, None, None) => Range::All,
        (None, from, to) => Range::Between { from, to },
    };
    let summary = write_report(&ReportOptions {
        monitor: args.monitor,
        data_dir: args.data_dir,
        range,
        output: args.output,
    })
    .await?;
    println!(
        "{}: {} rows, {} windows, {} bytes",
        summary.path.display(),
        summary.rows,
        summary.windows,
        summary.bytes
    );
    Ok(())
}
