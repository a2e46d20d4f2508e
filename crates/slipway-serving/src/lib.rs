//! Slipway's deployment lifecycle, with no HTTP in it.
//!
//! * [`spec`]: [`DeploymentSpec`], what a user asks a deployment to serve,
//!   and its validation.
//! * [`loader`]: [`Loader`], which turns a registry version into a running
//!   [`ModelWorker`](slipway_runtime::ModelWorker): files fetched from the
//!   artifact store into a content-addressed cache, verified against the
//!   digests recorded at upload, loaded through the
//!   [`Runtime`](slipway_runtime::Runtime) trait (so tests can use a fake
//!   model), warmed up.
//! * [`deployment`]: [`Deployment`], its [`DeploymentState`] and the
//!   versions it has loaded.
//! * [`manager`]: [`DeploymentManager`], every deployment of the process kept
//!   in step with the registry and the rollouts.
//! * [`routing`]: traffic splits, sticky assignment, copies to a shadow.
//! * [`sink`]: the [`PredictionSink`] served requests are logged to.
//! * [`stats`]: bounded live figures per role, comparisons of two versions.
//! * [`rollout`], [`analysis`], [`controller`]: rollout plans and records,
//!   the checks that judge a step, and the controller that acts on them.
//!
//! The HTTP routes of `slipway-server` call into this crate; it never
//! depends on them.

pub mod analysis;
pub mod controller;
pub mod deployment;
pub mod loader;
pub mod manager;
pub mod rollout;
pub mod routing;
pub mod sink;
pub mod spec;
pub mod stats;

pub use controller::Action;
pub use deployment::{Deployment, DeploymentState, DeploymentStatus, LoadedVersion};
pub use loader::{LoadError, Loader, LoaderSettings, VersionFiles};
pub use manager::{DeploymentManager, Readiness, ServingSettings};
pub use rollout::{Mode, RolloutPlan, RolloutState, Strategy, Thresholds, VersionRef};
pub use routing::{Role, Routed};
pub use sink::{LogRule, Prediction, PredictionSink};
pub use spec::{
    validate_name, DeploymentSpec, DriftSpec, FeatureDrift, MonitoringSpec, RangePolicy,
};
