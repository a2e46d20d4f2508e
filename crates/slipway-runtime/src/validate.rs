//! Input validation against a [`Signature`].
//!
//! [`validate`] checks, in this order, for every request tensor: that its name
//! is a model input (and appears once), that every model input is present,
//! that its data type is the model's or [safely convertible](#accepted-conversions),
//! that its rank and fixed dimensions match (`-1` dims accept any size), that
//! its batch (dim 0) is within [`Policy::max_batch_size`], and then every
//! element: convertible without loss, not NaN/±inf (unless the policy allows),
//! and inside the recorded [feature ranges](crate::signature#feature-ranges)
//! (rejected or flagged per [`Policy::out_of_range`]).
//!
//! Errors name the input, the element's position (a multi-index such as
//! `[3,2]`) and the rule broken, e.g.
//! `input 'float_input' element [3,2] is NaN; the model does not accept NaN`.
//!
//! # Accepted conversions
//!
//! A tensor whose type differs from the model's is accepted, and converted by
//! [`conform`], only in these cases:
//!
//! | request type | model type | rule |
//! |---|---|---|
//! | any integer | any wider-or-narrower integer | every value must fit the model type |
//! | any integer | `FP16`/`FP32`/`FP64` | every value must be exactly representable (\|v\| ≤ 2¹¹ / 2²⁴ / 2⁵³ or otherwise exact) |
//! | `FP16` | `FP32`, `FP64` | always (exact) |
//! | `FP32` | `FP64` | always (exact) |
//! | `FP64` | `FP32` | rounds to nearest; finite values beyond the FP32 range are rejected |
//! | `BOOL` | `BOOL` only | |
//! | `BYTES` | `BYTES` only | |
//!
//! FP64 → FP32 narrowing is accepted because JSON clients (and pandas) send
//! doubles for `float32` models all the time; it can be switched off with
//! [`Policy::allow_fp64_to_fp32`]. Floats are never converted to integers.

use std::fmt;

use serde::Serialize;

use crate::signature::{Signature, TensorSpec};
use crate::tensor::{element_count, unravel_index, DataType, Tensor, TensorData};

/// What to do with a value outside its recorded feature range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum RangeAction {
    /// Do not check ranges.
    Ignore,
    /// Accept the request, report the values in [`Validated::flags`].
    #[default]
    Flag,
    /// Reject the request.
    Reject,
}

/// Validation policy for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Largest accepted dim-0 size, if any.
    pub max_batch_size: Option<usize>,
    /// Accept NaN in float inputs.
    pub allow_nan: bool,
    /// Accept ±infinity in float inputs.
    pub allow_inf: bool,
    /// What to do with out-of-range values.
    pub out_of_range: RangeAction,
    /// Accept FP64 tensors for FP32 inputs (rounding to nearest).
    pub allow_fp64_to_fp32: bool,
    /// At most this many range flags are reported (the rest are counted).
    pub max_flags: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_batch_size: None,
            allow_nan: false,
            allow_inf: false,
            out_of_range: RangeAction::Flag,
            allow_fp64_to_fp32: true,
            max_flags: 100,
        }
    }
}

/// A multi-index into a tensor, displayed as `[3,2]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position(pub Vec<usize>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        f.write_str("]")
    }
}

/// Kind of non-finite value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NonFinite {
    /// Not a number.
    NaN,
    /// Positive infinity.
    PosInf,
    /// Negative infinity.
    NegInf,
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NonFinite::NaN => "NaN",
            NonFinite::PosInf => "+inf",
            NonFinite::NegInf => "-inf",
        })
    }
}

fn fmt_shape(s: &[i64]) -> String {
    let parts: Vec<String> = s.iter().map(i64::to_string).collect();
    format!("[{}]", parts.join(","))
}

fn fmt_bound(b: Option<f64>) -> String {
    b.map_or_else(|| "unbounded".to_string(), |v| v.to_string())
}

/// Why a request's inputs were rejected. Every variant maps to HTTP 400
/// (`InvalidArgument`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// The request names an input the model does not have.
    #[error("input '{name}' is not an input of the model; expected {}", expected.join(", "))]
    UnknownInput {
        /// The unknown name.
        name: String,
        /// The model's input names.
        expected: Vec<String>,
    },
    /// A model input is missing from the request.
    #[error("input '{name}' is missing; the model requires inputs {}", expected.join(", "))]
    MissingInput {
        /// The missing input.
        name: String,
        /// The model's input names.
        expected: Vec<String>,
    },
    /// The same input appears twice.
    #[error("input '{name}' is given more than once")]
    DuplicateInput {
        /// The repeated input.
        name: String,
    },
    /// The data type is not the model's and cannot be converted safely.
    #[error("input '{input}' has datatype {actual}; the model expects {expected}")]
    WrongDtype {
        /// Input name.
        input: String,
        /// Model type.
        expected: DataType,
        /// Request type.
        actual: DataType,
    },
    /// A value cannot be converted to the model's type without loss.
    #[error("input '{input}' element {position} ({value}) cannot be converted from {from} to {to} without loss; the model expects {to}")]
    LossyConversion {
        /// Input name.
        input: String,
        /// Element position.
        position: Position,
        /// The value as text.
        value: String,
        /// Request type.
        from: DataType,
        /// Model type.
        to: DataType,
    },
    /// The rank differs.
    #[error("input '{input}' has shape {} (rank {}); the model expects rank {} {}", fmt_shape(actual), actual.len(), expected.len(), fmt_shape(expected))]
    WrongRank {
        /// Input name.
        input: String,
        /// Model shape (`-1` = variable).
        expected: Vec<i64>,
        /// Request shape.
        actual: Vec<i64>,
    },
    /// A fixed dimension differs.
    #[error("input '{input}' has shape {}; dimension {dim} must be {} (the model expects {})", fmt_shape(actual), expected[*dim], fmt_shape(expected))]
    WrongShape {
        /// Input name.
        input: String,
        /// The first mismatching dimension.
        dim: usize,
        /// Model shape.
        expected: Vec<i64>,
        /// Request shape.
        actual: Vec<i64>,
    },
    /// The shape does not match the number of elements.
    #[error(
        "input '{input}' has shape {} ({expected} elements) but {actual} elements of data",
        fmt_shape(shape)
    )]
    ElementCount {
        /// Input name.
        input: String,
        /// Declared shape.
        shape: Vec<i64>,
        /// Elements the shape implies.
        expected: usize,
        /// Elements present.
        actual: usize,
    },
    /// The shape has a negative or overflowing dimension.
    #[error("input '{input}' has invalid shape {}", fmt_shape(shape))]
    InvalidShape {
        /// Input name.
        input: String,
        /// The shape.
        shape: Vec<i64>,
    },
    /// Dim 0 exceeds the model's maximum batch size.
    #[error("input '{input}' has batch size {batch}; the maximum batch size is {max}")]
    BatchTooLarge {
        /// Input name.
        input: String,
        /// Request batch.
        batch: usize,
        /// The limit.
        max: usize,
    },
    /// Inputs disagree on the batch size.
    #[error("input '{input}' has batch size {batch} but input '{other}' has {other_batch}; all inputs must share dimension 0")]
    InconsistentBatch {
        /// Input name.
        input: String,
        /// Its batch.
        batch: usize,
        /// The first input.
        other: String,
        /// Its batch.
        other_batch: usize,
    },
    /// NaN or ±inf where the policy forbids it.
    #[error("input '{input}' element {position} is {kind}; the model does not accept {kind}")]
    NonFinite {
        /// Input name.
        input: String,
        /// Element position.
        position: Position,
        /// NaN, +inf or -inf.
        kind: NonFinite,
    },
    /// A value outside its feature range, with [`RangeAction::Reject`].
    #[error("input '{input}' element {position} is {value}, outside the range [{}, {}] of feature {feature}", fmt_bound(*min), fmt_bound(*max))]
    OutOfRange {
        /// Input name.
        input: String,
        /// Element position.
        position: Position,
        /// Feature index (last dimension).
        feature: usize,
        /// The value.
        value: f64,
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
    },
}

/// One out-of-range value accepted under [`RangeAction::Flag`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeFlag {
    /// Input name.
    pub input: String,
    /// Element position.
    pub position: Vec<usize>,
    /// Feature index.
    pub feature: usize,
    /// The value.
    pub value: f64,
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
}

/// The outcome of a successful validation.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Validated {
    /// Out-of-range values (at most [`Policy::max_flags`]).
    pub flags: Vec<RangeFlag>,
    /// Total out-of-range values, including those not listed.
    pub flagged: usize,
    /// Batch size (dim 0 shared by all inputs), when every input has rank ≥ 1.
    pub batch_size: Option<usize>,
}

/// Is a request type convertible to the model type at all (type level)?
fn type_convertible(from: DataType, to: DataType, policy: &Policy) -> bool {
    if from == to {
        return true;
    }
    match (from, to) {
        (f, t) if f.is_integer() && (t.is_integer() || t.is_float()) => true,
        (DataType::Fp16, DataType::Fp32 | DataType::Fp64) => true,
        (DataType::Fp32, DataType::Fp64) => true,
        (DataType::Fp64, DataType::Fp32) => policy.allow_fp64_to_fp32,
        _ => false,
    }
}

/// Integer element `i` widened to i128.
fn int_at(d: &TensorData, i: usize) -> Option<i128> {
    Some(match d {
        TensorData::Uint8(v) => i128::from(v[i]),
        TensorData::Uint16(v) => i128::from(v[i]),
        TensorData::Uint32(v) => i128::from(v[i]),
        TensorData::Uint64(v) => i128::from(v[i]),
        TensorData::Int8(v) => i128::from(v[i]),
        TensorData::Int16(v) => i128::from(v[i]),
        TensorData::Int32(v) => i128::from(v[i]),
        TensorData::Int64(v) => i128::from(v[i]),
        _ => return None,
    })
}

fn int_fits(v: i128, to: DataType) -> bool {
    match to {
        DataType::Uint8 => u8::try_from(v).is_ok(),
        DataType::Uint16 => u16::try_from(v).is_ok(),
        DataType::Uint32 => u32::try_from(v).is_ok(),
        DataType::Uint64 => u64::try_from(v).is_ok(),
        DataType::Int8 => i8::try_from(v).is_ok(),
        DataType::Int16 => i16::try_from(v).is_ok(),
        DataType::Int32 => i32::try_from(v).is_ok(),
        DataType::Int64 => i64::try_from(v).is_ok(),
        // exact representability in binary floating point: strip trailing
        // zero bits, the remaining odd part must fit the mantissa.
        DataType::Fp16 | DataType::Fp32 | DataType::Fp64 => {
            let (mant, max_exp) = match to {
                DataType::Fp16 => (11, 15),
                DataType::Fp32 => (24, 127),
                _ => (53, 1023),
            };
            let mag = v.unsigned_abs();
            if mag == 0 {
                return true;
            }
            let tz = mag.trailing_zeros();
            let odd = mag >> tz;
            let bits = 128 - odd.leading_zeros();
            let top = 127 - mag.leading_zeros();
            bits <= mant && top <= max_exp
        }
        _ => false,
    }
}

fn check_element_conversion(
    spec: &TensorSpec,
    t: &Tensor,
    i: usize,
) -> Result<(), ValidationError> {
    let from = t.dtype();
    let to = spec.dtype;
    if from == to {
        return Ok(());
    }
    let lossy = |value: String| ValidationError::LossyConversion {
        input: spec.name.clone(),
        position: Position(unravel_index(i, &t.shape)),
        value,
        from,
        to,
    };
    if let Some(v) = int_at(&t.data, i) {
        if !int_fits(v, to) {
            return Err(lossy(v.to_string()));
        }
    } else if let (TensorData::Fp64(v), DataType::Fp32) = (&t.data, to) {
        let x = v[i];
        if x.is_finite() && !(x as f32).is_finite() {
            return Err(lossy(x.to_string()));
        }
    }
    Ok(())
}

fn non_finite(x: f64) -> Option<NonFinite> {
    if x.is_nan() {
        Some(NonFinite::NaN)
    } else if x == f64::INFINITY {
        Some(NonFinite::PosInf)
    } else if x == f64::NEG_INFINITY {
        Some(NonFinite::NegInf)
    } else {
        None
    }
}

/// Validates request tensors against the signature without converting them.
/// See the [module docs](self) for the rules.
pub fn validate(
    sig: &Signature,
    inputs: &[Tensor],
    policy: &Policy,
) -> Result<Validated, ValidationError> {
    let expected: Vec<String> = sig.inputs.iter().map(|s| s.name.clone()).collect();
    // names: unknown, duplicate
    for (k, t) in inputs.iter().enumerate() {
        if sig.input(&t.name).is_none() {
            return Err(ValidationError::UnknownInput {
                name: t.name.clone(),
                expected,
            });
        }
        if inputs[..k].iter().any(|o| o.name == t.name) {
            return Err(ValidationError::DuplicateInput {
                name: t.name.clone(),
            });
        }
    }
    let mut out = Validated::default();
    let mut first_batch: Option<(String, usize)> = None;
    for spec in &sig.inputs {
        let Some(t) = inputs.iter().find(|t| t.name == spec.name) else {
            return Err(ValidationError::MissingInput {
                name: spec.name.clone(),
                expected,
            });
        };
        check_tensor(spec, t, policy)?;
        if let Some(b) = t.batch_size() {
            match &first_batch {
                None => first_batch = Some((t.name.clone(), b)),
                Some((other, ob)) if *ob != b && spec.has_dynamic_batch() => {
                    return Err(ValidationError::InconsistentBatch {
                        input: t.name.clone(),
                        batch: b,
                        other: other.clone(),
                        other_batch: *ob,
                    });
                }
                _ => {}
            }
        }
        check_values(sig, spec, t, policy, &mut out)?;
    }
    out.batch_size = if sig.inputs.iter().all(|s| !s.shape.is_empty()) {
        first_batch.map(|(_, b)| b)
    } else {
        None
    };
    Ok(out)
}

/// Checks one input's declared name and shape against the signature before
/// its data is read: unknown name, invalid shape, rank, fixed dimensions and
/// the batch limit, with the same errors [`validate`] gives later. Lets a
/// decoder refuse an oversized request without materialising it.
pub fn check_declared_shape(
    sig: &Signature,
    name: &str,
    shape: &[i64],
    policy: &Policy,
) -> Result<(), ValidationError> {
    let Some(spec) = sig.input(name) else {
        return Err(ValidationError::UnknownInput {
            name: name.to_string(),
            expected: sig.inputs.iter().map(|s| s.name.clone()).collect(),
        });
    };
    element_count(shape).map_err(|_| ValidationError::InvalidShape {
        input: spec.name.clone(),
        shape: shape.to_vec(),
    })?;
    check_dims(spec, shape, policy)
}

/// Rank, fixed dimensions and batch limit of one input's shape.
fn check_dims(spec: &TensorSpec, shape: &[i64], policy: &Policy) -> Result<(), ValidationError> {
    if shape.len() != spec.shape.len() {
        return Err(ValidationError::WrongRank {
            input: spec.name.clone(),
            expected: spec.shape.clone(),
            actual: shape.to_vec(),
        });
    }
    for (dim, (want, got)) in spec.shape.iter().zip(shape).enumerate() {
        if *want >= 0 && want != got {
            return Err(ValidationError::WrongShape {
                input: spec.name.clone(),
                dim,
                expected: spec.shape.clone(),
                actual: shape.to_vec(),
            });
        }
    }
    let batch = shape.first().and_then(|b| usize::try_from(*b).ok());
    if let (Some(max), Some(b)) = (policy.max_batch_size, batch) {
        if b > max && spec.has_dynamic_batch() {
            return Err(ValidationError::BatchTooLarge {
                input: spec.name.clone(),
                batch: b,
                max,
            });
        }
    }
    Ok(())
}

/// Type, shape, batch and element-count checks for one input.
fn check_tensor(spec: &TensorSpec, t: &Tensor, policy: &Policy) -> Result<(), ValidationError> {
    if !type_convertible(t.dtype(), spec.dtype, policy) {
        return Err(ValidationError::WrongDtype {
            input: spec.name.clone(),
            expected: spec.dtype,
            actual: t.dtype(),
        });
    }
    let n = element_count(&t.shape).map_err(|_| ValidationError::InvalidShape {
        input: spec.name.clone(),
        shape: t.shape.clone(),
    })?;
    if n != t.data.len() {
        return Err(ValidationError::ElementCount {
            input: spec.name.clone(),
            shape: t.shape.clone(),
            expected: n,
            actual: t.data.len(),
        });
    }
    check_dims(spec, &t.shape, policy)
}

/// Per-element checks: lossless conversion, NaN/inf, ranges.
fn check_values(
    sig: &Signature,
    spec: &TensorSpec,
    t: &Tensor,
    policy: &Policy,
    out: &mut Validated,
) -> Result<(), ValidationError> {
    if t.dtype() == DataType::Bytes || t.dtype() == DataType::Bool {
        return Ok(());
    }
    let range = match policy.out_of_range {
        RangeAction::Ignore => None,
        _ => sig.ranges.get(&spec.name),
    };
    let features = if t.shape.len() >= 2 {
        t.shape
            .last()
            .and_then(|d| usize::try_from(*d).ok())
            .unwrap_or(1)
            .max(1)
    } else {
        1
    };
    let converting = t.dtype() != spec.dtype;
    let is_float = t.dtype().is_float();
    if !converting && !is_float && range.is_none() {
        return Ok(());
    }
    for i in 0..t.data.len() {
        if converting {
            check_element_conversion(spec, t, i)?;
        }
        let Some(x) = t.data.get_f64(i) else { continue };
        if is_float {
            if let Some(kind) = non_finite(x) {
                let allowed = match kind {
                    NonFinite::NaN => policy.allow_nan,
                    _ => policy.allow_inf,
                };
                if !allowed {
                    return Err(ValidationError::NonFinite {
                        input: spec.name.clone(),
                        position: Position(unravel_index(i, &t.shape)),
                        kind,
                    });
                }
                continue;
            }
        }
        if let Some(r) = range {
            let feature = i % features;
            let (min, max) = r.bounds(feature);
            let below = min.is_some_and(|m| x < m);
            let above = max.is_some_and(|m| x > m);
            if below || above {
                let position = unravel_index(i, &t.shape);
                if policy.out_of_range == RangeAction::Reject {
                    return Err(ValidationError::OutOfRange {
                        input: spec.name.clone(),
                        position: Position(position),
                        feature,
                        value: x,
                        min,
                        max,
                    });
                }
                out.flagged += 1;
                if out.flags.len() < policy.max_flags {
                    out.flags.push(RangeFlag {
                        input: spec.name.clone(),
                        position,
                        feature,
                        value: x,
                        min,
                        max,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Converts `data` to `to`. Callers must have validated the conversion
/// (values that do not fit are saturated by `as`).
pub fn convert_data(data: TensorData, to: DataType) -> TensorData {
    if data.dtype() == to {
        return data;
    }
    macro_rules! cast_all {
        ($v:expr, $to:expr) => {
            match $to {
                DataType::Uint8 => TensorData::Uint8($v.iter().map(|x| *x as u8).collect()),
                DataType::Uint16 => TensorData::Uint16($v.iter().map(|x| *x as u16).collect()),
                DataType::Uint32 => TensorData::Uint32($v.iter().map(|x| *x as u32).collect()),
                DataType::Uint64 => TensorData::Uint64($v.iter().map(|x| *x as u64).collect()),
                DataType::Int8 => TensorData::Int8($v.iter().map(|x| *x as i8).collect()),
                DataType::Int16 => TensorData::Int16($v.iter().map(|x| *x as i16).collect()),
                DataType::Int32 => TensorData::Int32($v.iter().map(|x| *x as i32).collect()),
                DataType::Int64 => TensorData::Int64($v.iter().map(|x| *x as i64).collect()),
                DataType::Fp16 => {
                    TensorData::Fp16($v.iter().map(|x| half::f16::from_f64(*x as f64)).collect())
                }
                DataType::Fp32 => TensorData::Fp32($v.iter().map(|x| *x as f32).collect()),
                DataType::Fp64 => TensorData::Fp64($v.iter().map(|x| *x as f64).collect()),
                _ => return TensorData::zeros(to, $v.len()),
            }
        };
    }
    match &data {
        TensorData::Uint8(v) => cast_all!(v, to),
        TensorData::Uint16(v) => cast_all!(v, to),
        TensorData::Uint32(v) => cast_all!(v, to),
        TensorData::Uint64(v) => cast_all!(v, to),
        TensorData::Int8(v) => cast_all!(v, to),
        TensorData::Int16(v) => cast_all!(v, to),
        TensorData::Int32(v) => cast_all!(v, to),
        TensorData::Int64(v) => cast_all!(v, to),
        TensorData::Fp32(v) => cast_all!(v, to),
        TensorData::Fp64(v) => cast_all!(v, to),
        TensorData::Fp16(v) => {
            let wide: Vec<f64> = v.iter().map(|x| f64::from(*x)).collect();
            cast_all!(wide, to)
        }
        TensorData::Bool(_) | TensorData::Bytes(_) => data,
    }
}

/// Validates, then converts every input to the model's type and orders the
/// tensors as the signature's inputs. This is what the serving path feeds to a
/// [`ModelWorker`](crate::ModelWorker).
pub fn conform(
    sig: &Signature,
    inputs: Vec<Tensor>,
    policy: &Policy,
) -> Result<(Vec<Tensor>, Validated), ValidationError> {
    let report = validate(sig, &inputs, policy)?;
    let mut inputs: Vec<Option<Tensor>> = inputs.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(sig.inputs.len());
    for spec in &sig.inputs {
        let pos = inputs
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| t.name == spec.name));
        let Some(mut t) = pos.and_then(|p| inputs[p].take()) else {
            return Err(ValidationError::MissingInput {
                name: spec.name.clone(),
                expected: sig.inputs.iter().map(|s| s.name.clone()).collect(),
            });
        };
        if t.dtype() != spec.dtype {
            t.data = convert_data(t.data, spec.dtype);
        }
        ordered.push(t);
    }
    Ok((ordered, report))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::signature::FeatureRanges;

    fn sig() -> Signature {
        let mut s = Signature::new(
            vec![TensorSpec::new("float_input", DataType::Fp32, vec![-1, 4])],
            vec![],
        );
        s.ranges = FeatureRanges::from_json(
            r#"{"float_input": {"min": [4, 2, 1, 0], "max": [8, 4.5, 7, 2.5]}}"#,
        )
        .unwrap();
        s
    }

    fn x(shape: Vec<i64>, v: Vec<f32>) -> Tensor {
        Tensor::new("float_input", shape, TensorData::Fp32(v)).unwrap()
    }

    fn ok_rows() -> Vec<f32> {
        vec![
            5.1, 3.5, 1.4, 0.2, 6.0, 3.0, 4.0, 1.0, 6.5, 3.0, 5.5, 2.0, 7.0, 3.2, 4.7, 1.4,
        ]
    }

    #[test]
    fn accepts_valid() {
        let r = validate(&sig(), &[x(vec![4, 4], ok_rows())], &Policy::default()).unwrap();
        assert!(r.flags.is_empty());
        assert_eq!(r.batch_size, Some(4));
    }

    #[test]
    fn nan_message() {
        let mut v = ok_rows();
        v[3 * 4 + 2] = f32::NAN;
        let e = validate(&sig(), &[x(vec![4, 4], v)], &Policy::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'float_input' element [3,2] is NaN; the model does not accept NaN"
        );
        let mut v = ok_rows();
        v[1] = f32::NEG_INFINITY;
        let e = validate(&sig(), &[x(vec![4, 4], v.clone())], &Policy::default()).unwrap_err();
        assert!(matches!(
            e,
            ValidationError::NonFinite {
                kind: NonFinite::NegInf,
                ..
            }
        ));
        let p = Policy {
            allow_inf: true,
            ..Policy::default()
        };
        assert!(validate(&sig(), &[x(vec![4, 4], v)], &p).is_ok());
    }

    #[test]
    fn names() {
        let e = validate(&sig(), &[], &Policy::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'float_input' is missing; the model requires inputs float_input"
        );
        let mut t = x(vec![4, 4], ok_rows());
        t.name = "nope".into();
        let e = validate(&sig(), &[t], &Policy::default()).unwrap_err();
        assert!(matches!(e, ValidationError::UnknownInput { .. }), "{e}");
        let t = x(vec![4, 4], ok_rows());
        let e = validate(&sig(), &[t.clone(), t], &Policy::default()).unwrap_err();
        assert!(matches!(e, ValidationError::DuplicateInput { .. }));
    }

    #[test]
    fn shapes() {
        let e = validate(&sig(), &[x(vec![16], ok_rows())], &Policy::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'float_input' has shape [16] (rank 1); the model expects rank 2 [-1,4]"
        );
        let e = validate(&sig(), &[x(vec![2, 8], ok_rows())], &Policy::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'float_input' has shape [2,8]; dimension 1 must be 4 (the model expects [-1,4])"
        );
        let p = Policy {
            max_batch_size: Some(3),
            ..Policy::default()
        };
        let e = validate(&sig(), &[x(vec![4, 4], ok_rows())], &p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'float_input' has batch size 4; the maximum batch size is 3"
        );
        let bad = Tensor {
            name: "float_input".into(),
            shape: vec![3, 4],
            data: TensorData::Fp32(ok_rows()),
        };
        let e = validate(&sig(), &[bad], &Policy::default()).unwrap_err();
        assert!(matches!(
            e,
            ValidationError::ElementCount {
                expected: 12,
                actual: 16,
                ..
            }
        ));
    }

    #[test]
    fn ranges_flag_and_reject() {
        let mut v = ok_rows();
        v[2 * 4 + 3] = 9.0; // feature 3, max 2.5
        let r = validate(&sig(), &[x(vec![4, 4], v.clone())], &Policy::default()).unwrap();
        assert_eq!(r.flagged, 1);
        assert_eq!(r.flags[0].position, vec![2, 3]);
        assert_eq!(r.flags[0].feature, 3);
        let p = Policy {
            out_of_range: RangeAction::Reject,
            ..Policy::default()
        };
        let e = validate(&sig(), &[x(vec![4, 4], v.clone())], &p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'float_input' element [2,3] is 9, outside the range [0, 2.5] of feature 3"
        );
        let p = Policy {
            out_of_range: RangeAction::Ignore,
            ..Policy::default()
        };
        assert_eq!(
            validate(&sig(), &[x(vec![4, 4], v)], &p).unwrap().flagged,
            0
        );
    }

    #[test]
    fn dtype_conversions() {
        let s = sig();
        let ints = Tensor::new(
            "float_input",
            vec![1, 4],
            TensorData::Int64(vec![5, 3, 2, 1]),
        )
        .unwrap();
        let (conv, _) = conform(&s, vec![ints], &Policy::default()).unwrap();
        assert_eq!(conv[0].data, TensorData::Fp32(vec![5.0, 3.0, 2.0, 1.0]));

        let big = Tensor::new(
            "float_input",
            vec![1, 4],
            TensorData::Int64(vec![5, 3, (1 << 24) + 1, 1]),
        )
        .unwrap();
        let e = validate(&s, &[big], &Policy::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'float_input' element [0,2] (16777217) cannot be converted from INT64 to FP32 without loss; the model expects FP32"
        );
        let pow = Tensor::new(
            "float_input",
            vec![1, 4],
            TensorData::Int64(vec![5, 3, 1 << 40, 1]),
        )
        .unwrap();
        assert!(validate(&s, &[pow], &Policy::default()).is_ok());

        let dbl = Tensor::new(
            "float_input",
            vec![1, 4],
            TensorData::Fp64(vec![5.1, 3.5, 1.4, 0.2]),
        )
        .unwrap();
        let (conv, _) = conform(&s, vec![dbl.clone()], &Policy::default()).unwrap();
        assert_eq!(conv[0].data, TensorData::Fp32(vec![5.1, 3.5, 1.4, 0.2]));
        let p = Policy {
            allow_fp64_to_fp32: false,
            ..Policy::default()
        };
        let e = validate(&s, &[dbl], &p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 'float_input' has datatype FP64; the model expects FP32"
        );
        let huge = Tensor::new(
            "float_input",
            vec![1, 4],
            TensorData::Fp64(vec![1e300, 3.5, 1.4, 0.2]),
        )
        .unwrap();
        assert!(matches!(
            validate(&s, &[huge], &Policy::default()).unwrap_err(),
            ValidationError::LossyConversion { .. }
        ));
        let strs = Tensor::new(
            "float_input",
            vec![1, 4],
            TensorData::Bytes(vec![b"a".to_vec(); 4]),
        )
        .unwrap();
        assert!(matches!(
            validate(&s, &[strs], &Policy::default()).unwrap_err(),
            ValidationError::WrongDtype { .. }
        ));
        let i_sig = Signature::new(
            vec![TensorSpec::new("b", DataType::Int32, vec![-1])],
            vec![],
        );
        let neg = Tensor::new(
            "b",
            vec![2],
            TensorData::Int64(vec![1, i64::from(i32::MAX) + 1]),
        )
        .unwrap();
        assert!(validate(&i_sig, &[neg], &Policy::default()).is_err());
        let u = Tensor::new("b", vec![2], TensorData::Uint8(vec![1, 255])).unwrap();
        let (conv, _) = conform(&i_sig, vec![u], &Policy::default()).unwrap();
        assert_eq!(conv[0].data, TensorData::Int32(vec![1, 255]));
    }

    #[test]
    fn exactness() {
        assert!(int_fits(1 << 24, DataType::Fp32));
        assert!(!int_fits((1 << 24) + 1, DataType::Fp32));
        assert!(int_fits(-(1 << 53), DataType::Fp64));
        assert!(!int_fits((1 << 53) + 1, DataType::Fp64));
        assert!(int_fits(i128::from(u64::MAX) + 1, DataType::Fp64));
        assert!(!int_fits(1 << 16, DataType::Fp16));
        assert!(int_fits(2048, DataType::Fp16));
    }
}
