//! Domain types shared by every Slipway crate.
//!
//! This crate owns the vocabulary of the platform: experiments, runs, metrics,
//! registered models, model versions and logged models, in the JSON shape of
//! MLflow's protos (`service.proto`, `model_registry.proto`), plus the single
//! table of error codes. It must not do I/O and must not know about HTTP
//! frameworks or databases.

pub mod error;
pub mod ids;
pub mod proto_json;
pub mod types;

pub use error::{Error, ErrorCode};
pub use types::*;

/// Milliseconds since the Unix epoch, the timestamp unit of MLflow's protocol.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
