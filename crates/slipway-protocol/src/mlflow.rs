//! MLflow scoring protocol (`POST /invocations`, as `mlflow models serve`
//! accepts it), converted to named input tensors for a [`Signature`].
//!
//! # Requests
//!
//! `application/json` with exactly one of:
//!
//! * `{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`
//! * `{"dataframe_records": [{"col": value, ...}, ...]}`
//! * `{"instances": [...]}`: a list of rows (one tensor), or a list of objects
//!   `{"input_name": value}` (one tensor per name, stacked along dim 0);
//! * `{"inputs": ...}`: a (nested) list for a single-input model, or an object
//!   `{"input_name": (nested) list}`;
//!
//! plus an optional `"params"` object (returned as is). `text/csv` is a
//! DataFrame with a header row (a leading unnamed column, as `pandas.to_csv`
//! writes for the index, is dropped).
//!
//! DataFrames become tensors as MLflow's ONNX flavour does: for a model with
//! one input, all columns form one 2-D tensor `[rows, columns]` — in the
//! order of the column-based MLflow signature when there is one (missing
//! columns are an error, extra ones ignored), else in the request's order; for
//! a model with several inputs, each input is the column of the same name.
//! Column-shaped `instances`/`inputs` whose keys are the signature's column
//! names are treated as a DataFrame too. Values are converted to the model's
//! input types; `null` (and an empty CSV cell) is NaN for float inputs.
//!
//! # Responses
//!
//! [`encode_predictions`] mirrors MLflow's ONNX pyfunc: DataFrame requests get
//! `{"predictions": [{"output": value, ...}, ...]}` (one record per row; a
//! single value per row is a scalar, a classifier's probabilities an object
//! `{label: probability}`), tensor requests get
//! `{"predictions": {"output": nested list, ...}}` (probabilities as a list of
//! `{label: probability}` objects).

use serde_json::Value;
use slipway_runtime::{
    ClassLabels, DataType, ModelOutput, Signature, Tensor, TensorData, TensorSpec,
};

use crate::data::{json_kind, push_json_scalar};
use crate::error::ProtocolError;

/// The request form, which decides the response form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoringFormat {
    /// `dataframe_split`
    DataframeSplit,
    /// `dataframe_records`
    DataframeRecords,
    /// `text/csv`
    Csv,
    /// `instances`
    Instances,
    /// `inputs`
    Inputs,
}

impl ScoringFormat {
    /// True for the DataFrame forms (records responses).
    pub fn is_dataframe(self) -> bool {
        matches!(
            self,
            ScoringFormat::DataframeSplit | ScoringFormat::DataframeRecords | ScoringFormat::Csv
        )
    }
}

/// A parsed scoring request.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringRequest {
    /// The request form, as far as it decides the response's shape: a
    /// DataFrame whose columns are whole input tensors is reported as
    /// [`ScoringFormat::Inputs`], since it answers like `inputs`.
    pub format: ScoringFormat,
    /// Input tensors, named after the signature's inputs.
    pub inputs: Vec<Tensor>,
    /// The `params` object, if any.
    pub params: Option<Value>,
}

pub(crate) const FORMATS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];

/// Parses a request given its `Content-Type`.
pub fn parse_request(
    content_type: &str,
    body: &[u8],
    sig: &Signature,
) -> Result<ScoringRequest, ProtocolError> {
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    for p in parts {
        let key = p
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !key.is_empty() && key != "charset" {
            return Err(ProtocolError::UnsupportedMediaType {
                content_type: content_type.to_string(),
            });
        }
    }
    match mime.as_str() {
        "application/json" => parse_json(body, sig),
        "text/csv" => parse_csv(body, sig),
        _ => Err(ProtocolError::UnsupportedMediaType {
            content_type: content_type.to_string(),
        }),
    }
}

/// A DataFrame, column-major.
struct Frame {
    /// Column names (`None` = positional).
    names: Vec<Option<String>>,
    /// Column cells.
    columns: Vec<Vec<Value>>,
    rows: usize,
    /// Cells are CSV text (numbers to be parsed).
    text: bool,
    /// Field name for errors.
    field: &'static str,
}

/// Parses an `application/json` body.
pub fn parse_json(body: &[u8], sig: &Signature) -> Result<ScoringRequest, ProtocolError> {
    // the commonest form in one pass; anything else (errors included) below
    if let Some(req) = crate::scoring_fast::decode(body, sig) {
        return Ok(req);
    }
    parse_json_tree(body, sig)
}

/// [`parse_json`] through a `serde_json::Value` tree: every form, every
/// error.
pub(crate) fn parse_json_tree(
    body: &[u8],
    sig: &Signature,
) -> Result<ScoringRequest, ProtocolError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| ProtocolError::Json {
        field: String::new(),
        message: e.to_string(),
    })?;
    let Value::Object(mut obj) = doc else {
        return Err(ProtocolError::field(
            "body",
            format!(
                "must be a JSON object with exactly one of {}; got {}",
                FORMATS.join(", "),
                json_kind(&doc)
            ),
        ));
    };
    let present: Vec<&str> = FORMATS
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if present.len() != 1 {
        let keys: Vec<&String> = obj.keys().collect();
        return Err(ProtocolError::field(
            "body",
            format!(
                "must contain exactly one of {}; got keys {keys:?}",
                FORMATS.join(", ")
            ),
        ));
    }
    let key = present[0];
    let params = obj.remove("params");
    let value = obj.remove(key).unwrap_or(Value::Null);
    let (format, inputs) = match key {
        "dataframe_split" | "dataframe_records" => {
            let frame = if key == "dataframe_split" {
                split_frame(value)?
            } else {
                records_frame(value)?
            };
            // A frame whose columns are whole input tensors answers like
            // `inputs` (a dict of outputs), as MLflow's scoring server does.
            let format = if is_tensor_frame(&frame, sig) {
                ScoringFormat::Inputs
            } else if key == "dataframe_split" {
                ScoringFormat::DataframeSplit
            } else {
                ScoringFormat::DataframeRecords
            };
            (format, frame_to_tensors(frame, sig)?)
        }
        "instances" => (ScoringFormat::Instances, instances(value, sig)?),
        _ => (ScoringFormat::Inputs, inputs(value, sig)?),
    };
    Ok(ScoringRequest {
        format,
        inputs,
        params,
    })
}

fn split_frame(v: Value) -> Result<Frame, ProtocolError> {
    const F: &str = "dataframe_split";
    let Value::Object(mut o) = v else {
        return Err(ProtocolError::field(
            F,
            format!(
                "must be an object with 'columns' and 'data'; got {}",
                json_kind(&v)
            ),
        ));
    };
    let data = match o.remove("data") {
        Some(Value::Array(rows)) => rows,
        Some(other) => {
            return Err(ProtocolError::field(
                format!("{F}.data"),
                format!("must be a list of rows; got {}", json_kind(&other)),
            ))
        }
        None => {
            return Err(ProtocolError::Missing {
                field: format!("{F}.data"),
            })
        }
    };
    let names: Option<Vec<Option<String>>> = match o.remove("columns") {
        None | Some(Value::Null) => None,
        Some(Value::Array(cols)) => Some(
            cols.into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    Value::String(s) => Ok(Some(s)),
                    Value::Number(n) => Ok(Some(n.to_string())),
                    other => Err(ProtocolError::field(
                        format!("{F}.columns[{i}]"),
                        format!("must be a string; got {}", json_kind(&other)),
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err(ProtocolError::field(
                format!("{F}.columns"),
                format!("must be a list; got {}", json_kind(&other)),
            ))
        }
    };
    let width = names.as_ref().map_or_else(
        || match data.first() {
            Some(Value::Array(r)) => r.len(),
            _ => 1,
        },
        Vec::len,
    );
    let mut columns = vec![Vec::with_capacity(data.len()); width];
    let rows = data.len();
    for (r, row) in data.into_iter().enumerate() {
        let cells = match row {
            Value::Array(c) => c,
            scalar if width == 1 => vec![scalar],
            other => {
                return Err(ProtocolError::field(
                    format!("{F}.data[{r}]"),
                    format!("must be a list; got {}", json_kind(&other)),
                ))
            }
        };
        if cells.len() != width {
            return Err(ProtocolError::field(
                format!("{F}.data[{r}]"),
                format!("has {} values but there are {width} columns", cells.len()),
            ));
        }
        for (c, cell) in cells.into_iter().enumerate() {
            columns[c].push(cell);
        }
    }
    Ok(Frame {
        names: names.unwrap_or_else(|| vec![None; width]),
        columns,
        rows,
        text: false,
        field: F,
    })
}

fn records_frame(v: Value) -> Result<Frame, ProtocolError> {
    const F: &str = "dataframe_records";
    let Value::Array(records) = v else {
        return Err(ProtocolError::field(
            F,
            format!("must be a list of records; got {}", json_kind(&v)),
        ));
    };
    records_to_frame(F, records)
}

fn records_to_frame(field: &'static str, records: Vec<Value>) -> Result<Frame, ProtocolError> {
    let mut names: Vec<Option<String>> = Vec::new();
    let mut columns: Vec<Vec<Value>> = Vec::new();
    let rows = records.len();
    for (r, rec) in records.into_iter().enumerate() {
        let Value::Object(m) = rec else {
            return Err(ProtocolError::field(
                format!("{field}[{r}]"),
                format!("must be an object; got {}", json_kind(&rec)),
            ));
        };
        for (k, v) in m {
            let c = match names.iter().position(|n| n.as_deref() == Some(k.as_str())) {
                Some(c) => c,
                None => {
                    names.push(Some(k));
                    // earlier rows lack this column: missing values
                    columns.push(vec![Value::Null; r]);
                    columns.len() - 1
                }
            };
            columns[c].push(v);
        }
        for col in &mut columns {
            if col.len() < r + 1 {
                col.push(Value::Null);
            }
        }
    }
    Ok(Frame {
        names,
        columns,
        rows,
        text: false,
        field,
    })
}

/// The single-input case: which frame columns, in which order.
fn single_input_columns(frame: &Frame, sig: &Signature) -> Result<Vec<usize>, ProtocolError> {
    column_order(&frame.names, frame.field, sig)
}

/// [`single_input_columns`] from the column names alone (one per column).
pub(crate) fn column_order(
    names: &[Option<String>],
    field: &str,
    sig: &Signature,
) -> Result<Vec<usize>, ProtocolError> {
    let Some(cols) = &sig.columns else {
        return Ok((0..names.len()).collect());
    };
    let mut order = Vec::with_capacity(cols.len());
    for (i, spec) in cols.iter().enumerate() {
        match &spec.name {
            Some(name) => {
                match names
                    .iter()
                    .position(|n| n.as_deref() == Some(name.as_str()))
                {
                    Some(p) => order.push(p),
                    None => {
                        return Err(ProtocolError::field(
                            field,
                            format!(
                            "column '{name}' is missing; the model's signature requires columns {}",
                            cols.iter()
                                .map(|c| format!("'{}'", c.name.as_deref().unwrap_or("?")))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        ))
                    }
                }
            }
            None if i < names.len() => order.push(i),
            None => {
                return Err(ProtocolError::field(
                    field,
                    format!(
                        "has {} columns; the model's signature has {}",
                        names.len(),
                        cols.len()
                    ),
                ))
            }
        }
    }
    Ok(order)
}

fn push_cell(out: &mut TensorData, v: &Value, text: bool) -> Result<(), String> {
    if text {
        if let Value::String(s) = v {
            let dtype = out.dtype();
            if dtype == DataType::Bytes {
                return push_json_scalar(out, v, false);
            }
            let t = s.trim();
            let parsed = if t.is_empty() {
                Value::Null
            } else if dtype == DataType::Bool {
                match t.to_ascii_lowercase().as_str() {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    _ => return Err(format!("expected true or false, got {t:?}")),
                }
            } else if let Ok(i) = t.parse::<i64>() {
                Value::from(i)
            } else if let Ok(u) = t.parse::<u64>() {
                Value::from(u)
            } else if let Ok(f) = t.parse::<f64>() {
                if f.is_finite() {
                    Value::from(f)
                } else {
                    Value::String(t.to_string())
                }
            } else {
                Value::String(t.to_string())
            };
            return push_json_scalar(out, &parsed, true);
        }
    }
    push_json_scalar(out, v, true)
}

/// Whether the frame's columns are whole input tensors (one column per model
/// input) rather than features laid along a single input's last dimension.
/// For a single-input model that is a lone column named after the input and
/// holding one array per row, as MLflow's scoring server reads it.
fn is_tensor_frame(frame: &Frame, sig: &Signature) -> bool {
    if sig.inputs.len() != 1 {
        return true;
    }
    frame.names.len() == 1
        && frame.names[0].as_deref() == Some(sig.inputs[0].name.as_str())
        && frame.columns[0].first().is_some_and(Value::is_array)
}

fn frame_to_tensors(frame: Frame, sig: &Signature) -> Result<Vec<Tensor>, ProtocolError> {
    let rows =
        i64::try_from(frame.rows).map_err(|e| ProtocolError::field(frame.field, e.to_string()))?;
    if !is_tensor_frame(&frame, sig) {
        let spec = &sig.inputs[0];
        let order = single_input_columns(&frame, sig)?;
        let mut data = TensorData::with_capacity(spec.dtype, frame.rows * order.len());
        for r in 0..frame.rows {
            for &c in &order {
                push_cell(&mut data, &frame.columns[c][r], frame.text).map_err(|message| {
                    let col = frame.names[c].clone().unwrap_or_else(|| c.to_string());
                    ProtocolError::field(format!("{} row {r} column '{col}'", frame.field), message)
                })?;
            }
        }
        let width = i64::try_from(order.len())
            .map_err(|e| ProtocolError::field(frame.field, e.to_string()))?;
        let shape = frame_shape(spec, rows, width);
        return Ok(vec![Tensor {
            name: spec.name.clone(),
            shape,
            data,
        }]);
    }
    let mut out = Vec::with_capacity(sig.inputs.len());
    for spec in &sig.inputs {
        let Some(c) = frame
            .names
            .iter()
            .position(|n| n.as_deref() == Some(spec.name.as_str()))
        else {
            return Err(ProtocolError::field(
                frame.field,
                format!(
                    "column '{}' is missing; this model takes one column per input: {}",
                    spec.name,
                    sig.inputs
                        .iter()
                        .map(|s| format!("'{}'", s.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let field = format!("{} column '{}'", frame.field, spec.name);
        let mut data = TensorData::with_capacity(spec.dtype, frame.rows);
        let mut cell_shape: Option<Vec<i64>> = None;
        for (r, cell) in frame.columns[c].iter().enumerate() {
            let s = infer_shape(&format!("{field} row {r}"), cell)?;
            match &cell_shape {
                None => cell_shape = Some(s),
                Some(prev) if *prev != s => {
                    return Err(ProtocolError::field(
                        format!("{field} row {r}"),
                        format!("has shape {s:?} but earlier rows have {prev:?}"),
                    ))
                }
                _ => {}
            }
            flatten_into(&format!("{field} row {r}"), cell, &mut data, frame.text)?;
        }
        let mut shape = vec![rows];
        shape.extend(cell_shape.unwrap_or_default());
        if shape.len() == 1 && spec.shape.len() == 2 && spec.shape[1] == 1 {
            shape.push(1);
        }
        out.push(Tensor {
            name: spec.name.clone(),
            shape,
            data,
        });
    }
    Ok(out)
}

/// The shape of a single input fed by `width` frame columns over `rows`
/// rows: a vector when the input is 1-D and one column feeds it.
pub(crate) fn frame_shape(spec: &TensorSpec, rows: i64, width: i64) -> Vec<i64> {
    if spec.shape.len() == 1 && width == 1 {
        vec![rows]
    } else {
        vec![rows, width]
    }
}

/// Shape of a (nested) JSON array; ragged arrays are an error.
fn infer_shape(field: &str, v: &Value) -> Result<Vec<i64>, ProtocolError> {
    match v {
        Value::Array(items) => {
            let mut shape = vec![i64::try_from(items.len())
                .map_err(|e| ProtocolError::field(field, e.to_string()))?];
            if let Some(first) = items.first() {
                let inner = infer_shape(&format!("{field}[0]"), first)?;
                for (i, item) in items.iter().enumerate().skip(1) {
                    let s = infer_shape(&format!("{field}[{i}]"), item)?;
                    if s != inner {
                        return Err(ProtocolError::field(
                            format!("{field}[{i}]"),
                            format!("has shape {s:?} but {field}[0] has {inner:?}; arrays must not be ragged"),
                        ));
                    }
                }
                shape.extend(inner);
            }
            Ok(shape)
        }
        _ => Ok(Vec::new()),
    }
}

fn flatten_into(
    field: &str,
    v: &Value,
    out: &mut TensorData,
    text: bool,
) -> Result<(), ProtocolError> {
    match v {
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| flatten_into(field, i, out, text)),
        leaf => push_cell(out, leaf, text).map_err(|message| ProtocolError::Element {
            field: field.to_string(),
            index: out.len(),
            message,
        }),
    }
}

fn tensor_from_nested(field: &str, spec: &TensorSpec, v: &Value) -> Result<Tensor, ProtocolError> {
    let shape = infer_shape(field, v)?;
    let mut data = TensorData::with_capacity(spec.dtype, 0);
    flatten_into(field, v, &mut data, false)?;
    Ok(Tensor {
        name: spec.name.clone(),
        shape,
        data,
    })
}

/// Keys matching the signature's column names (and not its input names)
/// mean "a DataFrame in columnar form".
fn is_columnar(keys: &[&String], sig: &Signature) -> bool {
    let Some(cols) = &sig.columns else {
        return false;
    };
    !keys.is_empty()
        && keys.iter().all(|k| sig.input(k).is_none())
        && keys
            .iter()
            .all(|k| cols.iter().any(|c| c.name.as_deref() == Some(k.as_str())))
}

fn instances(v: Value, sig: &Signature) -> Result<Vec<Tensor>, ProtocolError> {
    const F: &str = "instances";
    let Value::Array(items) = v else {
        return Err(ProtocolError::field(
            F,
            format!("must be a list; got {}", json_kind(&v)),
        ));
    };
    if matches!(items.first(), Some(Value::Object(_))) {
        let keys: Vec<String> = match items.first() {
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let key_refs: Vec<&String> = keys.iter().collect();
        let frame = records_to_frame(F, items)?;
        if is_columnar(&key_refs, sig) {
            return frame_to_tensors(frame, sig);
        }
        // named tensors, stacked along dim 0
        let mut out = Vec::with_capacity(sig.inputs.len());
        for (c, name) in frame.names.iter().enumerate() {
            let name = name.clone().unwrap_or_default();
            let spec = sig
                .input(&name)
                .ok_or_else(|| unknown_input(&format!("{F}[*].{name}"), &name, sig))?;
            let stacked = Value::Array(frame.columns[c].clone());
            out.push(tensor_from_nested(
                &format!("{F}[*].{name}"),
                spec,
                &stacked,
            )?);
        }
        return Ok(out);
    }
    let spec = single_input(F, sig)?;
    Ok(vec![tensor_from_nested(F, spec, &Value::Array(items))?])
}

fn inputs(v: Value, sig: &Signature) -> Result<Vec<Tensor>, ProtocolError> {
    const F: &str = "inputs";
    match v {
        Value::Object(m) => {
            let keys: Vec<&String> = m.keys().collect();
            if is_columnar(&keys, sig) {
                let (names, columns): (Vec<Option<String>>, Vec<Vec<Value>>) = m
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            Some(k),
                            match v {
                                Value::Array(a) => a,
                                scalar => vec![scalar],
                            },
                        )
                    })
                    .unzip();
                let rows = columns.first().map_or(0, Vec::len);
                if let Some((i, _)) = columns.iter().enumerate().find(|(_, c)| c.len() != rows) {
                    return Err(ProtocolError::field(
                        format!("{F}.{}", names[i].clone().unwrap_or_default()),
                        format!(
                            "has {} values but other columns have {rows}",
                            columns[i].len()
                        ),
                    ));
                }
                return frame_to_tensors(
                    Frame {
                        names,
                        columns,
                        rows,
                        text: false,
                        field: F,
                    },
                    sig,
                );
            }
            let mut out = Vec::with_capacity(m.len());
            for (name, value) in m {
                let field = format!("{F}.{name}");
                let spec = sig
                    .input(&name)
                    .ok_or_else(|| unknown_input(&field, &name, sig))?;
                out.push(tensor_from_nested(&field, spec, &value)?);
            }
            Ok(out)
        }
        Value::Array(_) => {
            let spec = single_input(F, sig)?;
            Ok(vec![tensor_from_nested(F, spec, &v)?])
        }
        other => Err(ProtocolError::field(
            F,
            format!("must be a list or an object; got {}", json_kind(&other)),
        )),
    }
}

fn unknown_input(field: &str, name: &str, sig: &Signature) -> ProtocolError {
    ProtocolError::field(
        field,
        format!(
            "'{name}' is not an input of the model; its inputs are {}",
            sig.inputs
                .iter()
                .map(|s| format!("'{}'", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

fn single_input<'a>(field: &str, sig: &'a Signature) -> Result<&'a TensorSpec, ProtocolError> {
    match sig.inputs.as_slice() {
        [one] => Ok(one),
        many => Err(ProtocolError::field(
            field,
            format!(
                "a list can only feed a model with one input; this model has {} ({}): send an object keyed by input name",
                many.len(),
                many.iter().map(|s| format!("'{}'", s.name)).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Parses a `text/csv` body (header row first).
pub fn parse_csv(body: &[u8], sig: &Signature) -> Result<ScoringRequest, ProtocolError> {
    // unquoted fields for a single input in one pass; the rest (errors
    // included) below
    if let Some(req) = crate::scoring_fast::decode_csv(body, sig) {
        return Ok(req);
    }
    parse_csv_tree(body, sig)
}

/// [`parse_csv`] through records of strings: every form, every error.
pub(crate) fn parse_csv_tree(
    body: &[u8],
    sig: &Signature,
) -> Result<ScoringRequest, ProtocolError> {
    const F: &str = "csv";
    let text = std::str::from_utf8(body)
        .map_err(|e| ProtocolError::field(F, format!("is not valid UTF-8: {e}")))?;
    if matches!(text.trim_start().chars().next(), Some('{') | Some('[')) {
        return Err(ProtocolError::field(
            F,
            "looks like JSON, but the Content-Type is text/csv; send JSON with Content-Type: application/json, or CSV with a header row",
        ));
    }
    let mut records = parse_csv_records(text)?;
    if records.is_empty() {
        return Err(ProtocolError::field(F, "is empty; expected a header row"));
    }
    if records.len() == 1 {
        return Err(ProtocolError::field(
            F,
            "has a header row but no data rows; send at least one row to predict",
        ));
    }
    let mut header = records.remove(0);
    let drop_index = header.first().is_some_and(String::is_empty);
    if drop_index {
        header.remove(0);
    }
    let width = header.len();
    let mut columns = vec![Vec::with_capacity(records.len()); width];
    let rows = records.len();
    for (r, mut rec) in records.into_iter().enumerate() {
        if drop_index && !rec.is_empty() {
            rec.remove(0);
        }
        if rec.len() != width {
            return Err(ProtocolError::field(
                format!("{F} line {}", r + 2),
                format!("has {} fields but the header has {width}", rec.len()),
            ));
        }
        for (c, cell) in rec.into_iter().enumerate() {
            columns[c].push(Value::String(cell));
        }
    }
    let frame = Frame {
        names: header.into_iter().map(Some).collect(),
        columns,
        rows,
        text: true,
        field: F,
    };
    Ok(ScoringRequest {
        format: ScoringFormat::Csv,
        inputs: frame_to_tensors(frame, sig)?,
        params: None,
    })
}

/// RFC 4180 records (quoted fields, `""` escapes, LF or CRLF); blank lines
/// are skipped.
pub fn parse_csv_records(text: &str) -> Result<Vec<Vec<String>>, ProtocolError> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut field_started = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                in_quotes = true;
                field_started = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                field_started = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if field_started || !field.is_empty() || !record.is_empty() {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                field_started = false;
                line += 1;
            }
            _ => {
                field.push(c);
                field_started = true;
            }
        }
    }
    if in_quotes {
        return Err(ProtocolError::field(
            format!("csv line {line}"),
            "has an unterminated quoted field",
        ));
    }
    if field_started || !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// Appends `v` as JSON (infallible for the scalars and strings written here).
fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // writing a number, a bool or a str into a Vec cannot fail
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Element `i` as a JSON scalar: non-finite floats as MLflow writes them
/// (`"NaN"`, `"Infinity"`, `"-Infinity"`), bytes as UTF-8 text (checked
/// beforehand by [`first_non_utf8`]).
fn put_scalar(out: &mut Vec<u8>, d: &TensorData, i: usize) {
    let float = |out: &mut Vec<u8>, x: f64| {
        if x.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if x.is_infinite() {
            out.extend_from_slice(if x > 0.0 {
                b"\"Infinity\""
            } else {
                b"\"-Infinity\""
            });
        } else {
            put(out, &x);
        }
    };
    match d {
        TensorData::Bool(v) => put(out, &v[i]),
        TensorData::Uint8(v) => put(out, &v[i]),
        TensorData::Uint16(v) => put(out, &v[i]),
        TensorData::Uint32(v) => put(out, &v[i]),
        TensorData::Uint64(v) => put(out, &v[i]),
        TensorData::Int8(v) => put(out, &v[i]),
        TensorData::Int16(v) => put(out, &v[i]),
        TensorData::Int32(v) => put(out, &v[i]),
        TensorData::Int64(v) => put(out, &v[i]),
        TensorData::Fp16(v) => float(out, f64::from(v[i])),
        TensorData::Fp32(v) => float(out, f64::from(v[i])),
        TensorData::Fp64(v) => float(out, v[i]),
        TensorData::Bytes(v) => put(out, &String::from_utf8_lossy(&v[i])),
    }
}

/// The first element in `range` that is bytes but not UTF-8 (which JSON
/// cannot carry).
fn first_non_utf8(d: &TensorData, range: std::ops::Range<usize>) -> Option<usize> {
    let TensorData::Bytes(v) = d else {
        return None;
    };
    range
        .into_iter()
        .find(|&i| v.get(i).is_some_and(|b| std::str::from_utf8(b).is_err()))
}

/// Elements `start..start+count(shape)` as a nested JSON list; returns the
/// count.
fn put_nested(out: &mut Vec<u8>, d: &TensorData, shape: &[i64], start: usize) -> usize {
    match shape.split_first() {
        None => {
            put_scalar(out, d, start);
            1
        }
        Some((n, rest)) => {
            out.push(b'[');
            let mut used = 0;
            for k in 0..*n {
                if k > 0 {
                    out.push(b',');
                }
                used += put_nested(out, d, rest, start + used);
            }
            out.push(b']');
            used
        }
    }
}

/// Keys in the order a JSON object with these keys inserted in turn is
/// written (sorted; a repeated key keeps its last position).
fn object_order<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let map: std::collections::BTreeMap<&str, usize> =
        keys.enumerate().map(|(i, k)| (k, i)).collect();
    map.into_iter().collect()
}

/// A classifier output's label keys (as text) and the classes in the
/// order their keys are written.
struct LabelKeys {
    keys: Vec<String>,
    order: Vec<usize>,
}

impl LabelKeys {
    fn new(labels: &ClassLabels) -> Self {
        let keys: Vec<String> = match labels {
            ClassLabels::Int64(v) => v.iter().map(i64::to_string).collect(),
            ClassLabels::String(v) => v.clone(),
        };
        let order = object_order(keys.iter().map(String::as_str))
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        LabelKeys { keys, order }
    }

    /// `{label: probability}` for row `r` of a `[rows, classes]` tensor.
    fn put_row(&self, out: &mut Vec<u8>, t: &Tensor, r: usize) {
        out.push(b'{');
        for (n, &c) in self.order.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            put(out, self.keys[c].as_str());
            out.push(b':');
            put_scalar(out, &t.data, r * self.keys.len() + c);
        }
        out.push(b'}');
    }
}

/// How one output is written.
struct OutputPlan<'a> {
    output: &'a ModelOutput,
    labels: Option<LabelKeys>,
    /// Elements per row.
    per_row: usize,
}

impl<'a> OutputPlan<'a> {
    fn new(output: &'a ModelOutput) -> Self {
        let labels = output.class_labels.as_ref().map(LabelKeys::new);
        let per_row = match &labels {
            Some(l) => l.keys.len(),
            None => output
                .tensor
                .shape
                .iter()
                .skip(1)
                .map(|d| usize::try_from(*d).unwrap_or(0))
                .product(),
        };
        OutputPlan {
            output,
            labels,
            per_row,
        }
    }

    /// One row's value in records form.
    fn put_row(&self, out: &mut Vec<u8>, r: usize) {
        let t = &self.output.tensor;
        match &self.labels {
            Some(l) => l.put_row(out, t, r),
            None if self.per_row == 1 => put_scalar(out, &t.data, r),
            None => {
                put_nested(out, &t.data, &t.shape[1..], r * self.per_row);
            }
        }
    }

    /// The whole output in tensor form.
    fn put_whole(&self, out: &mut Vec<u8>) {
        let t = &self.output.tensor;
        match &self.labels {
            Some(l) => {
                out.push(b'[');
                for r in 0..t.batch_size().unwrap_or(0) {
                    if r > 0 {
                        out.push(b',');
                    }
                    l.put_row(out, t, r);
                }
                out.push(b']');
            }
            None => {
                put_nested(out, &t.data, &t.shape, 0);
            }
        }
    }

    fn non_utf8(&self, range: std::ops::Range<usize>) -> Result<(), ProtocolError> {
        match first_non_utf8(&self.output.tensor.data, range) {
            None => Ok(()),
            Some(i) => Err(ProtocolError::Unrepresentable {
                field: format!("output '{}'", self.output.tensor.name),
                message: format!("element {i} is not UTF-8"),
            }),
        }
    }
}

/// Writes the `{"predictions": ...}` response body for `format` (see the
/// [module docs](self)) in one pass over the outputs: records for DataFrame
/// requests whose outputs share a batch size, else one entry per output.
/// Objects are written with sorted keys, as `serde_json` writes a map.
pub fn encode_predictions(
    format: ScoringFormat,
    outputs: &[ModelOutput],
) -> Result<Vec<u8>, ProtocolError> {
    let rows = outputs.first().and_then(|o| o.tensor.batch_size());
    let records_ok = format.is_dataframe()
        && rows.is_some()
        && outputs.iter().all(|o| o.tensor.batch_size() == rows);
    let plans: Vec<OutputPlan<'_>> = outputs.iter().map(OutputPlan::new).collect();
    let order = object_order(outputs.iter().map(|o| o.tensor.name.as_str()));
    let size: usize = outputs
        .iter()
        .map(|o| o.tensor.element_count().saturating_mul(24))
        .sum();
    let mut out = Vec::with_capacity(size.saturating_add(64));
    out.extend_from_slice(b"{\"predictions\":");
    if let (true, Some(rows)) = (records_ok, rows) {
        // bytes that JSON cannot carry, reported as the row-by-row walk meets them
        for r in 0..rows {
            for p in &plans {
                p.non_utf8(r * p.per_row..(r + 1) * p.per_row)?;
            }
        }
        out.push(b'[');
        for r in 0..rows {
            if r > 0 {
                out.push(b',');
            }
            out.push(b'{');
            for (n, &(name, i)) in order.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                put(&mut out, name);
                out.push(b':');
                plans[i].put_row(&mut out, r);
            }
            out.push(b'}');
        }
        out.push(b']');
    } else {
        for p in &plans {
            p.non_utf8(0..p.output.tensor.element_count())?;
        }
        out.push(b'{');
        for (n, &(name, i)) in order.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            put(&mut out, name);
            out.push(b':');
            plans[i].put_whole(&mut out);
        }
        out.push(b'}');
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The one-pass encoder against the `serde_json::Value` tree it replaced
    //! (kept here as the oracle): same bytes, same errors.
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::Map;

    fn scalar_json(d: &TensorData, i: usize) -> Result<Value, String> {
        let float = |x: f64| -> Value {
            if x.is_nan() {
                Value::from("NaN")
            } else if x.is_infinite() {
                Value::from(if x > 0.0 { "Infinity" } else { "-Infinity" })
            } else {
                Value::from(x)
            }
        };
        Ok(match d {
            TensorData::Bool(v) => Value::from(v[i]),
            TensorData::Uint8(v) => Value::from(v[i]),
            TensorData::Uint16(v) => Value::from(v[i]),
            TensorData::Uint32(v) => Value::from(v[i]),
            TensorData::Uint64(v) => Value::from(v[i]),
            TensorData::Int8(v) => Value::from(v[i]),
            TensorData::Int16(v) => Value::from(v[i]),
            TensorData::Int32(v) => Value::from(v[i]),
            TensorData::Int64(v) => Value::from(v[i]),
            TensorData::Fp16(v) => float(f64::from(v[i])),
            TensorData::Fp32(v) => float(f64::from(v[i])),
            TensorData::Fp64(v) => float(v[i]),
            TensorData::Bytes(v) => Value::from(
                String::from_utf8(v[i].clone()).map_err(|_| format!("element {i} is not UTF-8"))?,
            ),
        })
    }

    /// Nested JSON list for elements `start..start+count(shape)`.
    fn nested(d: &TensorData, shape: &[i64], start: usize) -> Result<(Value, usize), String> {
        match shape.split_first() {
            None => Ok((scalar_json(d, start)?, 1)),
            Some((n, rest)) => {
                let mut items = Vec::with_capacity(usize::try_from(*n).unwrap_or(0));
                let mut used = 0;
                for _ in 0..*n {
                    let (v, u) = nested(d, rest, start + used)?;
                    items.push(v);
                    used += u;
                }
                Ok((Value::Array(items), used))
            }
        }
    }

    fn label_keys(labels: &ClassLabels) -> Vec<String> {
        match labels {
            ClassLabels::Int64(v) => v.iter().map(i64::to_string).collect(),
            ClassLabels::String(v) => v.clone(),
        }
    }

    /// `{label: probability}` for row `r` of a `[rows, classes]` tensor.
    fn prob_row(t: &Tensor, keys: &[String], r: usize) -> Result<Value, String> {
        let mut m = Map::new();
        for (c, k) in keys.iter().enumerate() {
            m.insert(k.clone(), scalar_json(&t.data, r * keys.len() + c)?);
        }
        Ok(Value::Object(m))
    }

    /// One row's value of an output in records form.
    fn row_value(o: &ModelOutput, r: usize) -> Result<Value, String> {
        let t = &o.tensor;
        if let Some(labels) = &o.class_labels {
            return prob_row(t, &label_keys(labels), r);
        }
        let row_shape = &t.shape[1..];
        let per_row: usize = row_shape
            .iter()
            .map(|d| usize::try_from(*d).unwrap_or(0))
            .product();
        if per_row == 1 {
            return scalar_json(&t.data, r);
        }
        Ok(nested(&t.data, row_shape, r * per_row)?.0)
    }

    /// The whole output in tensor form.
    fn whole_value(o: &ModelOutput) -> Result<Value, String> {
        let t = &o.tensor;
        if let Some(labels) = &o.class_labels {
            let keys = label_keys(labels);
            let rows = t.batch_size().unwrap_or(0);
            return (0..rows)
                .map(|r| prob_row(t, &keys, r))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array);
        }
        Ok(nested(&t.data, &t.shape, 0)?.0)
    }

    /// The encoder before the one-pass one, kept as the oracle.
    fn tree_predictions(
        format: ScoringFormat,
        outputs: &[ModelOutput],
    ) -> Result<Value, ProtocolError> {
        let err = |o: &ModelOutput, m: String| ProtocolError::Unrepresentable {
            field: format!("output '{}'", o.tensor.name),
            message: m,
        };
        let rows = outputs.first().and_then(|o| o.tensor.batch_size());
        let records_ok = format.is_dataframe()
            && rows.is_some()
            && outputs.iter().all(|o| o.tensor.batch_size() == rows);
        let predictions = if let (true, Some(rows)) = (records_ok, rows) {
            let mut records = Vec::with_capacity(rows);
            for r in 0..rows {
                let mut rec = Map::new();
                for o in outputs {
                    rec.insert(
                        o.tensor.name.clone(),
                        row_value(o, r).map_err(|m| err(o, m))?,
                    );
                }
                records.push(Value::Object(rec));
            }
            Value::Array(records)
        } else {
            let mut m = Map::new();
            for o in outputs {
                m.insert(
                    o.tensor.name.clone(),
                    whole_value(o).map_err(|e| err(o, e))?,
                );
            }
            Value::Object(m)
        };
        Ok(serde_json::json!({ "predictions": predictions }))
    }

    fn data(dtype: u8, n: usize, seed: &[f64]) -> TensorData {
        let x = |i: usize| seed[i % seed.len()];
        match dtype {
            0 => TensorData::Fp32((0..n).map(|i| x(i) as f32).collect()),
            1 => TensorData::Fp64((0..n).map(x).collect()),
            2 => TensorData::Int64((0..n).map(|i| (x(i) * 1e3) as i64).collect()),
            3 => TensorData::Bool((0..n).map(|i| x(i) > 0.0).collect()),
            4 => TensorData::Uint8((0..n).map(|i| (x(i).abs() * 10.0) as u8).collect()),
            5 => TensorData::Fp16((0..n).map(|i| half::f16::from_f64(x(i))).collect()),
            6 => TensorData::Bytes(
                (0..n)
                    .map(|i| {
                        if x(i) > 1e5 {
                            vec![0xff, b'a']
                        } else {
                            format!("l\"{}\\", x(i)).into_bytes()
                        }
                    })
                    .collect(),
            ),
            _ => TensorData::Int32((0..n).map(|i| (x(i) * 7.0) as i32).collect()),
        }
    }

    fn outputs() -> impl Strategy<Value = Vec<ModelOutput>> {
        let value = prop_oneof![
            8 => -1e6f64..1e6,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(0.1f64),
        ];
        let output = (
            0usize..4,
            proptest::collection::vec(0i64..4, 0..3),
            0u8..8,
            proptest::collection::vec(value, 1..6),
            0u8..5,
            0usize..3,
        )
            .prop_map(|(name, mut shape, dtype, seed, labels, rows)| {
                let names = ["b", "a", "label", "a"];
                if !shape.is_empty() {
                    shape[0] = i64::try_from(rows).unwrap();
                }
                let class_labels = match labels {
                    1 | 2 if !shape.is_empty() => {
                        let k = 3usize;
                        shape = vec![shape[0], 3];
                        Some(if labels == 1 {
                            ClassLabels::Int64((0..k as i64).map(|c| 10 - 4 * c).collect())
                        } else {
                            ClassLabels::String(vec!["z".into(), "y".into(), "z".into()])
                        })
                    }
                    _ => None,
                };
                let n: usize = shape.iter().map(|d| usize::try_from(*d).unwrap()).product();
                ModelOutput {
                    tensor: Tensor::new(names[name], shape, data(dtype, n, &seed)).unwrap(),
                    class_labels,
                }
            });
        proptest::collection::vec(output, 0..4)
    }

    #[test]
    fn one_pass_writes_what_the_value_tree_wrote() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]),
        );
        let strategy = outputs();
        let formats = [
            ScoringFormat::DataframeSplit,
            ScoringFormat::DataframeRecords,
            ScoringFormat::Csv,
            ScoringFormat::Instances,
            ScoringFormat::Inputs,
        ];
        let (mut records, mut errors, mut n) = (0, 0, 0);
        for _ in 0..3000 {
            let outs = strategy.new_tree(&mut runner).unwrap().current();
            for format in formats {
                n += 1;
                let fast = encode_predictions(format, &outs);
                match tree_predictions(format, &outs) {
                    Ok(v) => {
                        let fast = fast.unwrap();
                        assert_eq!(
                            String::from_utf8(fast).unwrap(),
                            serde_json::to_string(&v).unwrap(),
                            "{format:?} {outs:?}"
                        );
                        records += usize::from(v["predictions"].is_array());
                    }
                    Err(e) => {
                        errors += 1;
                        assert_eq!(format!("{:?}", fast.unwrap_err()), format!("{e:?}"));
                    }
                }
            }
        }
        eprintln!("{n} encodings: {records} in records form, {errors} errors");
        assert!(
            records * 10 > n && errors * 20 > n && errors * 2 < n,
            "{records} records, {errors} errors of {n}"
        );
    }
}
