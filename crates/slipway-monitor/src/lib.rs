//! Slipway's monitoring of served models, with no HTTP in it.
//!
//! * [`log`]: the prediction log, served requests written as Parquet files
//!   to the artifact store ([`files`] has the layout).
//! * [`columns`]: the log's columns, named from the model's signature.
//! * [`frame`]: reading rows back, as JSON, CSV or Parquet.
//! * [`monitor`]: [`Monitor`], the queries: rows back, a version's
//!   reference (uploaded, next to its `MLmodel`, or its first logged rows),
//!   drift, feedback and performance, gauges, retention.
//! * [`drift`]: drift of live traffic against the reference, per column,
//!   with `slipway-stats` (Evidently 0.7's tests) over bounded windows.
//! * [`feedback`]: ground truth joined with logged predictions, and the
//!   accuracy or error it gives.
//! * [`retention`]: deleting old hours.

mod background;
pub mod columns;
pub mod drift;
pub mod feedback;
pub mod files;
pub mod frame;
pub mod log;
pub mod monitor;
pub mod retention;

pub use log::{LogSettings, PredictionLog};
pub use monitor::{
    DriftReport, Monitor, MonitorSettings, PredictionQuery, PredictionRows, ReferenceInfo,
};
