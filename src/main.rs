//! The `driftwatch` command line: run, check, query, demo.

mod cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::main().await
}
