//! Slipway's model runtime layer.
//!
//! * [`tensor`]: [`DataType`] (V2 names), [`Tensor`], [`TensorData`].
//! * [`signature`]: [`Signature`] / [`TensorSpec`] from an MLflow `MLmodel`
//!   file or the model graph, and optional [`FeatureRanges`].
//! * [`validate`]: [`validate`] / [`conform`] requests against a signature
//!   under a [`Policy`], with precise [`ValidationError`]s.
//! * [`runtime`]: the [`Runtime`] and [`Model`] traits, [`RuntimeError`]
//!   (with [`RuntimeError::http_status`]).
//! * [`onnx`] (feature `onnx`, on by default): [`OnnxRuntime`], ONNX Runtime
//!   through the `ort` crate, loading `libonnxruntime` dynamically.
//! * [`worker`]: [`ModelWorker`], a dedicated thread per model with a bounded
//!   queue and dynamic batching.
//!
//! Typical serving path:
//!
//! ```no_run
//! # async fn demo() -> Result<(), slipway_runtime::RuntimeError> {
//! use slipway_runtime::*;
//! let rt = OnnxRuntime::new(&OrtConfig::default())?; // once per process
//! let model = rt.load_file("model.onnx".as_ref(), &LoadOptions::default())?;
//! let mlmodel = std::fs::read_to_string("MLmodel").unwrap_or_default();
//! let mlflow = MlflowSignature::from_mlmodel_yaml(&mlmodel).ok().flatten();
//! let sig = Signature::resolve(model.signature().clone(), mlflow.as_ref());
//! let worker = ModelWorker::start(model, sig, WorkerConfig::default())?; // blocking: spawn_blocking
//! let x = Tensor::new("float_input", vec![1, 4], TensorData::Fp32(vec![5.1, 3.5, 1.4, 0.2])).unwrap();
//! let result = worker.infer(vec![x]).await?;
//! # let _ = result; Ok(()) }
//! ```

pub mod runtime;
pub mod signature;
pub mod tensor;
pub mod validate;
pub mod worker;
pub mod zipmap;

#[cfg(feature = "onnx")]
pub mod onnx;

#[cfg(feature = "onnx")]
pub use onnx::{find_onnxruntime_library, init_onnxruntime, OnnxModel, OnnxRuntime, OrtConfig};
pub use runtime::{
    ClassLabels, LazyRuntime, LoadOptions, Model, ModelOutput, OptimizationLevel, Runtime,
    RuntimeError,
};
pub use signature::{
    ColumnSpec, FeatureRanges, InputRange, MlflowSchema, MlflowSignature, MlmodelFlavors,
    Signature, SignatureError, TensorSpec, RANGES_ARTIFACT, RANGES_TAG,
};
pub use tensor::{element_count, DataType, Tensor, TensorData, TensorError};
pub use validate::{
    check_declared_shape, conform, validate, NonFinite, Policy, Position, RangeAction, RangeFlag,
    Validated, ValidationError,
};
pub use worker::{
    set_thread_class, warmup_inputs, BatchStat, DurationStat, InferResult, InferenceStats,
    ModelStats, ModelWorker, Prepared, ThreadClass, WorkerConfig,
};
