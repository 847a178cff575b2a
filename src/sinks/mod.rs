//! Where monitor results go: the result store in the data dir (queryable with
//! `driftwatch query`), and later Kafka topics.

pub mod store;

pub use store::{ResultStore, StoreError, TableWriter};
