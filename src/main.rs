//! The `driftwatch` command line: run, check, query, demo.

mod cli;

/// mimalloc, as DataFusion's own CLI: it reuses freed memory instead of returning large
/// blocks to the OS, so the big short-lived buffers of a query (decoded columns, window
/// values, sorted runs) do not page-fault afresh each time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::main().await
}
