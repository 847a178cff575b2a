//! Arrow Flight SQL server for Driftwatch.
//!
//! Dashboards, scripts and notebooks (pyarrow, ADBC, JDBC via the Flight SQL driver) reach a
//! running Driftwatch over Arrow Flight SQL:
//!
//! - **read-only queries** (`CommandStatementQuery`, prepared statements with `?` or `$1`
//!   parameters, see [`placeholders`]) over every table the [`Backend`]'s DataFusion session knows: monitor
//!   results, `<monitor>_late`, `<source>_errors`, `baselines.<name>` and the live `system.*`
//!   tables — SELECT, EXPLAIN, SHOW and DESCRIBE only, no files ([`sandbox`]), each in a
//!   session of its own under a memory cap and a time limit on threads of their own
//!   ([`limits`]);
//! - **catalog metadata** (`GetCatalogs`, `GetDbSchemas`, `GetTables` with schemas,
//!   `GetTableTypes`, `GetSqlInfo`), enough for ADBC's `get_objects` / `get_table_schema`;
//!   for plain Flight clients, `ListFlights` lists the tables and a path descriptor names one;
//! - **hints**: a query naming a missing table gets "did you mean '…'?" ([`suggest`]);
//! - **DDL** (`CREATE` / `DROP SOURCE | BASELINE | MONITOR`) as `CommandStatementUpdate`, or as
//!   a query (it then returns a one-row `message` table); admins only when auth is on;
//! - **live follow** of a monitor: DoGet with the ticket bytes `follow:<monitor>` or the query
//!   `SELECT * FROM follow('<monitor>')` streams every window's rows the moment it is emitted
//!   (see [`follow`] for the slow-subscriber policy);
//! - **security**: basic → bearer-token handshake with users and roles from a file
//!   ([`auth`]), optional TLS, loopback-only unless auth is on or `insecure_public` is set
//!   ([`config`]).
//!
//! This crate does not know the engine: the binary implements [`Backend`].

pub mod auth;
pub mod backend;
pub mod config;
pub mod follow;
pub mod limits;
pub mod metadata;
pub mod placeholders;
pub mod sandbox;
pub mod server;
pub mod service;
pub mod statement;
pub mod suggest;

pub use auth::{AuthError, Authenticator, Role};
pub use backend::{Backend, BackendError};
pub use config::{ConfigError, FlightConfig, TlsFiles};
pub use limits::QueryLimits;
pub use server::{serve, serve_with, CallObserver, FlightServer, ServeError, ServeOptions};

/// Re-exported so clients (tests, benches) use the exact versions the server was built with.
pub use arrow_flight;
/// Re-exported for clients (channels, TLS settings).
pub use tonic;
