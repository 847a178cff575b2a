//! Sources: where rows come from (files, HTTP, Kafka), how they are decoded into Arrow, and
//! how they are handed to the engine ([`feed::SourceFeed`]) with their event-time
//! watermarks ([`watermark`]).

pub mod connector;
pub mod decode;
pub mod feed;
pub mod file;
pub mod http;
pub mod kafka;
pub mod position;
pub mod rejected;
pub mod schema;
pub mod watermark;

pub use connector::{Connector, ConnectorError, ConnectorSpec, SourceOptions};
pub use feed::{Delivery, FeedMessage, RejectMessage, SourceBarrier, SourceFeed};
pub use position::SourcePosition;
pub use rejected::{PartitionId, RejectedRecord};
pub use schema::{EventTime, SourceSchema, TimeFormat, EVENT_TIME_TYPE};
