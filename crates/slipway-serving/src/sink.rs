//! The seam between serving and the prediction log: served requests handed
//! to a [`PredictionSink`] after the client has its answer.
//!
//! Serving decides which requests are logged (the deployment's log
//! fraction, fixed per routing snapshot) and hands over what it already
//! holds — the inputs the model ran on, its outputs, the version and role
//! that answered — without waiting. What the sink does with them (buffer,
//! write Parquet, drop when full) is its own business: `submit` must never
//! block.

use crate::routing::Role;
use slipway_runtime::{ModelOutput, Tensor};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One served request (all its rows).
pub struct Prediction {
    /// Deployment name.
    pub deployment: Arc<str>,
    /// The version that answered.
    pub version: String,
    /// Its role for the request.
    pub role: Role,
    /// The request id (`x-request-id`), shared by the request's rows.
    pub request_id: Arc<str>,
    /// When the answer was ready.
    pub time: SystemTime,
    /// Time from routing to the model's answer.
    pub latency: Duration,
    /// HTTP-like status of the model run: 200, or 500 when the model failed.
    pub status: u16,
    /// The inputs the model ran on.
    pub inputs: Vec<Tensor>,
    /// Its outputs (empty when it failed).
    pub outputs: Vec<ModelOutput>,
}

/// Where logged predictions go. Implementations must not block.
pub trait PredictionSink: Send + Sync {
    /// Takes one prediction (or drops and counts it when full).
    fn submit(&self, prediction: Prediction);
}

/// A deployment's logging rule, part of its routing snapshot.
#[derive(Clone)]
pub struct LogRule {
    /// Where predictions go.
    pub sink: Arc<dyn PredictionSink>,
    /// Share of requests logged (0 < fraction ≤ 1).
    pub fraction: f64,
    /// The deployment's name, shared by its records.
    pub deployment: Arc<str>,
}

impl LogRule {
    /// Whether this request is logged.
    pub fn sample(&self) -> bool {
        self.fraction >= 1.0 || rand::random::<f64>() < self.fraction
    }
}
