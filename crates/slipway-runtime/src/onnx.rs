//! ONNX Runtime backend (via the `ort` crate, loading `libonnxruntime`
//! dynamically at run time).
//!
//! # Finding the library
//!
//! [`find_onnxruntime_library`] looks, in order, at:
//!
//! 1. `SLIPWAY_ORT_LIB` (a path to `libonnxruntime.so*` / `.dylib` / `.dll`);
//! 2. `ORT_DYLIB_PATH` (the variable `ort` itself honours);
//! 3. the configured path ([`OrtConfig::library_path`]);
//! 4. the project's Python environment, as installed by
//!    `scripts/setup-python.sh`:
//!    `<root>/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`,
//!    where `<root>` is each of [`OrtConfig::search_roots`], the current
//!    directory and the executable's directory, and all of their ancestors.
//!
//! A path given by environment variable or configuration must exist: it is an
//! error, not a fallback, when it does not. When nothing is found the error
//! says how to provide the library.
//!
//! The library is loaded and the ONNX Runtime environment created once per
//! process; later [`OnnxRuntime::new`] calls share it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, ValueType};

use crate::runtime::{
    ClassLabels, LoadOptions, Model, ModelOutput, OptimizationLevel, Runtime, RuntimeError,
};
use crate::signature::{Signature, TensorSpec};
use crate::tensor::{DataType, Tensor, TensorData};

/// Environment variable naming the ONNX Runtime library (checked first).
pub const ENV_SLIPWAY_ORT_LIB: &str = "SLIPWAY_ORT_LIB";
/// Environment variable `ort` itself honours (checked second).
pub const ENV_ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// How to find ONNX Runtime.
#[derive(Debug, Clone, Default)]
pub struct OrtConfig {
    /// An explicit library path (after the environment variables).
    pub library_path: Option<PathBuf>,
    /// Extra directories whose `.venv` (or ancestors' `.venv`) may hold the
    /// onnxruntime wheel.
    pub search_roots: Vec<PathBuf>,
}

fn is_ort_lib_name(name: &str) -> bool {
    let is_lib = name.starts_with("libonnxruntime.so")
        || (name.starts_with("libonnxruntime") && name.ends_with(".dylib"))
        || name == "onnxruntime.dll";
    is_lib && !name.contains("providers")
}

/// The library files inside one `.venv`, best (highest version) first.
fn venv_libraries(venv: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(lib) = std::fs::read_dir(venv.join("lib")) else {
        return found;
    };
    let mut pythons: Vec<PathBuf> = lib
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons.reverse();
    for py in pythons {
        let capi = py.join("site-packages/onnxruntime/capi");
        let Ok(entries) = std::fs::read_dir(&capi) else {
            continue;
        };
        let mut libs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| is_ort_lib_name(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        // longest (most specific, e.g. libonnxruntime.so.1.31.1) first
        libs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        found.extend(libs);
    }
    found
}

/// Finds the ONNX Runtime shared library; see the [module docs](self).
pub fn find_onnxruntime_library(config: &OrtConfig) -> Result<PathBuf, RuntimeError> {
    let mut searched = Vec::new();
    for var in [ENV_SLIPWAY_ORT_LIB, ENV_ORT_DYLIB_PATH] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let p = PathBuf::from(v);
            if p.is_file() {
                return Ok(p);
            }
            return Err(RuntimeError::LibraryLoad {
                path: p.display().to_string(),
                message: format!("{var} names a file that does not exist"),
            });
        }
        searched.push(format!("${var} (unset)"));
    }
    if let Some(p) = &config.library_path {
        if p.is_file() {
            return Ok(p.clone());
        }
        return Err(RuntimeError::LibraryLoad {
            path: p.display().to_string(),
            message: "the configured ONNX Runtime library path does not exist".into(),
        });
    }
    let mut roots: Vec<PathBuf> = config.search_roots.clone();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        roots.push(dir);
    }
    let mut seen = std::collections::HashSet::new();
    for root in roots {
        for dir in root.ancestors() {
            if !seen.insert(dir.to_path_buf()) {
                continue;
            }
            let venv = dir.join(".venv");
            if let Some(lib) = venv_libraries(&venv).into_iter().next() {
                return Ok(lib);
            }
            if venv.is_dir() {
                searched.push(format!(
                    "{}/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*",
                    venv.display()
                ));
            }
        }
    }
    if searched.len() == 2 {
        searched.push("no .venv in the current or executable directory or their parents".into());
    }
    Err(RuntimeError::LibraryNotFound { searched })
}

struct OrtGlobal {
    env: ort::environment::Environment,
    library: PathBuf,
}

static ORT_GLOBAL: OnceLock<OrtGlobal> = OnceLock::new();
static ORT_INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads the library and creates the process-wide ONNX Runtime environment
/// (once); returns the library path in use.
pub fn init_onnxruntime(config: &OrtConfig) -> Result<PathBuf, RuntimeError> {
    if let Some(g) = ORT_GLOBAL.get() {
        return Ok(g.library.clone());
    }
    let _guard = ORT_INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(g) = ORT_GLOBAL.get() {
        return Ok(g.library.clone());
    }
    let library = find_onnxruntime_library(config)?;
    let load_err = |message: String| RuntimeError::LibraryLoad {
        path: library.display().to_string(),
        message,
    };
    let builder = ort::init_from(&library).map_err(|e| load_err(e.to_string()))?;
    let env = builder
        .with_name("slipway")
        .with_telemetry(false)
        .build()
        .map_err(|e| load_err(e.to_string()))?;
    tracing::info!(library = %library.display(), "ONNX Runtime loaded");
    let g = ORT_GLOBAL.get_or_init(|| OrtGlobal { env, library });
    Ok(g.library.clone())
}

/// The ONNX Runtime [`Runtime`].
#[derive(Debug, Clone)]
pub struct OnnxRuntime {
    library: PathBuf,
}

impl OnnxRuntime {
    /// Initialises ONNX Runtime (once per process) and returns a handle.
    pub fn new(config: &OrtConfig) -> Result<OnnxRuntime, RuntimeError> {
        let library = init_onnxruntime(config)?;
        Ok(OnnxRuntime { library })
    }

    /// The library in use.
    pub fn library_path(&self) -> &Path {
        &self.library
    }

    /// Loads a model from bytes, returning the concrete type.
    pub fn load_onnx_bytes(
        &self,
        bytes: &[u8],
        options: &LoadOptions,
    ) -> Result<OnnxModel, RuntimeError> {
        if let Some(stripped) = crate::zipmap::strip(bytes) {
            let mut b = self.builder(options)?;
            if let Ok(session) = b.commit_from_memory(&stripped.bytes) {
                return OnnxModel::new(session, stripped.labels);
            }
        }
        let mut b = self.builder(options)?;
        let session = b
            .commit_from_memory(bytes)
            .map_err(|e| RuntimeError::ModelLoad(e.to_string()))?;
        OnnxModel::new(session, HashMap::new())
    }

    /// Loads a model from a file, returning the concrete type.
    pub fn load_onnx_file(
        &self,
        path: &Path,
        options: &LoadOptions,
    ) -> Result<OnnxModel, RuntimeError> {
        // a classifier's ZipMap is removed first (see [`crate::zipmap`]); a
        // model it cannot be removed from, or that does not load from memory
        // (external data next to the file), loads as it is
        if let Some(stripped) = std::fs::read(path)
            .ok()
            .and_then(|bytes| crate::zipmap::strip(&bytes))
        {
            let mut b = self.builder(options)?;
            if let Ok(session) = b.commit_from_memory(&stripped.bytes) {
                return OnnxModel::new(session, stripped.labels);
            }
        }
        let mut b = self.builder(options)?;
        let session = b
            .commit_from_file(path)
            .map_err(|e| RuntimeError::ModelLoad(format!("{}: {e}", path.display())))?;
        OnnxModel::new(session, HashMap::new())
    }

    fn builder(
        &self,
        options: &LoadOptions,
    ) -> Result<ort::session::builder::SessionBuilder, RuntimeError> {
        let g = ORT_GLOBAL.get().ok_or_else(|| RuntimeError::LibraryLoad {
            path: self.library.display().to_string(),
            message: "ONNX Runtime is not initialised".into(),
        })?;
        let err = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            RuntimeError::ModelLoad(e.to_string())
        };
        let mut b = Session::builder(&g.env).map_err(|e| RuntimeError::ModelLoad(e.to_string()))?;
        let level = match options.optimization_level {
            OptimizationLevel::Disable => GraphOptimizationLevel::Disable,
            OptimizationLevel::Basic => GraphOptimizationLevel::Level1,
            OptimizationLevel::Extended => GraphOptimizationLevel::Level2,
            OptimizationLevel::All => GraphOptimizationLevel::All,
        };
        b = b.with_optimization_level(level).map_err(err)?;
        if let Some(n) = options.intra_op_threads {
            b = b.with_intra_threads(n).map_err(err)?;
        }
        Ok(b)
    }
}

impl Runtime for OnnxRuntime {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn load_bytes(
        &self,
        bytes: &[u8],
        options: &LoadOptions,
    ) -> Result<Box<dyn Model>, RuntimeError> {
        Ok(Box::new(self.load_onnx_bytes(bytes, options)?))
    }

    fn load_file(
        &self,
        path: &Path,
        options: &LoadOptions,
    ) -> Result<Box<dyn Model>, RuntimeError> {
        Ok(Box::new(self.load_onnx_file(path, options)?))
    }
}

/// Maps an ONNX element type to a V2 data type.
fn dtype_of(t: TensorElementType) -> Option<DataType> {
    Some(match t {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

/// The spec of one graph input/output. A ZipMap output (sequence of maps) is
/// described as the FP32 `[-1, -1]` tensor it is converted to.
fn spec_of(name: &str, ty: &ValueType) -> Result<TensorSpec, String> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => {
            let dtype = dtype_of(*ty)
                .ok_or_else(|| format!("'{name}' has unsupported element type {ty}"))?;
            Ok(TensorSpec::new(
                name,
                dtype,
                shape.iter().copied().collect(),
            ))
        }
        ValueType::Sequence(inner) if matches!(**inner, ValueType::Map { .. }) => {
            Ok(TensorSpec::new(name, DataType::Fp32, vec![-1, -1]))
        }
        other => Err(format!("'{name}' has unsupported type {other}")),
    }
}

/// A model loaded into an ONNX Runtime session.
pub struct OnnxModel {
    session: Session,
    signature: Signature,
    /// Class labels seen on the last non-empty run, per ZipMap output.
    labels: HashMap<String, ClassLabels>,
    /// Class labels of outputs whose ZipMap was removed at load.
    stripped: HashMap<String, ClassLabels>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    fn new(
        session: Session,
        stripped: HashMap<String, ClassLabels>,
    ) -> Result<OnnxModel, RuntimeError> {
        let inputs = session
            .inputs()
            .iter()
            .map(|o| spec_of(o.name(), o.dtype()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RuntimeError::ModelLoad(format!("input {e}")))?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| spec_of(o.name(), o.dtype()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RuntimeError::ModelLoad(format!("output {e}")))?;
        Ok(OnnxModel {
            session,
            signature: Signature::new(inputs, outputs),
            labels: HashMap::new(),
            stripped,
        })
    }

    /// Model metadata: the producer name (e.g. `skl2onnx`), if recorded.
    pub fn producer(&self) -> Option<String> {
        self.session.metadata().ok().and_then(|m| m.producer())
    }
}

fn ort_err(e: ort::Error) -> RuntimeError {
    match e.code() {
        ort::ErrorCode::InvalidArgument | ort::ErrorCode::InvalidGraph => {
            RuntimeError::InvalidInput(e.message().to_string())
        }
        _ => RuntimeError::Inference(e.to_string()),
    }
}

fn to_ort(t: Tensor) -> Result<DynValue, RuntimeError> {
    let shape = t.shape;
    let name = t.name;
    let v: DynValue = match t.data {
        TensorData::Bool(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Uint8(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Uint16(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Uint32(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Uint64(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Int8(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Int16(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Int32(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Int64(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Fp16(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Fp32(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Fp64(v) => ort::value::Tensor::from_array((shape, v)).map(|x| x.into_dyn()),
        TensorData::Bytes(v) => {
            let mut strings = Vec::with_capacity(v.len());
            for (i, b) in v.into_iter().enumerate() {
                let s = String::from_utf8(b).map_err(|_| {
                    RuntimeError::Unsupported(format!(
                        "input '{name}' element {i} is not valid UTF-8; ONNX string inputs must be UTF-8"
                    ))
                })?;
                if s.contains('\0') {
                    return Err(RuntimeError::Unsupported(format!(
                        "input '{name}' element {i} contains a NUL byte, which ONNX Runtime string tensors cannot hold"
                    )));
                }
                strings.push(s);
            }
            ort::value::Tensor::from_string_array((shape, strings.as_slice())).map(|x| x.into_dyn())
        }
    }
    .map_err(|e| RuntimeError::InvalidInput(format!("input '{name}': {e}")))?;
    Ok(v)
}

fn shape_vec(s: &ort::value::Shape) -> Vec<i64> {
    s.iter().copied().collect()
}

/// Converts one ort output value into a [`ModelOutput`].
fn from_ort(
    name: &str,
    value: &DynValue,
    cached: Option<&ClassLabels>,
) -> Result<ModelOutput, RuntimeError> {
    macro_rules! prim {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = value.try_extract_tensor::<$t>().map_err(ort_err)?;
            TensorData::$variant(data.to_vec()).pipe_tensor(name, shape_vec(shape))
        }};
    }
    match value.dtype() {
        ValueType::Tensor { ty, .. } => {
            let t = match ty {
                TensorElementType::Bool => prim!(bool, Bool),
                TensorElementType::Uint8 => prim!(u8, Uint8),
                TensorElementType::Uint16 => prim!(u16, Uint16),
                TensorElementType::Uint32 => prim!(u32, Uint32),
                TensorElementType::Uint64 => prim!(u64, Uint64),
                TensorElementType::Int8 => prim!(i8, Int8),
                TensorElementType::Int16 => prim!(i16, Int16),
                TensorElementType::Int32 => prim!(i32, Int32),
                TensorElementType::Int64 => prim!(i64, Int64),
                TensorElementType::Float16 => prim!(half::f16, Fp16),
                TensorElementType::Float32 => prim!(f32, Fp32),
                TensorElementType::Float64 => prim!(f64, Fp64),
                TensorElementType::String => {
                    let (shape, data) = value.try_extract_strings().map_err(ort_err)?;
                    TensorData::Bytes(data.into_iter().map(String::into_bytes).collect())
                        .pipe_tensor(name, shape_vec(shape))
                }
                other => {
                    return Err(RuntimeError::Inference(format!(
                        "output '{name}' has unsupported element type {other}"
                    )))
                }
            }?;
            Ok(ModelOutput::plain(t))
        }
        ValueType::Sequence(inner) => match &**inner {
            ValueType::Map { key, .. } => zipmap(name, value, *key, cached),
            other => Err(RuntimeError::Inference(format!(
                "output '{name}' is a sequence of {other}, which is not supported"
            ))),
        },
        other => Err(RuntimeError::Inference(format!(
            "output '{name}' has unsupported type {other}"
        ))),
    }
}

trait PipeTensor {
    fn pipe_tensor(self, name: &str, shape: Vec<i64>) -> Result<Tensor, RuntimeError>;
}

impl PipeTensor for TensorData {
    fn pipe_tensor(self, name: &str, shape: Vec<i64>) -> Result<Tensor, RuntimeError> {
        Tensor::new(name, shape, self)
            .map_err(|e| RuntimeError::Inference(format!("output '{name}': {e}")))
    }
}

/// Converts a ZipMap output (sequence of `map(key, float)`, one per row) into
/// an FP32 `[rows, n_classes]` tensor plus the ordered class labels.
fn zipmap(
    name: &str,
    value: &DynValue,
    key: TensorElementType,
    cached: Option<&ClassLabels>,
) -> Result<ModelOutput, RuntimeError> {
    let maps = value
        .try_extract_sequence::<ort::value::DynMapValueType>()
        .map_err(ort_err)?;
    let rows = maps.len();
    let bad = |m: String| RuntimeError::Inference(format!("output '{name}': {m}"));
    let (labels, data) = match key {
        TensorElementType::Int64 => {
            let mut labels: Option<Vec<i64>> = match cached {
                Some(ClassLabels::Int64(v)) => Some(v.clone()),
                _ => None,
            };
            let mut data = Vec::new();
            for (r, m) in maps.iter().enumerate() {
                let kv = m.try_extract_key_values::<i64, f32>().map_err(ort_err)?;
                if r == 0 {
                    labels = Some(kv.iter().map(|(k, _)| *k).collect());
                }
                let order = labels.as_deref().unwrap_or_default();
                push_row(&mut data, order, &kv).map_err(|e| bad(format!("row {r}: {e}")))?;
            }
            (ClassLabels::Int64(labels.unwrap_or_default()), data)
        }
        TensorElementType::String => {
            let mut labels: Option<Vec<String>> = match cached {
                Some(ClassLabels::String(v)) => Some(v.clone()),
                _ => None,
            };
            let mut data = Vec::new();
            for (r, m) in maps.iter().enumerate() {
                let kv = m.try_extract_key_values::<String, f32>().map_err(ort_err)?;
                if r == 0 {
                    labels = Some(kv.iter().map(|(k, _)| k.clone()).collect());
                }
                let order = labels.as_deref().unwrap_or_default();
                push_row(&mut data, order, &kv).map_err(|e| bad(format!("row {r}: {e}")))?;
            }
            (ClassLabels::String(labels.unwrap_or_default()), data)
        }
        other => return Err(bad(format!("map keys of type {other} are not supported"))),
    };
    let classes = i64::try_from(labels.len()).map_err(|e| bad(e.to_string()))?;
    let rows = i64::try_from(rows).map_err(|e| bad(e.to_string()))?;
    let tensor = TensorData::Fp32(data).pipe_tensor(name, vec![rows, classes])?;
    Ok(ModelOutput {
        tensor,
        class_labels: Some(labels),
    })
}

fn push_row<K: PartialEq + std::fmt::Debug>(
    data: &mut Vec<f32>,
    order: &[K],
    kv: &[(K, f32)],
) -> Result<(), String> {
    if kv.len() != order.len() {
        return Err(format!(
            "has {} classes, expected {}",
            kv.len(),
            order.len()
        ));
    }
    for (i, k) in order.iter().enumerate() {
        // fast path: same position
        let v = if kv[i].0 == *k {
            kv[i].1
        } else {
            kv.iter()
                .find(|(kk, _)| kk == k)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("class {k:?} missing"))?
        };
        data.push(v);
    }
    Ok(())
}

impl Model for OnnxModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<ModelOutput>, RuntimeError> {
        let mut feeds: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for t in inputs {
            let name = t.name.clone();
            feeds.push((name, SessionInputValue::from(to_ort(t)?)));
        }
        let outputs = self.session.run(feeds).map_err(ort_err)?;
        let mut result = Vec::with_capacity(outputs.len());
        let mut learned = Vec::new();
        for (name, value) in outputs.iter() {
            let mut out = from_ort(name, &value, self.labels.get(name))?;
            if let Some(l) = self.stripped.get(name) {
                out.class_labels = Some(l.clone());
            } else if let Some(l) = &out.class_labels {
                if !l.is_empty() {
                    learned.push((name.to_string(), l.clone()));
                }
            }
            result.push(out);
        }
        drop(outputs);
        for (k, v) in learned {
            self.labels.insert(k, v);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_the_wheel_library_in_a_venv() {
        let dir = tempfile::tempdir().unwrap();
        let capi = dir
            .path()
            .join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for f in [
            "libonnxruntime_providers_shared.so",
            "libonnxruntime.so.1.31.1",
            "onnxruntime_pybind11_state.so",
        ] {
            std::fs::write(capi.join(f), b"").unwrap();
        }
        let found = venv_libraries(&dir.path().join(".venv"));
        assert_eq!(found, vec![capi.join("libonnxruntime.so.1.31.1")]);
        assert!(venv_libraries(&dir.path().join("nothing")).is_empty());
    }

    #[test]
    fn not_found_message_says_how_to_fix() {
        let e = RuntimeError::LibraryNotFound {
            searched: vec!["$SLIPWAY_ORT_LIB (unset)".into()],
        };
        let msg = e.to_string();
        assert!(
            msg.contains("run scripts/setup-python.sh")
                || msg.contains("Run scripts/setup-python.sh"),
            "{msg}"
        );
        assert!(
            msg.contains("SLIPWAY_ORT_LIB=/path/to/libonnxruntime.so"),
            "{msg}"
        );
        let e = RuntimeError::LibraryLoad {
            path: "/x".into(),
            message: "gone".into(),
        };
        assert_eq!(e.http_status(), 500);
    }

    #[test]
    fn configured_missing_path_is_an_error() {
        if std::env::var_os(ENV_SLIPWAY_ORT_LIB).is_some()
            || std::env::var_os(ENV_ORT_DYLIB_PATH).is_some()
        {
            return; // the environment variables take precedence over configuration
        }
        let cfg = OrtConfig {
            library_path: Some("/definitely/not/here.so".into()),
            search_roots: vec![],
        };
        let e = find_onnxruntime_library(&cfg).unwrap_err();
        assert!(
            e.to_string()
                .contains("configured ONNX Runtime library path does not exist"),
            "{e}"
        );
    }
}
