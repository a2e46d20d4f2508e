//! Pure (no I/O) codecs for Slipway's inference protocols, on
//! [`slipway_runtime::Tensor`]s:
//!
//! * [`v2`]: Open Inference Protocol (KServe V2) REST JSON, and the binary
//!   tensor data extension (`Inference-Header-Content-Length`) used by
//!   `tritonclient.http`;
//! * [`mlflow`]: MLflow's scoring protocol (`/invocations`: `dataframe_split`,
//!   `dataframe_records`, `instances`, `inputs`, `text/csv`) and its
//!   `{"predictions": ...}` responses;
//! * [`data`]: element conversions shared by both (JSON arrays, raw
//!   little-endian bytes).
//!
//! Every error is a [`ProtocolError`] naming the offending field; map it with
//! [`ProtocolError::http_status`].

pub mod data;
pub mod error;
pub mod mlflow;
mod scoring_fast;
pub mod v2;
mod v2_one_pass;

pub use error::ProtocolError;
