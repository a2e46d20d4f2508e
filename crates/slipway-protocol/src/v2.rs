//! Open Inference Protocol (KServe V2) REST inference request/response
//! codec, including the binary tensor data extension used by
//! `tritonclient.http`.
//!
//! # Requests
//!
//! [`decode_request`] takes the body and the value of the
//! `Inference-Header-Content-Length` header (if present). Without the header
//! the whole body is JSON. With it, the first N bytes are the JSON header and
//! the rest holds the raw tensors of every input whose
//! `parameters.binary_data_size` is set, in input order.
//!
//! # Responses
//!
//! [`DecodedRequest::select_outputs`] picks the outputs to return (all, or the
//! ones the request lists, in its order) and whether each goes as binary
//! (`outputs[i].parameters.binary_data`, defaulting to the request-level
//! `parameters.binary_data_output`). [`encode_response`] writes the body; when
//! any output is binary, [`EncodedResponse::header_length`] is the value for
//! the `Inference-Header-Content-Length` response header and the content type
//! is `application/octet-stream`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use slipway_runtime::{element_count, ClassLabels, DataType, ModelOutput, Tensor, TensorData};

use crate::data::{self, JsonData};
use crate::error::ProtocolError;

/// HTTP header carrying the JSON header length of a binary-extension body.
pub const HEADER_CONTENT_LENGTH: &str = "Inference-Header-Content-Length";
/// Parameter with the byte size of a tensor's binary data.
pub const PARAM_BINARY_DATA_SIZE: &str = "binary_data_size";
/// Per-output parameter asking for binary data.
pub const PARAM_BINARY_DATA: &str = "binary_data";
/// Request parameter asking for binary data for every output.
pub const PARAM_BINARY_DATA_OUTPUT: &str = "binary_data_output";
/// Output parameter with a classifier's ordered class labels (added by
/// [`OutputTensor::from_model_output`]).
pub const PARAM_CLASS_LABELS: &str = "class_labels";

/// Free-form parameters object.
pub type Parameters = Map<String, Value>;

/// JSON form of a request input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestInput {
    /// Input name.
    pub name: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// V2 datatype name.
    pub datatype: String,
    /// Parameters (`binary_data_size`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// Flat or nested data (absent for binary inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// JSON form of a requested output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestOutput {
    /// Output name.
    pub name: String,
    /// Parameters (`binary_data`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// JSON form of an inference request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    /// Request id, echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Request parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// Inputs.
    pub inputs: Vec<RequestInput>,
    /// Requested outputs (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// JSON form of a response output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseOutput {
    /// Output name.
    pub name: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// V2 datatype name.
    pub datatype: String,
    /// Parameters (`binary_data_size`, `class_labels`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// Flat data (absent for binary outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// JSON form of an inference response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    /// Model name.
    pub model_name: String,
    /// Model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Response parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// Outputs.
    pub outputs: Vec<ResponseOutput>,
}

/// An output the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
    /// `parameters.binary_data`, if given.
    pub binary_data: Option<bool>,
    /// All its parameters.
    pub parameters: Option<Parameters>,
}

/// The wire form of a request as it is decoded: like [`InferenceRequest`],
/// but each input's `data` stays borrowed JSON text until its shape has been
/// checked, and is then read straight into a typed buffer.
#[derive(Deserialize)]
pub(crate) struct WireRequest<'a> {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) parameters: Option<Parameters>,
    #[serde(borrow)]
    pub(crate) inputs: Vec<WireInput<'a>>,
    #[serde(default)]
    pub(crate) outputs: Option<Vec<RequestOutput>>,
}

#[derive(Deserialize)]
pub(crate) struct WireInput<'a> {
    pub(crate) name: String,
    pub(crate) shape: Vec<i64>,
    pub(crate) datatype: String,
    #[serde(default)]
    pub(crate) parameters: Option<Parameters>,
    #[serde(default, borrow)]
    pub(crate) data: Option<WireData<'a>>,
}

/// An input's JSON `data`: its text, read once the input's fields are
/// checked, or its elements, read in the same pass as the rest of the
/// request (see [`crate::v2_one_pass`]).
pub(crate) enum WireData<'a> {
    Text(&'a serde_json::value::RawValue),
    Read(TensorData),
}

impl<'de: 'a, 'a> Deserialize<'de> for WireData<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de serde_json::value::RawValue>::deserialize(d).map(WireData::Text)
    }
}

/// Checks an input's declared name and shape before its data is read, so a
/// request the model would refuse (say, a batch over its limit) is refused
/// without materialising its elements. Returns the contract's own message.
pub type ShapeCheck<'c> = &'c dyn Fn(&str, &[i64]) -> Result<(), String>;

/// A decoded inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// Request id.
    pub id: Option<String>,
    /// Request parameters.
    pub parameters: Option<Parameters>,
    /// Input tensors, in request order.
    pub inputs: Vec<Tensor>,
    /// Each input's parameters (less `binary_data_size`), same order.
    pub input_parameters: Vec<Option<Parameters>>,
    /// Requested outputs; `None` = all.
    pub outputs: Option<Vec<RequestedOutput>>,
}

fn json_err(field: &str, e: &serde_json::Error) -> ProtocolError {
    ProtocolError::Json {
        field: field.to_string(),
        message: e.to_string(),
    }
}

fn parse_datatype(field: &str, name: &str) -> Result<DataType, ProtocolError> {
    DataType::from_v2(name).ok_or_else(|| ProtocolError::UnknownDatatype {
        field: field.to_string(),
        datatype: name.to_string(),
    })
}

fn shape_count(field: &str, shape: &[i64]) -> Result<usize, ProtocolError> {
    element_count(shape).map_err(|e| ProtocolError::field(field, e.to_string()))
}

fn binary_size_param(
    field: &str,
    params: &Option<Parameters>,
) -> Result<Option<usize>, ProtocolError> {
    let Some(v) = params.as_ref().and_then(|p| p.get(PARAM_BINARY_DATA_SIZE)) else {
        return Ok(None);
    };
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            ProtocolError::field(
                format!("{field}.parameters.{PARAM_BINARY_DATA_SIZE}"),
                format!("must be a non-negative integer, got {v}"),
            )
        })
}

/// The JSON fields of one request input.
struct TensorFields<'a> {
    name: &'a str,
    shape: &'a [i64],
    datatype: &'a str,
    parameters: &'a Option<Parameters>,
    data: Option<WireData<'a>>,
}

/// The binary section after the JSON header, read front to back.
struct BinarySection<'a> {
    bytes: &'a [u8],
    offset: usize,
    /// False when there was no `Inference-Header-Content-Length`.
    present: bool,
}

/// Reads one tensor: JSON `data`, or `binary_data_size` bytes from the
/// binary section.
fn read_tensor(
    field: &str,
    t: TensorFields<'_>,
    section: &mut BinarySection<'_>,
) -> Result<Tensor, ProtocolError> {
    let TensorFields {
        name,
        shape,
        datatype,
        parameters,
        data,
    } = t;
    let (binary, offset, has_binary_section) =
        (section.bytes, &mut section.offset, section.present);
    let dtype = parse_datatype(&format!("{field}.datatype"), datatype)?;
    let count = shape_count(&format!("{field}.shape"), shape)?;
    let tensor_data = match (binary_size_param(field, parameters)?, data) {
        (Some(_), Some(_)) => {
            return Err(ProtocolError::field(
                field,
                format!("has both 'data' and parameters.{PARAM_BINARY_DATA_SIZE}; give one"),
            ))
        }
        (Some(size), None) => {
            let bfield = format!("{field}.parameters.{PARAM_BINARY_DATA_SIZE}");
            if let Some(elem) = dtype.element_size() {
                let expected = count.saturating_mul(elem);
                if size != expected {
                    return Err(ProtocolError::BinarySize {
                        field: bfield,
                        declared: size,
                        expected,
                        shape: shape.to_vec(),
                        datatype: dtype.to_string(),
                    });
                }
            }
            let available = binary.len() - *offset;
            if !has_binary_section || size > available {
                return Err(ProtocolError::Truncated {
                    field: if has_binary_section {
                        bfield
                    } else {
                        format!("{bfield} (no {HEADER_CONTENT_LENGTH} header, so there is no binary section)")
                    },
                    declared: size,
                    available,
                });
            }
            let bytes = &binary[*offset..*offset + size];
            *offset += size;
            data::decode_raw(field, bytes, dtype, count)?
        }
        (None, Some(WireData::Text(raw))) => {
            data::data_from_json_text(&format!("{field}.data"), raw.get(), dtype, count)?
        }
        // read with this dtype and count, so as the text would have been
        (None, Some(WireData::Read(elements))) => elements,
        (None, None) => {
            return Err(ProtocolError::Missing {
                field: format!("{field}.data (or parameters.{PARAM_BINARY_DATA_SIZE})"),
            })
        }
    };
    if tensor_data.len() != count {
        return Err(ProtocolError::ElementCount {
            field: format!("{field}.data"),
            shape: shape.to_vec(),
            expected: count,
            actual: tensor_data.len(),
        });
    }
    Ok(Tensor {
        name: name.to_string(),
        shape: shape.to_vec(),
        data: tensor_data,
    })
}

fn split_body(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8]), ProtocolError> {
    match header_length {
        Some(n) if n > body.len() => Err(ProtocolError::HeaderLength {
            header_length: n,
            body_length: body.len(),
        }),
        Some(n) => Ok(body.split_at(n)),
        None => Ok((body, &[])),
    }
}

/// Decodes an inference request body. `header_length` is the
/// `Inference-Header-Content-Length` header value, when present.
pub fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<DecodedRequest, ProtocolError> {
    decode_request_checked(body, header_length, &|_, _| Ok(()))
}

/// [`decode_request`], calling `check` with each input's name and shape
/// before reading its data (see [`ShapeCheck`]).
pub fn decode_request_checked(
    body: &[u8],
    header_length: Option<usize>,
    check: ShapeCheck<'_>,
) -> Result<DecodedRequest, ProtocolError> {
    let (json, binary) = split_body(body, header_length)?;
    let json = std::str::from_utf8(json).map_err(|e| ProtocolError::Json {
        field: String::new(),
        message: format!("the JSON is not UTF-8: {e}"),
    })?;
    // one pass over the JSON; a request it does not take whole (any error,
    // or an unusual form) is read again the general way, which decides
    // what is wrong and says it
    let req = match crate::v2_one_pass::parse(json, check) {
        Some(req) => req,
        None => serde_json::from_str::<WireRequest<'_>>(json).map_err(|e| json_err("", &e))?,
    };
    let mut section = BinarySection {
        bytes: binary,
        offset: 0,
        present: header_length.is_some(),
    };
    let mut inputs = Vec::with_capacity(req.inputs.len());
    let mut input_parameters = Vec::with_capacity(req.inputs.len());
    for (i, input) in req.inputs.into_iter().enumerate() {
        let field = format!("inputs[{i}]");
        if let Some(prev) = inputs.iter().position(|t: &Tensor| t.name == input.name) {
            return Err(ProtocolError::field(
                format!("{field}.name"),
                format!(
                    "input '{}' is given twice (also inputs[{prev}])",
                    input.name
                ),
            ));
        }
        check(&input.name, &input.shape).map_err(ProtocolError::Contract)?;
        let t = read_tensor(
            &field,
            TensorFields {
                name: &input.name,
                shape: &input.shape,
                datatype: &input.datatype,
                parameters: &input.parameters,
                data: input.data,
            },
            &mut section,
        )?;
        inputs.push(t);
        let mut params = input.parameters;
        if let Some(p) = params.as_mut() {
            p.remove(PARAM_BINARY_DATA_SIZE);
        }
        input_parameters.push(params.filter(|p| !p.is_empty()));
    }
    if section.offset != binary.len() {
        return Err(ProtocolError::TrailingBytes {
            count: binary.len() - section.offset,
        });
    }
    let outputs = match req.outputs {
        None => None,
        Some(outs) => {
            let mut v = Vec::with_capacity(outs.len());
            for (i, o) in outs.into_iter().enumerate() {
                let binary_data = match o.parameters.as_ref().and_then(|p| p.get(PARAM_BINARY_DATA))
                {
                    None => None,
                    Some(Value::Bool(b)) => Some(*b),
                    Some(other) => {
                        return Err(ProtocolError::field(
                            format!("outputs[{i}].parameters.{PARAM_BINARY_DATA}"),
                            format!("must be true or false, got {other}"),
                        ))
                    }
                };
                v.push(RequestedOutput {
                    name: o.name,
                    binary_data,
                    parameters: o.parameters,
                });
            }
            Some(v)
        }
    };
    if let Some(p) = &req.parameters {
        if let Some(v) = p.get(PARAM_BINARY_DATA_OUTPUT) {
            if !v.is_boolean() {
                return Err(ProtocolError::field(
                    format!("parameters.{PARAM_BINARY_DATA_OUTPUT}"),
                    format!("must be true or false, got {v}"),
                ));
            }
        }
    }
    Ok(DecodedRequest {
        id: req.id,
        parameters: req.parameters,
        inputs,
        input_parameters,
        outputs,
    })
}

/// One output to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// The tensor.
    pub tensor: Tensor,
    /// Output parameters (besides `binary_data_size`, which is set here).
    pub parameters: Parameters,
    /// Send as raw binary after the JSON header.
    pub binary: bool,
}

impl OutputTensor {
    /// A JSON output with the model output's class labels (if any) in
    /// `parameters.class_labels`.
    pub fn from_model_output(out: ModelOutput) -> OutputTensor {
        let mut parameters = Parameters::new();
        if let Some(labels) = &out.class_labels {
            parameters.insert(PARAM_CLASS_LABELS.into(), labels.to_json());
        }
        OutputTensor {
            tensor: out.tensor,
            parameters,
            binary: false,
        }
    }
}

impl DecodedRequest {
    /// Whether the client asked for binary data for this output.
    pub fn wants_binary(&self, name: &str) -> bool {
        let per_output = self
            .outputs
            .as_ref()
            .and_then(|o| o.iter().find(|r| r.name == name))
            .and_then(|r| r.binary_data);
        per_output.unwrap_or_else(|| {
            self.parameters
                .as_ref()
                .and_then(|p| p.get(PARAM_BINARY_DATA_OUTPUT))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
    }

    /// Checks that every requested output exists, before running the model.
    pub fn check_outputs(&self, available: &[&str]) -> Result<(), ProtocolError> {
        for (i, r) in self.outputs.iter().flatten().enumerate() {
            if !available.contains(&r.name.as_str()) {
                return Err(ProtocolError::UnknownOutput {
                    field: format!("outputs[{i}].name"),
                    name: r.name.clone(),
                    available: available.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        Ok(())
    }

    /// Picks the outputs to return (requested ones in request order, else
    /// all) and marks binary ones.
    pub fn select_outputs(
        &self,
        outputs: Vec<ModelOutput>,
    ) -> Result<Vec<OutputTensor>, ProtocolError> {
        let names: Vec<String> = outputs.iter().map(|o| o.tensor.name.clone()).collect();
        let mut by_name: Vec<Option<ModelOutput>> = outputs.into_iter().map(Some).collect();
        let chosen: Vec<ModelOutput> = match &self.outputs {
            None => by_name.into_iter().flatten().collect(),
            Some(req) => {
                let mut v = Vec::with_capacity(req.len());
                for (i, r) in req.iter().enumerate() {
                    let pos = names.iter().position(|n| *n == r.name);
                    let Some(out) = pos.and_then(|p| by_name[p].take()) else {
                        return Err(ProtocolError::UnknownOutput {
                            field: format!("outputs[{i}].name"),
                            name: r.name.clone(),
                            available: names.clone(),
                        });
                    };
                    v.push(out);
                }
                v
            }
        };
        Ok(chosen
            .into_iter()
            .map(|o| {
                let binary = self.wants_binary(&o.tensor.name);
                OutputTensor {
                    binary,
                    ..OutputTensor::from_model_output(o)
                }
            })
            .collect())
    }
}

/// An encoded response body.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedResponse {
    /// The body: JSON, then raw tensors when `header_length` is set.
    pub body: Vec<u8>,
    /// Value for the `Inference-Header-Content-Length` header (only when some
    /// output is binary).
    pub header_length: Option<usize>,
}

impl EncodedResponse {
    /// `application/json`, or `application/octet-stream` with binary data.
    pub fn content_type(&self) -> &'static str {
        if self.header_length.is_some() {
            "application/octet-stream"
        } else {
            "application/json"
        }
    }
}

#[derive(Serialize)]
struct ResponseOutputRef<'a> {
    name: &'a str,
    shape: &'a [i64],
    datatype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a Parameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
}

#[derive(Serialize)]
struct ResponseRef<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a Parameters>,
    outputs: Vec<ResponseOutputRef<'a>>,
}

/// Identifies the response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseMeta<'a> {
    /// Model name.
    pub model_name: &'a str,
    /// Model version.
    pub model_version: Option<&'a str>,
    /// The request's id.
    pub id: Option<&'a str>,
    /// Response parameters.
    pub parameters: Option<&'a Parameters>,
}

/// Encodes a response (see the [module docs](self)).
pub fn encode_response(
    meta: ResponseMeta<'_>,
    outputs: &mut [OutputTensor],
) -> Result<EncodedResponse, ProtocolError> {
    let mut raw = Vec::new();
    let mut any_binary = false;
    for (i, o) in outputs.iter_mut().enumerate() {
        if o.binary {
            any_binary = true;
            let before = raw.len();
            data::encode_raw(&o.tensor.data, &mut raw)?;
            o.parameters.insert(
                PARAM_BINARY_DATA_SIZE.into(),
                Value::from(raw.len() - before),
            );
        } else {
            o.parameters.remove(PARAM_BINARY_DATA_SIZE);
            if let Some(idx) = data::first_non_utf8(&o.tensor.data) {
                return Err(ProtocolError::Unrepresentable {
                    field: format!("outputs[{i}] ('{}')", o.tensor.name),
                    message: format!(
                        "BYTES element {idx} is not UTF-8 and cannot be sent as JSON; request it with parameters.binary_data: true"
                    ),
                });
            }
        }
    }
    let doc = ResponseRef {
        model_name: meta.model_name,
        model_version: meta.model_version,
        id: meta.id,
        parameters: meta.parameters,
        outputs: outputs
            .iter()
            .map(|o| ResponseOutputRef {
                name: &o.tensor.name,
                shape: &o.tensor.shape,
                datatype: o.tensor.dtype().as_str(),
                parameters: if o.parameters.is_empty() {
                    None
                } else {
                    Some(&o.parameters)
                },
                data: if o.binary {
                    None
                } else {
                    Some(JsonData(&o.tensor.data))
                },
            })
            .collect(),
    };
    let mut body = serde_json::to_vec(&doc).map_err(|e| ProtocolError::Unrepresentable {
        field: "outputs".into(),
        message: e.to_string(),
    })?;
    let header_length = any_binary.then_some(body.len());
    body.extend_from_slice(&raw);
    Ok(EncodedResponse {
        body,
        header_length,
    })
}

/// A decoded response (client side; used by tests and tools).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedResponse {
    /// Model name.
    pub model_name: String,
    /// Model version.
    pub model_version: Option<String>,
    /// Request id.
    pub id: Option<String>,
    /// Response parameters.
    pub parameters: Option<Parameters>,
    /// Output tensors.
    pub outputs: Vec<Tensor>,
    /// Each output's parameters (less `binary_data_size`).
    pub output_parameters: Vec<Option<Parameters>>,
}

impl DecodedResponse {
    /// Class labels recorded in an output's parameters.
    pub fn class_labels(&self, output: &str) -> Option<ClassLabels> {
        let i = self.outputs.iter().position(|t| t.name == output)?;
        let v = self.output_parameters[i]
            .as_ref()?
            .get(PARAM_CLASS_LABELS)?
            .as_array()?;
        if let Some(ints) = v.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
            return Some(ClassLabels::Int64(ints));
        }
        v.iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(ClassLabels::String)
    }
}

/// Decodes a response body (the inverse of [`encode_response`]).
pub fn decode_response(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<DecodedResponse, ProtocolError> {
    let (json, binary) = split_body(body, header_length)?;
    let resp: InferenceResponse = serde_json::from_slice(json).map_err(|e| json_err("", &e))?;
    let mut section = BinarySection {
        bytes: binary,
        offset: 0,
        present: header_length.is_some(),
    };
    let mut outputs = Vec::with_capacity(resp.outputs.len());
    let mut output_parameters = Vec::with_capacity(resp.outputs.len());
    for (i, o) in resp.outputs.into_iter().enumerate() {
        let raw = o
            .data
            .as_ref()
            .map(serde_json::value::to_raw_value)
            .transpose()
            .map_err(|e| json_err(&format!("outputs[{i}].data"), &e))?;
        let t = read_tensor(
            &format!("outputs[{i}]"),
            TensorFields {
                name: &o.name,
                shape: &o.shape,
                datatype: &o.datatype,
                parameters: &o.parameters,
                data: raw.as_deref().map(WireData::Text),
            },
            &mut section,
        )?;
        outputs.push(t);
        let mut params = o.parameters;
        if let Some(p) = params.as_mut() {
            p.remove(PARAM_BINARY_DATA_SIZE);
        }
        output_parameters.push(params.filter(|p| !p.is_empty()));
    }
    if section.offset != binary.len() {
        return Err(ProtocolError::TrailingBytes {
            count: binary.len() - section.offset,
        });
    }
    Ok(DecodedResponse {
        model_name: resp.model_name,
        model_version: resp.model_version,
        id: resp.id,
        parameters: resp.parameters,
        outputs,
        output_parameters,
    })
}

/// One input for [`encode_request`].
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    /// The tensor.
    pub tensor: Tensor,
    /// Send as raw binary.
    pub binary: bool,
}

/// Encodes a request (client side; the inverse of [`decode_request`]).
/// Returns the body and the `Inference-Header-Content-Length` value, if any
/// input is binary.
pub fn encode_request(
    id: Option<&str>,
    parameters: Option<Parameters>,
    inputs: &[InputTensor],
    outputs: Option<Vec<RequestOutput>>,
) -> Result<(Vec<u8>, Option<usize>), ProtocolError> {
    let mut raw = Vec::new();
    let mut json_inputs = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let t = &input.tensor;
        let (parameters, data) = if input.binary {
            let before = raw.len();
            data::encode_raw(&t.data, &mut raw)?;
            let mut p = Parameters::new();
            p.insert(
                PARAM_BINARY_DATA_SIZE.into(),
                Value::from(raw.len() - before),
            );
            (Some(p), None)
        } else {
            let v = serde_json::to_value(JsonData(&t.data)).map_err(|e| {
                ProtocolError::Unrepresentable {
                    field: format!("inputs[{i}]"),
                    message: e.to_string(),
                }
            })?;
            (None, Some(v))
        };
        json_inputs.push(RequestInput {
            name: t.name.clone(),
            shape: t.shape.clone(),
            datatype: t.dtype().as_str().to_string(),
            parameters,
            data,
        });
    }
    let req = InferenceRequest {
        id: id.map(str::to_string),
        parameters,
        inputs: json_inputs,
        outputs,
    };
    let mut body = serde_json::to_vec(&req).map_err(|e| ProtocolError::Unrepresentable {
        field: "request".into(),
        message: e.to_string(),
    })?;
    let header = (!raw.is_empty() || inputs.iter().any(|i| i.binary)).then_some(body.len());
    body.extend_from_slice(&raw);
    Ok((body, header))
}

/// JSON error body of the protocol: `{"error": "<message>"}`.
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default()
}
