//! Command-line interface (clap): `run`, `check`, `query`, `demo`, `passwd`.

mod logging;
mod output;
mod passwd;
mod report;
mod server_args;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arrow::record_batch::RecordBatch;
use clap::{Parser, Subcommand};
use driftwatch::demo::{run_demo_with, DemoOptions, StartHook};
use driftwatch::query::{OutputFormat, QueryEngine};
use driftwatch::runtime::script::MonitorScript;
use driftwatch::runtime::{Driftwatch, Outcome, RuntimeConfig};
use driftwatch::serve::{load_with_catalog, start_flight};
use driftwatch::sinks::ResultStore;
use logging::LogFormat;
use output::ResultFormat;
use server_args::Common;

/// Streaming monitor for machine-learning models: monitors in SQL on DataFusion.
#[derive(Debug, Parser)]
#[command(name = "driftwatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Format of the logs on stderr: `text` (coloured only on a terminal, never with
    /// NO_COLOR) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sources, baselines and monitors of a SQL file until Ctrl-C, or until every
    /// bounded source has ended and its windows are flushed. Every emitted window (and
    /// row-level result) is printed on stdout; logs go to stderr.
    Run {
        /// Monitor file (CREATE SOURCE / BASELINE / MONITOR statements). Relative paths in
        /// it are read from the file's directory.
        file: PathBuf,
        /// How results are printed on stdout: `table` (each window under a header line) or
        /// `json` (one object per row and line).
        #[arg(long, value_enum, default_value_t = ResultFormat::Table)]
        format: ResultFormat,
        /// Print no results on stdout (they are still stored in the data dir).
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        common: Common,
        /// Seconds between status lines (0 disables them).
        #[arg(long, default_value_t = 10)]
        status_every: u64,
        /// Delete result files older than this many hours.
        #[arg(long)]
        retention_hours: Option<u64>,
        /// Time between checkpoints (e.g. `5s`, `500ms`), or `off` (nothing is restored and
        /// HTTP acknowledgements are not durable: benchmarks only).
        #[arg(long, default_value = "5s", value_parser = parse_interval)]
        checkpoint_interval: Interval,
        /// Start over: discard checkpoints, write-ahead logs and committed Kafka offsets, and
        /// move earlier results aside.
        #[arg(long)]
        from_scratch: bool,
    },
    /// Validate a SQL file: parse it, profile its baselines and compile its monitors, without
    /// reading any input.
    Check {
        /// Monitor file. Relative paths in it are read from the file's directory.
        file: PathBuf,
    },
    /// Run SQL over the data dir: monitor results (`<monitor>`, `<monitor>_late`),
    /// dead letters (`<source>_errors`), baselines (`baselines.<name>`) and files named by
    /// path in FROM ('current.parquet', CSV, JSON lines).
    Query {
        /// The SQL query.
        sql: String,
        /// Data dir.
        #[arg(long, env = "DRIFTWATCH_DATA_DIR", default_value = "driftwatch-data")]
        data_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Run the Iris example with generated traffic that drifts after a while.
    Demo {
        /// Seconds of traffic.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Seconds before the petal features start to drift (default: a third of the run).
        #[arg(long)]
        drift_after: Option<u64>,
        /// Requests per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Make auth-file entries: a user with an argon2id password hash, or a random static
    /// token (stored as a digest), written into the file with owner-only permissions.
    Passwd(passwd::PasswdArgs),
    /// Write one self-contained HTML report of a monitor over a time range (charts, drift
    /// heat map, histograms against the baseline, alert rows), read from the data dir.
    Report(report::ReportArgs),
}

/// A checkpoint interval, `None` when off.
#[derive(Debug, Clone, Copy)]
struct Interval(Option<Duration>);

fn parse_interval(s: &str) -> Result<Interval, String> {
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        return Ok(Interval(None));
    }
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. '5s', '500ms', 'off')"))?;
    if d < Duration::from_millis(10) {
        return Err("a checkpoint interval under 10 ms would checkpoint constantly".into());
    }
    Ok(Interval(Some(d)))
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM (systemd,
/// Kubernetes). A second signal ends the process at once.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping (checkpointing open windows); again to quit at once"),
            _ = term => tracing::info!("SIGTERM: stopping (checkpointing open windows)"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: stopping (checkpointing open windows); again to quit at once");
    }
}

/// Entry point: runs the command and maps errors to exit code 1.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::report(&e, cli.log_format);
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            file,
            format,
            quiet,
            common,
            status_every,
            retention_hours,
            checkpoint_interval,
            from_scratch,
        } => {
            // Parse errors are found before the data dir is touched.
            let script = MonitorScript::read(&file)?;
            let serving = common.serving(Some(&file))?;
            let flight = serving.flight;
            let created = first_missing(&common.data_dir);
            let system = Driftwatch::open(RuntimeConfig {
                data_dir: common.data_dir,
                http_listen: common.http_listen,
                retention: retention_hours.map(|h| Duration::from_secs(h * 3600)),
                checkpoint_interval: checkpoint_interval.0,
                from_scratch,
                http: serving.http,
                offline: false,
            })?;
            let mut system = if quiet {
                system
            } else {
                system.with_observer(Arc::new(move |monitor: &str, batch: &RecordBatch| {
                    output::print_result(monitor, batch, format)
                }))
            };
            driftwatch::web::install(&system);
            let loaded = match load_with_catalog(&mut system, &script).await {
                Ok(outcomes) => system.start().await.map(|()| outcomes),
                Err(e) => Err(e),
            };
            let outcomes = match loaded {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    // Nothing ran: a data dir this run created is removed again.
                    system.discard().await;
                    if let Some(dir) = created {
                        if let Err(rm) = std::fs::remove_dir_all(&dir) {
                            tracing::warn!(dir = %dir.display(), error = %rm, "could not remove the data dir this run created");
                        }
                    }
                    return Err(e.into());
                }
            };
            for outcome in outcomes {
                print_outcome(outcome)?;
            }
            if let Some(f) = &flight {
                start_flight(&system, f, serving.policy).await?;
            }
            let shutdown = system.shutdown_token();
            tokio::spawn(async move {
                stop_signal().await;
                shutdown.cancel();
                stop_signal().await;
                tracing::warn!("second signal: exiting without waiting for the final checkpoint");
                std::process::exit(130);
            });
            let every = (status_every > 0).then(|| Duration::from_secs(status_every));
            system.wait(every).await?;
            tracing::info!("done: {}", system.status_line());
            Ok(())
        }
        Command::Check { file } => {
            let script = MonitorScript::read(&file)?;
            let scratch = tempfile::tempdir().context("creating a scratch data dir")?;
            let mut system = Driftwatch::open(RuntimeConfig {
                data_dir: scratch.path().to_path_buf(),
                offline: true,
                ..RuntimeConfig::default()
            })?;
            let result = system.execute_monitor_script(&script).await;
            system.discard().await;
            let outcomes = result?;
            println!("{}: OK ({} statements)", file.display(), outcomes.len());
            Ok(())
        }
        Command::Query {
            sql,
            data_dir,
            format,
        } => {
            let store = ResultStore::new(data_dir);
            let output = QueryEngine::execute(&store, &sql).await?;
            let text = QueryEngine::render_output(&output, format)?;
            write_stdout(&format!("{text}\n"))
        }
        Command::Passwd(args) => passwd::run(args),
        Command::Report(args) => report::run(args).await,
        Command::Demo {
            duration,
            drift_after,
            rate,
            common,
        } => {
            let serving = common.serving(None)?;
            let (flight, policy) = (serving.flight, serving.policy);
            let opts = DemoOptions {
                duration: Duration::from_secs(duration),
                drift_after: Duration::from_secs(drift_after.unwrap_or(duration / 3)),
                rate,
                data_dir: common.data_dir,
                http_listen: common.http_listen,
                print: true,
            };
            let hook: Option<StartHook> = flight.map(|f| -> StartHook {
                Box::new(move |system: &Driftwatch| {
                    let serving = start_flight(system, &f, policy.clone());
                    // Bind before the traffic starts; the server runs until the demo ends.
                    Box::pin(async move {
                        serving.await?;
                        Ok(())
                    })
                })
            });
            let summary = run_demo_with(opts, hook).await?;
            println!(
                "\n{} requests posted. Windows flagged DRIFT (w_norm > 0.3) per feature:",
                summary.rows_posted
            );
            println!(
                "{:<14} {:>16} {:>16}",
                "feature", "before drift", "after drift"
            );
            let features: std::collections::BTreeSet<&String> =
                summary.before.keys().chain(summary.after.keys()).collect();
            for f in features {
                let b = summary.before.get(f).copied().unwrap_or_default();
                let a = summary.after.get(f).copied().unwrap_or_default();
                println!("{f:<14} {:>10}/{:<5} {:>10}/{:<5}", b.1, b.0, a.1, a.0);
            }
            println!("drift detected on: {:?}", summary.drifted_features());
            println!(
                "outliers flagged: {} (readings in millimetres injected: {})",
                summary.outliers_flagged, summary.outliers_injected
            );
            Ok(())
        }
    }
}

/// Writes `text` to stdout; a reader that went away (`driftwatch query … | head`) is not an
/// error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// The outermost directory of `path` that does not exist yet (what creating `path` creates).
fn first_missing(path: &Path) -> Option<PathBuf> {
    let mut missing = None;
    let mut p = Some(path);
    while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing = Some(dir.to_path_buf());
        p = dir.parent();
    }
    missing
}

fn print_outcome(outcome: Outcome) -> anyhow::Result<()> {
    match outcome {
        Outcome::Done(what) => tracing::info!("created {what}"),
        Outcome::Rows(batch) => write_stdout(&format!(
            "{}\n",
            arrow::util::pretty::pretty_format_batches(&[batch])?
        ))?,
    }
    Ok(())
}
