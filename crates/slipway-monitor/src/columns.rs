//! The prediction log's columns: fixed ones, then one per input feature and
//! per output value, named from the model's signature.
//!
//! A tensor of shape `[batch, n]` gives `n` columns `name[0]` … `name[n-1]`
//! (`name` alone when each row holds one value); higher ranks are flattened
//! row-major. A model logged with a column-based MLflow signature (one 2-D
//! input whose last dimension matches the columns) gets the column names
//! instead. Tensors of more than [`MAX_TENSOR_COLUMNS`] values per row
//! (images, embeddings) are left out of the log, and the schema says so.

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use slipway_runtime::{MlflowSchema, MlflowSignature, Tensor, TensorData};
use slipway_serving::Prediction;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// Values per row above which a tensor is not logged.
pub const MAX_TENSOR_COLUMNS: usize = 1024;

/// The fixed columns of every file, in order. `deployment` and `version`
/// are not in the files: they are partition directories
/// (`deployment=…/version=…`), which pyarrow, pandas and DuckDB turn into
/// columns (a column of the same name in the files would clash with them).
pub const FIXED_COLUMNS: [&str; 6] = ["time", "request_id", "row", "role", "latency_ms", "status"];

/// Names no feature or output column may take: the fixed columns and the
/// partition columns.
pub const RESERVED_NAMES: [&str; 10] = [
    "time",
    "request_id",
    "row",
    "role",
    "latency_ms",
    "status",
    "deployment",
    "version",
    "date",
    "hour",
];

/// Field metadata key saying whether a column is an input or an output.
pub const SIDE_KEY: &str = "slipway.side";

/// Whether a column comes from the model's inputs or outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// An input feature.
    Input,
    /// A model output.
    Output,
}

impl Side {
    /// The metadata value (`input`, `output`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }

    /// Parses a metadata value.
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "input" => Some(Self::Input),
            "output" => Some(Self::Output),
            _ => None,
        }
    }
}

/// The Arrow type a tensor's values are stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `FP16` (widened) and `FP32`.
    F32,
    /// `FP64`.
    F64,
    /// Every integer type (unsigned 64-bit values saturate).
    I64,
    /// `BOOL`.
    Bool,
    /// `BYTES`, as UTF-8 (invalid sequences replaced).
    Str,
}

impl ValueKind {
    fn of(data: &TensorData) -> ValueKind {
        match data {
            TensorData::Fp16(_) | TensorData::Fp32(_) => Self::F32,
            TensorData::Fp64(_) => Self::F64,
            TensorData::Bool(_) => Self::Bool,
            TensorData::Bytes(_) => Self::Str,
            _ => Self::I64,
        }
    }

    fn from_dtype(d: slipway_runtime::DataType) -> ValueKind {
        use slipway_runtime::DataType as D;
        match d {
            D::Fp16 | D::Fp32 => Self::F32,
            D::Fp64 => Self::F64,
            D::Bool => Self::Bool,
            D::Bytes => Self::Str,
            _ => Self::I64,
        }
    }

    fn arrow(self) -> DataType {
        match self {
            Self::F32 => DataType::Float32,
            Self::F64 => DataType::Float64,
            Self::I64 => DataType::Int64,
            Self::Bool => DataType::Boolean,
            Self::Str => DataType::Utf8,
        }
    }
}

/// One feature or output column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Input or output.
    pub side: Side,
    /// Index of the tensor among the inputs (or outputs).
    pub tensor: usize,
    /// Element within a row of that tensor.
    pub offset: usize,
    /// Stored type.
    pub kind: ValueKind,
}

/// The columns of one version's log files.
#[derive(Debug, Clone)]
pub struct LogSchema {
    /// Feature and output columns, in order (inputs first).
    pub columns: Vec<Column>,
    /// Tensors left out, with the reason.
    pub left_out: Vec<String>,
    /// Values per row of each input tensor, then of each output tensor.
    widths: (Vec<usize>, Vec<usize>),
    arrow: SchemaRef,
}

fn row_width(t: &Tensor) -> usize {
    t.shape
        .iter()
        .skip(1)
        .map(|d| (*d).max(0) as usize)
        .product()
}

fn rows_of(t: &Tensor) -> usize {
    match t.shape.first() {
        Some(n) => (*n).max(0) as usize,
        None => 1,
    }
}

/// A tensor as the planner sees it: name, rank, values per row (`None`
/// when a dimension is variable), stored type.
type TensorShape = (String, usize, Option<usize>, ValueKind);

/// Names the columns of the tensors, inputs first.
fn plan(
    inputs: &[TensorShape],
    outputs: &[TensorShape],
    column_names: Option<&[String]>,
) -> (Vec<Column>, Vec<String>) {
    let mut columns = Vec::new();
    let mut left_out = Vec::new();
    let mut taken: HashMap<String, ()> = RESERVED_NAMES
        .iter()
        .map(|c| ((*c).to_string(), ()))
        .collect();
    let single_input = inputs.len() == 1;
    for (side, tensors) in [(Side::Input, inputs), (Side::Output, outputs)] {
        for (ti, (tname, rank, width, kind)) in tensors.iter().enumerate() {
            let Some(width) = *width else {
                left_out.push(format!(
                    "{} '{tname}': a variable dimension beyond the batch",
                    side.as_str()
                ));
                continue;
            };
            if width > MAX_TENSOR_COLUMNS {
                left_out.push(format!(
                    "{} '{tname}': {width} values per row (more than {MAX_TENSOR_COLUMNS})",
                    side.as_str()
                ));
                continue;
            }
            let named = side == Side::Input
                && single_input
                && *rank == 2
                && column_names.is_some_and(|n| n.len() == width);
            for offset in 0..width {
                let mut name = if named {
                    column_names.map_or_else(String::new, |n| n[offset].clone())
                } else if width == 1 && *rank <= 1 {
                    tname.clone()
                } else {
                    format!("{tname}[{offset}]")
                };
                if taken.contains_key(&name) {
                    name = format!("{}:{name}", side.as_str());
                }
                taken.insert(name.clone(), ());
                columns.push(Column {
                    name,
                    side,
                    tensor: ti,
                    offset,
                    kind: *kind,
                });
            }
        }
    }
    (columns, left_out)
}

fn tensor_shape(t: &Tensor) -> TensorShape {
    let width = if t.shape.is_empty() { 1 } else { row_width(t) };
    (
        t.name.clone(),
        t.shape.len(),
        Some(width),
        ValueKind::of(&t.data),
    )
}

fn spec_shape(t: &slipway_runtime::TensorSpec) -> TensorShape {
    let dims = t.shape.iter().skip(1);
    let width = if dims.clone().any(|d| *d < 0) {
        None
    } else {
        Some(dims.map(|d| *d as usize).product::<usize>())
    };
    (
        t.name.clone(),
        t.shape.len(),
        width,
        ValueKind::from_dtype(t.dtype),
    )
}

/// The column names of a signature's inputs and outputs in the log, as
/// [`LogSchema::derive`] names them.
pub fn signature_columns(sig: &slipway_runtime::Signature) -> Vec<Column> {
    let inputs: Vec<TensorShape> = sig.inputs.iter().map(spec_shape).collect();
    let outputs: Vec<TensorShape> = sig.outputs.iter().map(spec_shape).collect();
    let names = signature_column_names(sig);
    plan(&inputs, &outputs, names.as_deref()).0
}

/// The names of a column-based signature's columns, when all are named.
pub fn signature_column_names(sig: &slipway_runtime::Signature) -> Option<Vec<String>> {
    sig.columns
        .as_ref()
        .and_then(|cols| cols.iter().map(|c| c.name.clone()).collect())
}

/// The log's columns as a version's MLflow signature (its `MLmodel`) names
/// them, for a replica that has not loaded the model. The inputs are named
/// when every input tensor is named and of known width, or when every
/// column of a column-based signature is named (the log names a single 2-D
/// input's values after them); otherwise `None`. The outputs are known only
/// when the signature's outputs are named tensors of known width: the
/// second value says whether they are.
pub fn mlflow_signature_columns(sig: &MlflowSignature) -> Option<(Vec<Column>, bool)> {
    let unnamed = |n: &str| n.is_empty() || n.bytes().all(|b| b.is_ascii_digit());
    let shapes = |specs: &[slipway_runtime::TensorSpec]| -> Option<Vec<TensorShape>> {
        specs
            .iter()
            .map(|t| {
                let shape = spec_shape(t);
                (!unnamed(&t.name) && shape.2.is_some()).then_some(shape)
            })
            .collect()
    };
    let (inputs, names, kinds) = match &sig.inputs {
        MlflowSchema::Tensors(specs) => (shapes(specs)?, None, None),
        MlflowSchema::Columns(cols) => {
            let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect::<Option<_>>()?;
            let kinds: Vec<ValueKind> = cols
                .iter()
                .map(|c| ValueKind::from_dtype(c.dtype))
                .collect();
            let input = ("input".to_string(), 2, Some(cols.len()), ValueKind::F64);
            (vec![input], Some(names), Some(kinds))
        }
    };
    let outputs = match &sig.outputs {
        Some(MlflowSchema::Tensors(specs)) => shapes(specs),
        _ => None,
    };
    let (mut columns, _) = plan(
        &inputs,
        outputs.as_deref().unwrap_or_default(),
        names.as_deref(),
    );
    if let Some(kinds) = kinds {
        for c in columns.iter_mut().filter(|c| c.side == Side::Input) {
            if let Some(k) = kinds.get(c.offset) {
                c.kind = *k;
            }
        }
    }
    Some((columns, outputs.is_some()))
}

impl LogSchema {
    /// The schema of a version from one of its predictions: tensor names,
    /// types and row widths; `column_names` from a column-based signature.
    pub fn derive(prediction: &Prediction, column_names: Option<&[String]>) -> LogSchema {
        let inputs: Vec<TensorShape> = prediction.inputs.iter().map(tensor_shape).collect();
        let outputs: Vec<TensorShape> = prediction
            .outputs
            .iter()
            .map(|o| tensor_shape(&o.tensor))
            .collect();
        let widths = (
            inputs.iter().map(|t| t.2.unwrap_or(0)).collect(),
            outputs.iter().map(|t| t.2.unwrap_or(0)).collect(),
        );
        let (columns, left_out) = plan(&inputs, &outputs, column_names);
        let arrow = Arc::new(arrow_schema(&columns));
        LogSchema {
            columns,
            left_out,
            widths,
            arrow,
        }
    }

    /// The Arrow schema of the files.
    pub fn arrow(&self) -> SchemaRef {
        self.arrow.clone()
    }

    /// Whether `p` has the shapes this schema was derived from (same tensors,
    /// same row widths).
    pub fn fits(&self, p: &Prediction) -> bool {
        p.inputs.len() == self.widths.0.len()
            && p.inputs
                .iter()
                .zip(&self.widths.0)
                .all(|(t, w)| (if t.shape.is_empty() { 1 } else { row_width(t) }) == *w)
            && (p.outputs.is_empty()
                || (p.outputs.len() == self.widths.1.len()
                    && p.outputs
                        .iter()
                        .zip(&self.widths.1)
                        .all(|(o, w)| row_width(&o.tensor).max(1) == (*w).max(1))))
    }

    /// The predictions as one record batch, a row per request row; returns
    /// it with the earliest and latest time (ms since the epoch).
    pub fn encode(&self, predictions: &[Prediction]) -> Result<(RecordBatch, i64, i64), String> {
        let rows: usize = predictions.iter().map(prediction_rows).sum();
        let mut time = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut request_id = StringBuilder::with_capacity(rows, rows * 16);
        let mut row = Int32Builder::with_capacity(rows);
        let mut role = StringBuilder::with_capacity(rows, rows * 6);
        let mut latency = Float64Builder::with_capacity(rows);
        let mut status = Int32Builder::with_capacity(rows);
        let mut builders: Vec<ValueBuilder> = self
            .columns
            .iter()
            .map(|c| ValueBuilder::new(c.kind, rows))
            .collect();
        let (mut min_ms, mut max_ms) = (i64::MAX, i64::MIN);
        for p in predictions {
            let us = p
                .time
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            min_ms = min_ms.min(us / 1000);
            max_ms = max_ms.max(us / 1000);
            let n = prediction_rows(p);
            let latency_ms = p.latency.as_secs_f64() * 1000.0;
            for r in 0..n {
                time.append_value(us);
                request_id.append_value(&p.request_id);
                row.append_value(i32::try_from(r).unwrap_or(i32::MAX));
                role.append_value(p.role.as_str());
                latency.append_value(latency_ms);
                status.append_value(i32::from(p.status));
                for (c, b) in self.columns.iter().zip(builders.iter_mut()) {
                    let tensor = match c.side {
                        Side::Input => p.inputs.get(c.tensor),
                        Side::Output => p.outputs.get(c.tensor).map(|o| &o.tensor),
                    };
                    let width = match c.side {
                        Side::Input => self.widths.0.get(c.tensor),
                        Side::Output => self.widths.1.get(c.tensor),
                    }
                    .copied()
                    .unwrap_or(1);
                    let value = tensor.filter(|t| t.data.len() == rows_of(t) * width);
                    b.append(value.map(|t| (&t.data, r * width + c.offset)));
                }
            }
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(time.finish()),
            Arc::new(request_id.finish()),
            Arc::new(row.finish()),
            Arc::new(role.finish()),
            Arc::new(latency.finish()),
            Arc::new(status.finish()),
        ];
        arrays.extend(builders.into_iter().map(ValueBuilder::finish));
        let batch = RecordBatch::try_new(self.arrow.clone(), arrays).map_err(|e| e.to_string())?;
        Ok((batch, min_ms, max_ms))
    }
}

/// Rows of a prediction: the batch dimension of its first input.
pub fn prediction_rows(p: &Prediction) -> usize {
    p.inputs.first().map_or(0, rows_of)
}

fn arrow_schema(columns: &[Column]) -> Schema {
    let mut fields = vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("request_id", DataType::Utf8, false),
        Field::new("row", DataType::Int32, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("latency_ms", DataType::Float64, false),
        Field::new("status", DataType::Int32, false),
    ];
    for c in columns {
        fields.push(
            Field::new(&c.name, c.kind.arrow(), true).with_metadata(HashMap::from([(
                SIDE_KEY.to_string(),
                c.side.as_str().to_string(),
            )])),
        );
    }
    Schema::new(fields)
}

enum ValueBuilder {
    F32(Float32Builder),
    F64(Float64Builder),
    I64(Int64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl ValueBuilder {
    fn new(kind: ValueKind, rows: usize) -> Self {
        match kind {
            ValueKind::F32 => Self::F32(Float32Builder::with_capacity(rows)),
            ValueKind::F64 => Self::F64(Float64Builder::with_capacity(rows)),
            ValueKind::I64 => Self::I64(Int64Builder::with_capacity(rows)),
            ValueKind::Bool => Self::Bool(BooleanBuilder::with_capacity(rows)),
            ValueKind::Str => Self::Str(StringBuilder::with_capacity(rows, rows * 8)),
        }
    }

    /// Appends element `i` of `data`, or a null.
    fn append(&mut self, value: Option<(&TensorData, usize)>) {
        let Some((data, i)) = value else {
            self.append_null();
            return;
        };
        match (self, data) {
            (Self::F32(b), TensorData::Fp32(v)) => b.append_option(v.get(i).copied()),
            (Self::F32(b), TensorData::Fp16(v)) => b.append_option(v.get(i).map(|x| x.to_f32())),
            (Self::F64(b), TensorData::Fp64(v)) => b.append_option(v.get(i).copied()),
            (Self::Bool(b), TensorData::Bool(v)) => b.append_option(v.get(i).copied()),
            (Self::Str(b), TensorData::Bytes(v)) => {
                b.append_option(v.get(i).map(|x| String::from_utf8_lossy(x)));
            }
            (Self::I64(b), d) => b.append_option(integer(d, i)),
            (me, _) => me.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::F32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
            Self::Str(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::F32(mut b) => Arc::new(b.finish()),
            Self::F64(mut b) => Arc::new(b.finish()),
            Self::I64(mut b) => Arc::new(b.finish()),
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::Str(mut b) => Arc::new(b.finish()),
        }
    }
}

fn integer(d: &TensorData, i: usize) -> Option<i64> {
    match d {
        TensorData::Uint8(v) => v.get(i).map(|x| i64::from(*x)),
        TensorData::Uint16(v) => v.get(i).map(|x| i64::from(*x)),
        TensorData::Uint32(v) => v.get(i).map(|x| i64::from(*x)),
        TensorData::Uint64(v) => v.get(i).map(|x| i64::try_from(*x).unwrap_or(i64::MAX)),
        TensorData::Int8(v) => v.get(i).map(|x| i64::from(*x)),
        TensorData::Int16(v) => v.get(i).map(|x| i64::from(*x)),
        TensorData::Int32(v) => v.get(i).map(|x| i64::from(*x)),
        TensorData::Int64(v) => v.get(i).copied(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use slipway_runtime::ModelOutput;
    use slipway_serving::Role;
    use std::time::{Duration, SystemTime};

    fn prediction(rows: usize) -> Prediction {
        let x: Vec<f32> = (0..rows * 4).map(|i| i as f32).collect();
        let labels: Vec<i64> = (0..rows as i64).collect();
        let probs: Vec<f32> = (0..rows * 3).map(|i| i as f32 / 10.0).collect();
        Prediction {
            deployment: Arc::from("iris"),
            version: "2".into(),
            role: Role::Stable,
            request_id: Arc::from("req-1"),
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            latency: Duration::from_micros(1500),
            status: 200,
            inputs: vec![
                Tensor::new("float_input", vec![rows as i64, 4], TensorData::Fp32(x)).unwrap(),
            ],
            outputs: vec![
                ModelOutput::plain(
                    Tensor::new("label", vec![rows as i64], TensorData::Int64(labels)).unwrap(),
                ),
                ModelOutput::plain(
                    Tensor::new(
                        "probabilities",
                        vec![rows as i64, 3],
                        TensorData::Fp32(probs),
                    )
                    .unwrap(),
                ),
            ],
        }
    }

    #[test]
    fn columns_are_named_from_tensors_or_signature_columns() {
        let p = prediction(2);
        let s = LogSchema::derive(&p, None);
        let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "float_input[0]",
                "float_input[1]",
                "float_input[2]",
                "float_input[3]",
                "label",
                "probabilities[0]",
                "probabilities[1]",
                "probabilities[2]"
            ]
        );
        let cols: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let s = LogSchema::derive(&p, Some(&cols));
        assert_eq!(s.columns[0].name, "a");
        assert_eq!(s.columns[4].name, "label");
        // a column named like a fixed one keeps its side in the name
        let cols: Vec<String> = ["time", "b", "c", "d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            LogSchema::derive(&p, Some(&cols)).columns[0].name,
            "input:time"
        );
    }

    #[test]
    fn encoding_gives_a_row_per_request_row() {
        let p = prediction(3);
        let s = LogSchema::derive(&p, None);
        assert!(s.fits(&p));
        let (batch, min, max) = s.encode(&[p, prediction(2)]).unwrap();
        assert_eq!(batch.num_rows(), 5);
        assert_eq!((min, max), (1_700_000_000_123, 1_700_000_000_123));
        let col = batch
            .column_by_name("float_input[2]")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Float32Array>()
            .unwrap();
        assert_eq!(col.value(1), 6.0);
        let label = batch
            .column_by_name("label")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        assert_eq!(label.value(4), 1);
        let field = batch.schema().field_with_name("label").unwrap().clone();
        assert_eq!(
            field.metadata().get(SIDE_KEY).map(String::as_str),
            Some("output")
        );
    }

    #[test]
    fn an_mlmodel_signature_names_the_columns_the_log_will_have() {
        let tensors = MlflowSignature::from_mlmodel_yaml(
            "signature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 4]}, \"name\": \"float_input\"}]'\n  outputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"int64\", \"shape\": [-1]}, \"name\": \"label\"}, {\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 3]}, \"name\": \"probabilities\"}]'\n",
        )
        .unwrap()
        .unwrap();
        let (cols, outputs_known) = mlflow_signature_columns(&tensors).unwrap();
        // the same names the log gives a prediction of that model
        let logged = LogSchema::derive(&prediction(1), None);
        assert_eq!(cols, logged.columns);
        assert!(outputs_known);

        let columns = MlflowSignature::from_mlmodel_yaml(
            "signature:\n  inputs: '[{\"type\": \"double\", \"name\": \"a\"}, {\"type\": \"string\", \"name\": \"time\"}]'\n  outputs: '[{\"type\": \"long\"}]'\n",
        )
        .unwrap()
        .unwrap();
        let (cols, outputs_known) = mlflow_signature_columns(&columns).unwrap();
        let names: Vec<(&str, ValueKind)> =
            cols.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        assert_eq!(
            names,
            [("a", ValueKind::F64), ("input:time", ValueKind::Str)]
        );
        assert!(!outputs_known);

        // an unnamed tensor: the log names it after the ONNX graph, unknown here
        let unnamed = MlflowSignature::from_mlmodel_yaml(
            "signature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 4]}}]'\n",
        )
        .unwrap()
        .unwrap();
        assert!(mlflow_signature_columns(&unnamed).is_none());
    }

    #[test]
    fn a_failed_request_has_null_outputs() {
        let mut p = prediction(1);
        let s = LogSchema::derive(&p, None);
        p.outputs.clear();
        p.status = 500;
        assert!(s.fits(&p));
        let (batch, _, _) = s.encode(&[p]).unwrap();
        assert!(batch.column_by_name("label").unwrap().is_null(0));
        assert!(!batch.column_by_name("float_input[0]").unwrap().is_null(0));
    }
}
