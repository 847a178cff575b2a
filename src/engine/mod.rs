//! The streaming engine: a monitor's unbounded input (with the watermarks its sources
//! generate, [`crate::sources::watermark`]), the window operator and the planner that
//! compiles monitors into DataFusion physical plans.

pub mod cluster_plan;
pub mod detect;
pub mod input;
pub mod memory;
pub mod observe;
pub mod planner;
pub mod progress;
pub mod snapshot;
pub mod streaming_filter;
pub mod window;
pub mod window_agg;

pub use planner::{plan_monitor, streaming_session, MonitorPlan, MonitorPlanOptions, PlanError};
pub use window::WindowKind;
