//! Scale-out over Kafka: several instances share a monitor's source partitions and produce
//! exactly the results of one instance (the Kafka Streams model: Kafka does partition
//! assignment, rebalancing and the durable shuffle).
//!
//! A windowed monitor runs in two stages:
//!
//! - **Stage 1**, one *task* per (monitor, source partition), on whichever instance owns the
//!   partition: the monitor's plan over that partition alone, with its window operator in
//!   partial mode ([`crate::engine::window_agg::WindowMode::Partial`]). When the partition's own watermark
//!   passes a pane's end, the pane's partial accumulator state (the same `state()` arrays a
//!   checkpoint keeps) is published to the monitor's repartition topic, split by group key
//!   over its partitions. The task also publishes its watermark to every repartition
//!   partition. Lateness is decided by the partition's own watermark, which depends only on
//!   the partition's records in offset order, so it does not depend on which instance ran the
//!   task or when.
//! - **Stage 2**, one task per repartition partition, spread over the instances by a consumer
//!   group: it collects the partials of each pane from every source partition, merges them in
//!   source-partition order ([`crate::engine::window_agg::WindowMode::MergePartials`]) and emits a window
//!   when the minimum watermark over the source partitions has passed its end.
//!
//! Because a pane's state is a function of each partition's records and the merge order is a
//! function of the partition numbers, the results are identical, bit for bit, however many
//! instances ran and however partitions moved between them.
//!
//! - [`lanes`]: stage 1's input, a partitioned subscription of the source feed split into
//!   one lane per source partition, each carrying that partition's own watermark;
//! - [`exchange`]: the records of the repartition topic (partial panes, watermarks), encoded
//!   as Arrow IPC with a validated header;
//! - [`topics`]: the per-monitor topics of a cluster (repartition, results, changelog),
//!   checked against Kafka's naming rules, and the repartition topic's minimum retention;
//! - [`progress`]: stage 2's view of the shuffle: the watermark over source partitions,
//!   duplicate partials (a partition re-published after it moved), and the offset from which
//!   a restarted stage-2 task must re-read.

pub mod exchange;
pub mod lanes;
pub mod progress;
pub mod topics;
