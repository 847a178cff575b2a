//! Logs and errors of the command line: everything on stderr (stdout is for results), as
//! text (coloured only on a terminal, never with `NO_COLOR`) or as JSON lines.

use std::io::IsTerminal;

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; coloured when stderr is a terminal and `NO_COLOR` is not set.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`), for log
    /// collectors.
    Json,
}

/// Whether text logs are coloured: only on a terminal, and never when `NO_COLOR` is set to
/// a non-empty value (<https://no-color.org>).
pub fn use_colour(is_terminal: bool, no_color: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), stderr only.
pub fn init(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let no_color = std::env::var("NO_COLOR").ok();
            builder
                .with_ansi(use_colour(
                    std::io::stderr().is_terminal(),
                    no_color.as_deref(),
                ))
                .init();
        }
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(false)
            .init(),
    }
}

/// The error and its causes in one line, each message once: a message that another one of
/// the chain already holds (an error repeating its source's text, a context naming the file
/// its cause names too) is left out.
pub fn error_line(err: &anyhow::Error) -> String {
    let messages: Vec<String> = err
        .chain()
        .map(|c| c.to_string().trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    let repeated = |i: usize| {
        messages.iter().enumerate().any(|(j, other)| {
            j != i && other.contains(&messages[i]) && (other.len() > messages[i].len() || j < i)
        })
    };
    (0..messages.len())
        .filter(|&i| !repeated(i))
        .map(|i| messages[i].as_str())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Reports a failed command on stderr, in the log format chosen.
pub fn report(err: &anyhow::Error, format: LogFormat) {
    let line = error_line(err);
    match format {
        LogFormat::Text => eprintln!("error: {line}"),
        LogFormat::Json => tracing::error!(error = %line, "driftwatch failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_message_appears_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file 'x.csv'");
        let e = anyhow::Error::new(Repeats(io())).context("m.sql");
        assert_eq!(error_line(&e), "m.sql: no such file 'x.csv'");
        let e = anyhow::Error::new(io()).context("reading 'x.csv'");
        assert_eq!(error_line(&e), "reading 'x.csv': no such file 'x.csv'");
        let e = anyhow::anyhow!("m.sql: baseline 'b': bad").context("m.sql");
        assert_eq!(error_line(&e), "m.sql: baseline 'b': bad");
        let e = anyhow::anyhow!("bad").context("bad").context("loading");
        assert_eq!(error_line(&e), "loading: bad");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("")));
        assert!(!use_colour(true, Some("1")));
        assert!(!use_colour(false, None));
    }
}
