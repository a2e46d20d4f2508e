//! Model signatures: what a model accepts and returns.
//!
//! A [`Signature`] is resolved from, in order of preference:
//!
//! 1. the MLflow `MLmodel` file's `signature` section ([`MlflowSignature::from_mlmodel_yaml`]),
//!    tensor-based (`{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}, "name": ...}`)
//!    or column-based (`{"type": "double", "name": "sepal_length"}`);
//! 2. the ONNX graph's declared inputs and outputs (from the runtime's session metadata).
//!
//! [`Signature::resolve`] merges the two: the graph is the source of truth for
//! the tensors the runtime is fed; a tensor-based MLflow signature may tighten
//! shapes (replacing `-1` dims) when its names match the graph; a column-based
//! one is kept as [`Signature::columns`] so the scoring protocol can assemble a
//! 2-D tensor in the signature's column order.
//!
//! # Feature ranges
//!
//! Optional per-feature ranges ([`FeatureRanges`]) are recorded either as an
//! artifact file named [`RANGES_ARTIFACT`] (`slipway.ranges.json`) next to
//! `MLmodel`, or as the model-version tag [`RANGES_TAG`]
//! (`slipway.feature_ranges`); both hold the same JSON:
//!
//! ```json
//! {"float_input": {"min": [4.0, 2.0, 1.0, 0.1], "max": [8.0, 4.5, 7.0, 2.5]}}
//! ```
//!
//! Keys are model input names. `min`/`max` are arrays with one entry per
//! feature — the input's last dimension (for inputs of rank ≤ 1 there is a
//! single feature) — or a single number applying to every feature; `null`
//! entries (or an absent `min`/`max`) mean "unbounded". Bounds are inclusive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::tensor::DataType;

/// Artifact file (next to `MLmodel`) holding [`FeatureRanges`] JSON.
pub const RANGES_ARTIFACT: &str = "slipway.ranges.json";
/// Model-version tag holding [`FeatureRanges`] JSON.
pub const RANGES_TAG: &str = "slipway.feature_ranges";

/// One named tensor a model takes or returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Input/output name.
    pub name: String,
    /// Element type.
    pub dtype: DataType,
    /// Dimensions; `-1` marks a variable dimension.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// Creates a spec.
    pub fn new(name: impl Into<String>, dtype: DataType, shape: Vec<i64>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dtype,
            shape,
        }
    }

    /// True when the first dimension is variable (dynamic batching possible).
    pub fn has_dynamic_batch(&self) -> bool {
        self.shape.first().is_some_and(|d| *d < 0)
    }

    /// Number of features: the last dimension for rank ≥ 2, else 1. `None`
    /// when that dimension is variable.
    pub fn feature_count(&self) -> Option<usize> {
        if self.shape.len() < 2 {
            return Some(1);
        }
        self.shape.last().and_then(|d| usize::try_from(*d).ok())
    }
}

/// One column of a column-based MLflow signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Column name (MLflow allows unnamed columns: then `None`).
    pub name: Option<String>,
    /// Column type mapped to a tensor element type.
    pub dtype: DataType,
    /// Whether the column must be present (MLflow `required`, default true).
    pub required: bool,
}

/// Either side of an MLflow signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MlflowSchema {
    /// Tensor-based: named tensors.
    Tensors(Vec<TensorSpec>),
    /// Column-based: named, typed columns of a DataFrame.
    Columns(Vec<ColumnSpec>),
}

/// The `signature` section of an MLflow `MLmodel` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlflowSignature {
    /// `signature.inputs`.
    pub inputs: MlflowSchema,
    /// `signature.outputs`, when present.
    pub outputs: Option<MlflowSchema>,
}

/// Errors reading signatures and ranges.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The MLmodel file is not valid YAML.
    #[error("MLmodel is not valid YAML: {0}")]
    Yaml(String),
    /// A schema string (`signature.inputs` / `outputs`) is not valid JSON.
    #[error("MLmodel signature.{field} is not valid JSON: {message}")]
    Json {
        /// `inputs` or `outputs`.
        field: &'static str,
        /// Parser message.
        message: String,
    },
    /// A schema entry is malformed.
    #[error("MLmodel signature.{field}[{index}]: {message}")]
    Entry {
        /// `inputs` or `outputs`.
        field: &'static str,
        /// Entry position.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The feature-range JSON is malformed.
    #[error("feature ranges: {0}")]
    Ranges(String),
}

#[derive(Deserialize)]
struct MlmodelDoc {
    #[serde(default)]
    signature: Option<MlmodelSignatureDoc>,
}

#[derive(Deserialize)]
struct MlmodelSignatureDoc {
    #[serde(default)]
    inputs: Option<serde_json::Value>,
    #[serde(default)]
    outputs: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct SchemaEntry {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "tensor-spec")]
    tensor_spec: Option<TensorSpecDoc>,
    #[serde(default)]
    required: Option<bool>,
}

#[derive(Deserialize)]
struct TensorSpecDoc {
    dtype: String,
    #[serde(default)]
    shape: Option<Vec<i64>>,
}

impl MlflowSignature {
    /// Parses the `signature` of an `MLmodel` YAML document. Returns `Ok(None)`
    /// when the document has no signature (or no `inputs`).
    pub fn from_mlmodel_yaml(yaml: &str) -> Result<Option<MlflowSignature>, SignatureError> {
        let doc: MlmodelDoc =
            serde_norway::from_str(yaml).map_err(|e| SignatureError::Yaml(e.to_string()))?;
        let Some(sig) = doc.signature else {
            return Ok(None);
        };
        let Some(inputs) = sig.inputs else {
            return Ok(None);
        };
        let Some(inputs) = parse_schema("inputs", &inputs)? else {
            return Ok(None);
        };
        let outputs = match sig.outputs {
            Some(v) => parse_schema("outputs", &v)?,
            None => None,
        };
        Ok(Some(MlflowSignature { inputs, outputs }))
    }
}

/// The flavors of an `MLmodel` file: each flavor's name and its `data`
/// file (relative to the model directory) where it names one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MlmodelFlavors(pub Vec<(String, Option<String>)>);

impl MlmodelFlavors {
    /// Parses the `flavors` section of an `MLmodel` YAML document.
    pub fn from_mlmodel_yaml(yaml: &str) -> Result<MlmodelFlavors, SignatureError> {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            flavors: std::collections::BTreeMap<String, serde_json::Value>,
        }
        let doc: Doc =
            serde_norway::from_str(yaml).map_err(|e| SignatureError::Yaml(e.to_string()))?;
        Ok(MlmodelFlavors(
            doc.flavors
                .into_iter()
                .map(|(name, v)| {
                    let data = v.get("data").and_then(|d| d.as_str()).map(str::to_string);
                    (name, data)
                })
                .collect(),
        ))
    }

    /// The `data` file of a flavor, if the flavor exists and names one.
    pub fn data_file(&self, flavor: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == flavor)
            .and_then(|(_, d)| d.as_deref())
    }

    /// Whether the model has this flavor.
    pub fn has(&self, flavor: &str) -> bool {
        self.0.iter().any(|(n, _)| n == flavor)
    }

    /// The flavor names, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// The schema value is a JSON string inside YAML (MLflow writes it that way);
/// a YAML sequence is accepted too.
fn parse_schema(
    field: &'static str,
    value: &serde_json::Value,
) -> Result<Option<MlflowSchema>, SignatureError> {
    let entries: Vec<SchemaEntry> = match value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) => {
            serde_json::from_str(s).map_err(|e| SignatureError::Json {
                field,
                message: e.to_string(),
            })?
        }
        other => serde_json::from_value(other.clone()).map_err(|e| SignatureError::Json {
            field,
            message: e.to_string(),
        })?,
    };
    if entries.is_empty() {
        return Ok(None);
    }
    let tensor_based = entries[0].ty == "tensor";
    if tensor_based {
        let mut specs = Vec::with_capacity(entries.len());
        for (index, e) in entries.into_iter().enumerate() {
            if e.ty != "tensor" {
                return Err(SignatureError::Entry {
                    field,
                    index,
                    message: format!("mixes type '{}' with tensor entries", e.ty),
                });
            }
            let ts = e.tensor_spec.ok_or_else(|| SignatureError::Entry {
                field,
                index,
                message: "tensor entry without 'tensor-spec'".into(),
            })?;
            let dtype = DataType::from_mlflow(&ts.dtype).ok_or_else(|| SignatureError::Entry {
                field,
                index,
                message: format!("unsupported tensor dtype '{}'", ts.dtype),
            })?;
            let name = e.name.unwrap_or_else(|| {
                if index == 0 {
                    String::new()
                } else {
                    index.to_string()
                }
            });
            specs.push(TensorSpec::new(name, dtype, ts.shape.unwrap_or_default()));
        }
        Ok(Some(MlflowSchema::Tensors(specs)))
    } else {
        let mut cols = Vec::with_capacity(entries.len());
        for (index, e) in entries.into_iter().enumerate() {
            let dtype = DataType::from_mlflow(&e.ty).ok_or_else(|| SignatureError::Entry {
                field,
                index,
                message: format!("unsupported column type '{}'", e.ty),
            })?;
            cols.push(ColumnSpec {
                name: e.name,
                dtype,
                required: e.required.unwrap_or(true),
            });
        }
        Ok(Some(MlflowSchema::Columns(cols)))
    }
}

/// Inclusive bounds for every feature of one input. `None` = unbounded.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InputRange {
    /// Lower bounds, one per feature (or a single one for all).
    #[serde(default)]
    pub min: Vec<Option<f64>>,
    /// Upper bounds, one per feature (or a single one for all).
    #[serde(default)]
    pub max: Vec<Option<f64>>,
}

impl InputRange {
    /// The bounds for feature `i` (a single bound applies to every feature).
    pub fn bounds(&self, i: usize) -> (Option<f64>, Option<f64>) {
        let pick = |v: &[Option<f64>]| match v.len() {
            0 => None,
            1 => v[0],
            _ => v.get(i).copied().flatten(),
        };
        (pick(&self.min), pick(&self.max))
    }
}

/// Per-input feature ranges; see the [module docs](self) for the format.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct FeatureRanges(pub BTreeMap<String, InputRange>);

#[derive(Deserialize)]
#[serde(untagged)]
enum BoundDoc {
    One(Option<f64>),
    Many(Vec<Option<f64>>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeDoc {
    #[serde(default)]
    min: Option<BoundDoc>,
    #[serde(default)]
    max: Option<BoundDoc>,
}

impl FeatureRanges {
    /// Parses the `slipway.ranges.json` / `slipway.feature_ranges` JSON.
    pub fn from_json(json: &str) -> Result<FeatureRanges, SignatureError> {
        let doc: BTreeMap<String, RangeDoc> =
            serde_json::from_str(json).map_err(|e| SignatureError::Ranges(e.to_string()))?;
        let mut out = BTreeMap::new();
        for (name, r) in doc {
            let conv = |b: Option<BoundDoc>| match b {
                None | Some(BoundDoc::One(None)) => Vec::new(),
                Some(BoundDoc::One(Some(x))) => vec![Some(x)],
                Some(BoundDoc::Many(v)) => v,
            };
            let range = InputRange {
                min: conv(r.min),
                max: conv(r.max),
            };
            if !range.min.is_empty()
                && !range.max.is_empty()
                && range.min.len() != range.max.len()
                && range.min.len() != 1
                && range.max.len() != 1
            {
                return Err(SignatureError::Ranges(format!(
                    "input '{name}': min has {} entries but max has {}",
                    range.min.len(),
                    range.max.len()
                )));
            }
            for i in 0..range.min.len().max(range.max.len()) {
                if let (Some(lo), Some(hi)) = range.bounds(i) {
                    if lo > hi || lo.is_nan() || hi.is_nan() {
                        return Err(SignatureError::Ranges(format!(
                            "input '{name}' feature {i}: min {lo} is above max {hi}"
                        )));
                    }
                }
            }
            out.insert(name, range);
        }
        Ok(FeatureRanges(out))
    }

    /// Ranges for one input.
    pub fn get(&self, input: &str) -> Option<&InputRange> {
        self.0.get(input)
    }

    /// True when no ranges are recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a loaded model accepts and returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signature {
    /// Model inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// Model outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
    /// The column-based MLflow input schema, when the model was logged with
    /// one. Columns map, in this order, onto the last dimension of the single
    /// 2-D input (see `slipway-protocol`'s scoring codec).
    pub columns: Option<Vec<ColumnSpec>>,
    /// Optional per-feature ranges.
    pub ranges: FeatureRanges,
}

impl Signature {
    /// A signature from explicit specs.
    pub fn new(inputs: Vec<TensorSpec>, outputs: Vec<TensorSpec>) -> Signature {
        Signature {
            inputs,
            outputs,
            columns: None,
            ranges: FeatureRanges::default(),
        }
    }

    /// Merges an MLflow signature (if any) into the graph signature.
    ///
    /// * Tensor-based MLflow inputs whose names match graph inputs replace a
    ///   graph `-1` dim by a concrete MLflow dim (never the other way round),
    ///   and the graph dtype wins (the runtime is fed the graph's types).
    ///   A single unnamed MLflow tensor is matched to a single graph input.
    /// * Column-based MLflow inputs are kept in [`Signature::columns`].
    pub fn resolve(graph: Signature, mlflow: Option<&MlflowSignature>) -> Signature {
        let mut sig = graph;
        match mlflow.map(|m| &m.inputs) {
            Some(MlflowSchema::Tensors(specs)) => {
                let single = specs.len() == 1 && sig.inputs.len() == 1;
                for (i, input) in sig.inputs.iter_mut().enumerate() {
                    let found = specs.iter().find(|s| s.name == input.name).or_else(|| {
                        if single && i == 0 {
                            specs.first()
                        } else {
                            None
                        }
                    });
                    if let Some(spec) = found {
                        if spec.shape.len() == input.shape.len() {
                            for (g, m) in input.shape.iter_mut().zip(&spec.shape) {
                                if *g < 0 && *m >= 0 {
                                    *g = *m;
                                }
                            }
                        }
                    }
                }
            }
            Some(MlflowSchema::Columns(cols)) => sig.columns = Some(cols.clone()),
            None => {}
        }
        sig
    }

    /// Looks an input up by name.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|s| s.name == name)
    }

    /// Looks an output up by name.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|s| s.name == name)
    }

    /// True when every input has a variable first dimension, so requests can
    /// be concatenated along dim 0.
    pub fn supports_batching(&self) -> bool {
        !self.inputs.is_empty() && self.inputs.iter().all(TensorSpec::has_dynamic_batch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TENSOR_MLMODEL: &str = r#"artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.16.0
    providers:
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.7
mlflow_version: 2.12.1
model_uuid: 3b1f
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}, "name": "float_input"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}, "name": "output_label"}]'
  params: null
utc_time_created: '2024-04-20 10:00:00.000000'
"#;

    const COLUMN_MLMODEL: &str = r#"flavors:
  python_function:
    loader_module: mlflow.onnx
signature:
  inputs: '[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type": "double", "name": "sepal width (cm)", "required": true}, {"type": "double", "name": "petal length (cm)"}, {"type": "long", "name": "petal width (cm)", "required": false}]'
  outputs: '[{"type": "long", "required": true}]'
"#;

    #[test]
    fn tensor_signature() {
        let sig = MlflowSignature::from_mlmodel_yaml(TENSOR_MLMODEL)
            .unwrap()
            .unwrap();
        assert_eq!(
            sig.inputs,
            MlflowSchema::Tensors(vec![TensorSpec::new(
                "float_input",
                DataType::Fp32,
                vec![-1, 4]
            )])
        );
        assert_eq!(
            sig.outputs,
            Some(MlflowSchema::Tensors(vec![TensorSpec::new(
                "output_label",
                DataType::Int64,
                vec![-1]
            )]))
        );
    }

    #[test]
    fn column_signature() {
        let sig = MlflowSignature::from_mlmodel_yaml(COLUMN_MLMODEL)
            .unwrap()
            .unwrap();
        let MlflowSchema::Columns(cols) = &sig.inputs else {
            panic!("columns")
        };
        assert_eq!(cols.len(), 4);
        assert_eq!(cols[0].name.as_deref(), Some("sepal length (cm)"));
        assert_eq!(cols[0].dtype, DataType::Fp64);
        assert_eq!(cols[3].dtype, DataType::Int64);
        assert!(!cols[3].required);
        let graph = Signature::new(
            vec![TensorSpec::new("X", DataType::Fp32, vec![-1, 4])],
            vec![],
        );
        let resolved = Signature::resolve(graph, Some(&sig));
        assert_eq!(resolved.columns.as_ref().unwrap().len(), 4);
        assert_eq!(resolved.inputs[0].dtype, DataType::Fp32);
    }

    #[test]
    fn no_signature() {
        assert!(MlflowSignature::from_mlmodel_yaml("flavors: {}\n")
            .unwrap()
            .is_none());
        assert!(
            MlflowSignature::from_mlmodel_yaml("signature:\n  inputs: null\n")
                .unwrap()
                .is_none()
        );
        assert!(MlflowSignature::from_mlmodel_yaml(": : :").is_err());
        let bad = "signature:\n  inputs: '[{\"type\": \"tensor\"}]'\n";
        let e = MlflowSignature::from_mlmodel_yaml(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("signature.inputs[0]"), "{e}");
    }

    #[test]
    fn resolve_tightens_shape() {
        let graph = Signature::new(
            vec![TensorSpec::new("x", DataType::Fp32, vec![-1, -1])],
            vec![],
        );
        let ml = MlflowSignature {
            inputs: MlflowSchema::Tensors(vec![TensorSpec::new("x", DataType::Fp64, vec![-1, 4])]),
            outputs: None,
        };
        let sig = Signature::resolve(graph, Some(&ml));
        assert_eq!(sig.inputs[0].shape, vec![-1, 4]);
        assert_eq!(sig.inputs[0].dtype, DataType::Fp32);
        assert!(sig.supports_batching());
    }

    #[test]
    fn ranges() {
        let r = FeatureRanges::from_json(
            r#"{"float_input": {"min": [4.0, 2.0, null, 0.1], "max": [8.0, 4.5, 7.0, 2.5]}, "b": {"max": 10}}"#,
        )
        .unwrap();
        let fi = r.get("float_input").unwrap();
        assert_eq!(fi.bounds(2), (None, Some(7.0)));
        assert_eq!(r.get("b").unwrap().bounds(5), (None, Some(10.0)));
        assert!(FeatureRanges::from_json(r#"{"x": {"min": [1, 2], "max": [0, 3]}}"#).is_err());
        assert!(FeatureRanges::from_json(r#"{"x": {"min": [1, 2], "max": [3, 4, 5]}}"#).is_err());
        assert!(FeatureRanges::from_json(r#"{"x": {"lo": 1}}"#).is_err());
    }
}
