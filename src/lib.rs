//! Driftwatch: a streaming monitor for machine-learning models.
//!
//! Model servers log every inference to Kafka or post it over HTTP; users write monitors in
//! SQL (windowed statistics, drift against a baseline, per-request outlier scores) and
//! Driftwatch compiles each monitor into a DataFusion streaming plan.
//!
//! Architecture:
//! - [`sources`]: connectors (file, HTTP, Kafka) decode input into Arrow, generate its
//!   event-time watermarks and feed the engine;
//! - [`engine`]: monitor input, the streaming window operator, the planner;
//! - [`sinks`]: where results go (the result store in the data dir, Kafka, webhooks);
//! - [`runtime`]: the catalog of sources, baselines and monitors, and the tasks running them;
//! - [`checkpoint`]: consistent snapshots of state and source positions, restored after a
//!   crash or restart;
//! - [`wal`]: the write-ahead log behind the HTTP ingest's acknowledgements;
//! - [`durable`]: atomic, fsynced file writes and the data-dir lock;
//! - [`metrics`]: counters and health of sources and monitors;
//! - [`ops`]: `/metrics` (Prometheus), `/health`, `/ready` and the readiness behind gRPC health;
//! - [`present`]: the roles of result columns for charts, heat maps and notifications;
//! - [`web`]: the live page on the HTTP port (monitor list, charts, drift heat map, alerts);
//! - [`report`]: `driftwatch report`, one self-contained HTML file per monitor and range;
//! - [`query`]: ad-hoc SQL over results, baselines and files;
//! - [`serve`]: the Arrow Flight SQL server's backend over a running system;
//! - [`demo`]: the Iris example with generated traffic.

pub mod checkpoint;
pub mod cluster;
pub mod demo;
pub mod durable;
pub mod engine;
pub mod metrics;
pub mod ops;
pub mod present;
pub mod query;
pub mod report;
pub mod runtime;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod wal;
pub mod web;
