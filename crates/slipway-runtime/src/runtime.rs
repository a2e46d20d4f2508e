//! The runtime abstraction: a [`Runtime`] loads model bytes into a [`Model`];
//! a [`Model`] runs conformed input tensors synchronously.
//!
//! Models are run on dedicated threads by a [`ModelWorker`](crate::ModelWorker),
//! never on the async executor.

use std::path::Path;

use serde::Serialize;

use crate::signature::Signature;
use crate::tensor::Tensor;
use crate::validate::ValidationError;

/// Class labels of a classifier's probability output, in column order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ClassLabels {
    /// Integer labels (model trained on integer targets).
    Int64(Vec<i64>),
    /// String labels (model trained on string targets).
    String(Vec<String>),
}

impl ClassLabels {
    /// Number of classes.
    pub fn len(&self) -> usize {
        match self {
            ClassLabels::Int64(v) => v.len(),
            ClassLabels::String(v) => v.len(),
        }
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels as JSON values (numbers or strings), e.g. for an output's
    /// `parameters`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ClassLabels::Int64(v) => v.iter().copied().map(serde_json::Value::from).collect(),
            ClassLabels::String(v) => v.iter().cloned().map(serde_json::Value::from).collect(),
        }
    }
}

/// One model output.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    /// The output tensor (named after the model output).
    pub tensor: Tensor,
    /// For classifier probability outputs (ONNX ZipMap: a sequence of maps),
    /// the class label of each column of the `[batch, n_classes]` tensor.
    pub class_labels: Option<ClassLabels>,
}

impl ModelOutput {
    /// An output without class labels.
    pub fn plain(tensor: Tensor) -> ModelOutput {
        ModelOutput {
            tensor,
            class_labels: None,
        }
    }
}

/// Graph optimization level applied when a model is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizationLevel {
    /// No graph optimizations.
    Disable,
    /// Basic, semantics-preserving rewrites (constant folding, ...).
    Basic,
    /// Basic plus extended fusions.
    Extended,
    /// Everything, including layout optimizations.
    #[default]
    All,
}

/// Options for loading one model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct LoadOptions {
    /// Threads used inside one operator (ONNX Runtime intra-op pool);
    /// `None` lets the runtime decide (one per physical core).
    pub intra_op_threads: Option<usize>,
    /// Graph optimization level.
    pub optimization_level: OptimizationLevel,
}

/// Errors from runtimes and workers.
///
/// Map to HTTP with [`RuntimeError::http_status`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The ONNX Runtime shared library was not found.
    #[error("ONNX Runtime library (libonnxruntime) not found; looked in: {}. Run scripts/setup-python.sh, or set SLIPWAY_ORT_LIB=/path/to/libonnxruntime.so", searched.join(", "))]
    LibraryNotFound {
        /// Places looked at.
        searched: Vec<String>,
    },
    /// The library exists but could not be loaded / initialised.
    #[error("could not load ONNX Runtime from {path}: {message}. Run scripts/setup-python.sh, or set SLIPWAY_ORT_LIB=/path/to/libonnxruntime.so (ONNX Runtime >= 1.31)")]
    LibraryLoad {
        /// The library path.
        path: String,
        /// Why.
        message: String,
    },
    /// The model could not be loaded (corrupt file, unsupported operator...).
    #[error("could not load model: {0}")]
    ModelLoad(String),
    /// The request is invalid for the model.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The request uses something this runtime cannot feed the model
    /// (e.g. non-UTF-8 BYTES for an ONNX string input).
    #[error("{0}")]
    Unsupported(String),
    /// The runtime rejected the inputs while running (its own shape/type checks).
    #[error("model rejected the inputs: {0}")]
    InvalidInput(String),
    /// The model failed while running.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The worker's queue is full; retry later.
    #[error("model '{model}' is overloaded: its queue of {capacity} requests is full; retry after {retry_after_secs}s")]
    QueueFull {
        /// Model name.
        model: String,
        /// Queue capacity.
        capacity: usize,
        /// Suggested `Retry-After` in seconds.
        retry_after_secs: u64,
    },
    /// The worker has stopped (model unloaded, or it crashed).
    #[error("model '{0}' is not running")]
    WorkerStopped(String),
}

impl RuntimeError {
    /// The HTTP status the server should answer with:
    /// 400 for invalid requests, 429 for a full queue (send `Retry-After`
    /// from [`RuntimeError::retry_after_secs`]), 503 when the model is not
    /// running, 500 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            RuntimeError::Validation(_)
            | RuntimeError::Unsupported(_)
            | RuntimeError::InvalidInput(_) => 400,
            RuntimeError::QueueFull { .. } => 429,
            RuntimeError::WorkerStopped(_) => 503,
            RuntimeError::LibraryNotFound { .. }
            | RuntimeError::LibraryLoad { .. }
            | RuntimeError::ModelLoad(_)
            | RuntimeError::Inference(_) => 500,
        }
    }

    /// `Retry-After` seconds for [`RuntimeError::QueueFull`].
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            RuntimeError::QueueFull {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// A loaded model, run synchronously by its worker thread.
pub trait Model: Send + 'static {
    /// The signature read from the model itself (graph inputs/outputs).
    fn signature(&self) -> &Signature;

    /// Runs the model. `inputs` are conformed (see
    /// [`conform`](crate::conform)): one per signature input, in order, of
    /// the signature's types.
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<ModelOutput>, RuntimeError>;
}

/// A model runtime (ONNX Runtime today; others can implement this later).
pub trait Runtime: Send + Sync {
    /// Short name (`"onnxruntime"`).
    fn name(&self) -> &'static str;

    /// Loads a model from its serialized bytes.
    fn load_bytes(
        &self,
        bytes: &[u8],
        options: &LoadOptions,
    ) -> Result<Box<dyn Model>, RuntimeError>;

    /// Loads a model from a file (external data files resolve relative to it).
    fn load_file(&self, path: &Path, options: &LoadOptions)
        -> Result<Box<dyn Model>, RuntimeError>;
}

/// A runtime created on first use: `init` runs when the first model is
/// loaded (not at start-up, so a server without deployments needs no ONNX
/// Runtime library), its success is kept, and a failure is retried on the
/// next load (installing the library later works without a restart).
pub struct LazyRuntime {
    name: &'static str,
    init: InitFn,
    cell: std::sync::OnceLock<std::sync::Arc<dyn Runtime>>,
}

type InitFn = Box<dyn Fn() -> Result<std::sync::Arc<dyn Runtime>, RuntimeError> + Send + Sync>;

impl LazyRuntime {
    /// A runtime named `name`, created by `init` when first needed.
    pub fn new(
        name: &'static str,
        init: impl Fn() -> Result<std::sync::Arc<dyn Runtime>, RuntimeError> + Send + Sync + 'static,
    ) -> LazyRuntime {
        LazyRuntime {
            name,
            init: Box::new(init),
            cell: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&std::sync::Arc<dyn Runtime>, RuntimeError> {
        if let Some(rt) = self.cell.get() {
            return Ok(rt);
        }
        let rt = (self.init)()?;
        Ok(self.cell.get_or_init(|| rt))
    }
}

impl Runtime for LazyRuntime {
    fn name(&self) -> &'static str {
        self.name
    }

    fn load_bytes(
        &self,
        bytes: &[u8],
        options: &LoadOptions,
    ) -> Result<Box<dyn Model>, RuntimeError> {
        self.get()?.load_bytes(bytes, options)
    }

    fn load_file(
        &self,
        path: &Path,
        options: &LoadOptions,
    ) -> Result<Box<dyn Model>, RuntimeError> {
        self.get()?.load_file(path, options)
    }
}
