//! Presenting results to people: what a monitor's result columns mean for a chart, a heat map
//! or a notification. Shared by the live page ([`crate::web`]), `driftwatch report` and the
//! webhook alerts, so the three read a monitor's output the same way.

pub mod definition;
pub mod html;
pub mod shape;

pub use shape::{FlagColumn, ResultShape, TimeColumns};
