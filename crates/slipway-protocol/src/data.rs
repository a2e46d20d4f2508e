//! Tensor contents ⇄ JSON arrays and ⇄ raw little-endian bytes.
//!
//! JSON: numbers for numeric types, `true`/`false` for `BOOL`, strings for
//! `BYTES` (UTF-8 only; use the binary extension for arbitrary bytes). Float
//! types also accept (and produce) the strings `"NaN"`, `"Infinity"` and
//! `"-Infinity"`, since JSON has no literal for them; `null` is read as NaN
//! for float types only where the caller allows it (MLflow's pandas-style
//! missing values). Integer types accept integral numbers only, within range.
//!
//! Raw (binary extension): fixed-size types are packed little-endian, `BOOL`
//! one byte (0 or 1) per element, `BYTES` each element as a 4-byte
//! little-endian length followed by the bytes.

use serde::ser::{Error as _, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use slipway_runtime::{DataType, TensorData};

use crate::error::ProtocolError;

/// One JSON leaf, borrowed from a parsed [`Value`] or straight from the
/// request bytes, so both paths convert it with the same rules and messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A JSON number, as serde_json holds it.
    Number(serde_json::Number),
    /// A string.
    Str(std::borrow::Cow<'a, str>),
    /// An object (never a valid element).
    Object,
}

impl<'a> Scalar<'a> {
    /// The leaf of a parsed value (arrays are walked by the callers).
    pub(crate) fn of(v: &'a Value) -> Scalar<'a> {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Number(n.clone()),
            Value::String(s) => Scalar::Str(std::borrow::Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Scalar::Object,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Number(_) => "a number",
            Scalar::Str(_) => "a string",
            Scalar::Object => "an object",
        }
    }

    /// As JSON text, for messages.
    fn display(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Str(s) => Value::String(s.to_string()).to_string(),
            Scalar::Object => "{...}".into(),
        }
    }
}

fn float_from_scalar(v: &Scalar<'_>, null_is_nan: bool) -> Result<f64, String> {
    match v {
        Scalar::Number(n) => n.as_f64().ok_or_else(|| "number out of range".to_string()),
        Scalar::Str(s) => match s.as_ref() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" | "+inf" | "+Infinity" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            _ => Err(format!("expected a number, got the string {s:?}")),
        },
        Scalar::Null if null_is_nan => Ok(f64::NAN),
        other => Err(format!("expected a number, got {}", other.kind())),
    }
}

fn int_from_scalar(v: &Scalar<'_>, dtype: DataType) -> Result<i128, String> {
    let out_of_range = || {
        format!(
            "expected an integer in the range of {dtype}, got {}",
            v.display()
        )
    };
    let n = match v {
        Scalar::Number(n) => {
            if let Some(i) = n.as_i64() {
                i128::from(i)
            } else if let Some(u) = n.as_u64() {
                i128::from(u)
            } else {
                let f = n.as_f64().ok_or_else(out_of_range)?;
                if f.fract() != 0.0 || !f.is_finite() || f.abs() > 1.8e19 {
                    return Err(format!(
                        "expected an integer for {dtype}, got {}",
                        v.display()
                    ));
                }
                f as i128
            }
        }
        other => {
            return Err(format!(
                "expected an integer for {dtype}, got {}",
                other.kind()
            ))
        }
    };
    let fits = match dtype {
        DataType::Uint8 => u8::try_from(n).is_ok(),
        DataType::Uint16 => u16::try_from(n).is_ok(),
        DataType::Uint32 => u32::try_from(n).is_ok(),
        DataType::Uint64 => u64::try_from(n).is_ok(),
        DataType::Int8 => i8::try_from(n).is_ok(),
        DataType::Int16 => i16::try_from(n).is_ok(),
        DataType::Int32 => i32::try_from(n).is_ok(),
        DataType::Int64 => i64::try_from(n).is_ok(),
        _ => false,
    };
    if fits {
        Ok(n)
    } else {
        Err(out_of_range())
    }
}

/// A short description of a JSON value's kind, for messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "an array",
        other => Scalar::of(other).kind(),
    }
}

/// Appends one JSON scalar, converted to `out`'s type.
pub(crate) fn push_json_scalar(
    out: &mut TensorData,
    v: &Value,
    null_is_nan: bool,
) -> Result<(), String> {
    push_scalar(out, Scalar::of(v), null_is_nan)
}

/// Appends one leaf, converted to `out`'s type; the message says what is wrong.
pub(crate) fn push_scalar(
    out: &mut TensorData,
    v: Scalar<'_>,
    null_is_nan: bool,
) -> Result<(), String> {
    let dtype = out.dtype();
    match out {
        TensorData::Bool(d) => match v {
            Scalar::Bool(b) => d.push(b),
            other => {
                return Err(format!(
                    "expected true or false for BOOL, got {}",
                    other.kind()
                ))
            }
        },
        TensorData::Bytes(d) => match v {
            Scalar::Str(s) => d.push(s.into_owned().into_bytes()),
            other => return Err(format!("expected a string for BYTES, got {}", other.kind())),
        },
        TensorData::Fp16(d) => d.push(half::f16::from_f64(checked_float(
            &v,
            null_is_nan,
            65504.0,
            dtype,
        )?)),
        TensorData::Fp32(d) => {
            d.push(checked_float(&v, null_is_nan, f64::from(f32::MAX), dtype)? as f32)
        }
        TensorData::Fp64(d) => d.push(float_from_scalar(&v, null_is_nan)?),
        TensorData::Uint8(d) => d.push(int_from_scalar(&v, dtype)? as u8),
        TensorData::Uint16(d) => d.push(int_from_scalar(&v, dtype)? as u16),
        TensorData::Uint32(d) => d.push(int_from_scalar(&v, dtype)? as u32),
        TensorData::Uint64(d) => d.push(int_from_scalar(&v, dtype)? as u64),
        TensorData::Int8(d) => d.push(int_from_scalar(&v, dtype)? as i8),
        TensorData::Int16(d) => d.push(int_from_scalar(&v, dtype)? as i16),
        TensorData::Int32(d) => d.push(int_from_scalar(&v, dtype)? as i32),
        TensorData::Int64(d) => d.push(int_from_scalar(&v, dtype)? as i64),
    }
    Ok(())
}

/// Appends a JSON number that `out`'s type takes as it is — a float type
/// and a number in its range, or an integer type and an integer that fits —
/// without building a [`Scalar`]: the common case of every element. `false`
/// leaves the number to [`push_scalar`], which decides (and words the
/// message) exactly as for any other leaf; where this pushes, it pushes
/// what that would.
#[inline]
pub(crate) fn push_f64_fast(out: &mut TensorData, x: f64) -> bool {
    match out {
        // also false for NaN and the infinities
        TensorData::Fp32(d) if x.abs() <= f64::from(f32::MAX) => d.push(x as f32),
        TensorData::Fp64(d) if x.is_finite() => d.push(x),
        _ => return false,
    }
    true
}

/// [`push_f64_fast`] for a JSON integer read as `i64`.
#[inline]
pub(crate) fn push_i64_fast(out: &mut TensorData, i: i64) -> bool {
    match out {
        TensorData::Fp32(d) => d.push(i as f32),
        TensorData::Fp64(d) => d.push(i as f64),
        TensorData::Int64(d) => d.push(i),
        TensorData::Int32(d) => match i32::try_from(i) {
            Ok(v) => d.push(v),
            Err(_) => return false,
        },
        _ => return false,
    }
    true
}

/// [`push_f64_fast`] for a JSON integer read as `u64`.
#[inline]
pub(crate) fn push_u64_fast(out: &mut TensorData, u: u64) -> bool {
    match out {
        TensorData::Fp32(d) => d.push(u as f32),
        TensorData::Fp64(d) => d.push(u as f64),
        TensorData::Int64(d) => match i64::try_from(u) {
            Ok(v) => d.push(v),
            Err(_) => return false,
        },
        TensorData::Int32(d) => match i32::try_from(u) {
            Ok(v) => d.push(v),
            Err(_) => return false,
        },
        _ => return false,
    }
    true
}

fn checked_float(
    v: &Scalar<'_>,
    null_is_nan: bool,
    max: f64,
    dtype: DataType,
) -> Result<f64, String> {
    let x = float_from_scalar(v, null_is_nan)?;
    if x.is_finite() && x.abs() > max {
        return Err(format!("{x} is outside the range of {dtype}"));
    }
    Ok(x)
}

/// Reads a flat or nested JSON array of `dtype` elements (nesting is
/// flattened row-major). `field` names the array in errors.
pub fn data_from_json(
    field: &str,
    value: &Value,
    dtype: DataType,
) -> Result<TensorData, ProtocolError> {
    let mut out = TensorData::with_capacity(dtype, 0);
    fn walk(field: &str, v: &Value, out: &mut TensorData) -> Result<(), ProtocolError> {
        match v {
            Value::Array(items) => {
                for item in items {
                    walk(field, item, out)?;
                }
                Ok(())
            }
            leaf => push_json_scalar(out, leaf, false).map_err(|message| ProtocolError::Element {
                field: field.to_string(),
                index: out.len(),
                message,
            }),
        }
    }
    // a bare scalar is accepted for a single element
    walk(field, value, &mut out)?;
    Ok(out)
}

/// Reads a flat or nested JSON array of `dtype` elements straight from its
/// JSON text into a typed buffer: no intermediate value tree, one pass.
/// Accepts and rejects exactly what [`data_from_json`] does, with the same
/// messages. `capacity` pre-sizes the buffer (the element count the shape
/// declares, already checked against the caller's limits).
pub fn data_from_json_text(
    field: &str,
    json: &str,
    dtype: DataType,
    capacity: usize,
) -> Result<TensorData, ProtocolError> {
    use serde::de::DeserializeSeed;
    // never trust a declared size beyond what the text can hold (one
    // element takes at least two bytes: a digit and a separator)
    let capacity = capacity.min(json.len() / 2 + 1);
    let mut out = TensorData::with_capacity(dtype, capacity);
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_str(json);
    let seed = Elements {
        out: &mut out,
        field,
        failure: &mut failure,
    };
    let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Some(e) = failure {
        return Err(e);
    }
    parsed.map_err(|e| ProtocolError::Json {
        field: field.to_string(),
        message: e.to_string(),
    })?;
    Ok(out)
}

/// Reads a flat or nested JSON array of `dtype` elements from `d`, as
/// [`data_from_json_text`] reads its text, but with no message on an error
/// (its callers read the text again to say what was wrong).
pub(crate) fn read_json_elements<'de, D: serde::Deserializer<'de>>(
    d: D,
    dtype: DataType,
    capacity: usize,
) -> Result<TensorData, D::Error> {
    use serde::de::DeserializeSeed;
    let mut out = TensorData::with_capacity(dtype, capacity);
    let mut failure = None;
    Elements {
        out: &mut out,
        field: "",
        failure: &mut failure,
    }
    .deserialize(d)?;
    Ok(out)
}

/// Streams nested JSON arrays into a [`TensorData`]; the first element error
/// is kept in `failure` and parsing stops.
struct Elements<'o> {
    out: &'o mut TensorData,
    field: &'o str,
    failure: &'o mut Option<ProtocolError>,
}

impl Elements<'_> {
    fn push<E: serde::de::Error>(self, v: Scalar<'_>) -> Result<(), E> {
        let index = self.out.len();
        push_scalar(self.out, v, false).map_err(|message| {
            *self.failure = Some(ProtocolError::Element {
                field: self.field.to_string(),
                index,
                message,
            });
            E::custom("element error")
        })
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Elements<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of tensor elements")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Elements {
                out: &mut *self.out,
                field: self.field,
                failure: &mut *self.failure,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.push(Scalar::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        if push_i64_fast(self.out, v) {
            return Ok(());
        }
        self.push(Scalar::Number(v.into()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        if push_u64_fast(self.out, v) {
            return Ok(());
        }
        self.push(Scalar::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        if push_f64_fast(self.out, v) {
            return Ok(());
        }
        // JSON numbers are finite, so from_f64 always succeeds
        match serde_json::Number::from_f64(v) {
            Some(n) => self.push(Scalar::Number(n)),
            None => self.push(Scalar::Null),
        }
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<(), E> {
        self.push(Scalar::Str(std::borrow::Cow::Borrowed(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.push(Scalar::Str(std::borrow::Cow::Borrowed(v)))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<(), E> {
        self.push(Scalar::Str(std::borrow::Cow::Owned(v)))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.push(Scalar::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.push(Scalar::Null)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        self.push(Scalar::Object)
    }
}

/// Serializes tensor contents as a flat JSON array (floats in their shortest
/// round-trip form for their own precision; non-finite floats as strings).
/// BYTES elements must be UTF-8.
pub struct JsonData<'a>(pub &'a TensorData);

fn ser_float<S: SerializeSeq>(seq: &mut S, x: f64, as_f32: Option<f32>) -> Result<(), S::Error> {
    if x.is_nan() {
        seq.serialize_element("NaN")
    } else if x == f64::INFINITY {
        seq.serialize_element("Infinity")
    } else if x == f64::NEG_INFINITY {
        seq.serialize_element("-Infinity")
    } else if let Some(f) = as_f32 {
        seq.serialize_element(&f)
    } else {
        seq.serialize_element(&x)
    }
}

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        match self.0 {
            TensorData::Bool(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Uint8(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Uint16(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Uint32(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Uint64(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Int8(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Int16(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Int32(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Int64(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Fp16(v) => v
                .iter()
                .try_for_each(|x| ser_float(&mut seq, f64::from(*x), Some(f32::from(*x))))?,
            TensorData::Fp32(v) => v
                .iter()
                .try_for_each(|x| ser_float(&mut seq, f64::from(*x), Some(*x)))?,
            TensorData::Fp64(v) => v.iter().try_for_each(|x| ser_float(&mut seq, *x, None))?,
            TensorData::Bytes(v) => {
                for (i, b) in v.iter().enumerate() {
                    let s = std::str::from_utf8(b).map_err(|_| {
                        S::Error::custom(format!(
                            "BYTES element {i} is not UTF-8; request binary data"
                        ))
                    })?;
                    seq.serialize_element(s)?;
                }
            }
        }
        seq.end()
    }
}

/// Index of the first BYTES element that is not UTF-8 (JSON cannot carry it).
pub fn first_non_utf8(data: &TensorData) -> Option<usize> {
    match data {
        TensorData::Bytes(v) => v.iter().position(|b| std::str::from_utf8(b).is_err()),
        _ => None,
    }
}

/// Size in bytes of the raw encoding.
pub fn raw_size(data: &TensorData) -> usize {
    match data {
        TensorData::Bytes(v) => v.iter().map(|b| 4 + b.len()).sum(),
        other => other.len() * other.dtype().element_size().unwrap_or(0),
    }
}

/// Appends the raw little-endian encoding of `data` to `out`.
pub fn encode_raw(data: &TensorData, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    out.reserve(raw_size(data));
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Uint16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Uint32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Uint64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Int8(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Int16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Int32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Int64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Fp16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Fp32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Fp64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Bytes(v) => {
            for (i, b) in v.iter().enumerate() {
                let len = u32::try_from(b.len()).map_err(|_| ProtocolError::Unrepresentable {
                    field: format!("BYTES element {i}"),
                    message: "longer than 4 GiB".into(),
                })?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    Ok(())
}

fn chunks<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

/// Decodes `count` elements of `dtype` from exactly `bytes`. For fixed-size
/// types the caller has checked `bytes.len() == count × size`.
pub fn decode_raw(
    field: &str,
    bytes: &[u8],
    dtype: DataType,
    count: usize,
) -> Result<TensorData, ProtocolError> {
    Ok(match dtype {
        DataType::Bool => {
            let mut v = Vec::with_capacity(bytes.len());
            for (i, b) in bytes.iter().enumerate() {
                match b {
                    0 => v.push(false),
                    1 => v.push(true),
                    other => {
                        return Err(ProtocolError::Element {
                            field: field.to_string(),
                            index: i,
                            message: format!("BOOL byte must be 0 or 1, got {other}"),
                        })
                    }
                }
            }
            TensorData::Bool(v)
        }
        DataType::Uint8 => TensorData::Uint8(bytes.to_vec()),
        DataType::Uint16 => TensorData::Uint16(chunks(bytes, u16::from_le_bytes)),
        DataType::Uint32 => TensorData::Uint32(chunks(bytes, u32::from_le_bytes)),
        DataType::Uint64 => TensorData::Uint64(chunks(bytes, u64::from_le_bytes)),
        DataType::Int8 => TensorData::Int8(chunks(bytes, i8::from_le_bytes)),
        DataType::Int16 => TensorData::Int16(chunks(bytes, i16::from_le_bytes)),
        DataType::Int32 => TensorData::Int32(chunks(bytes, i32::from_le_bytes)),
        DataType::Int64 => TensorData::Int64(chunks(bytes, i64::from_le_bytes)),
        DataType::Fp16 => TensorData::Fp16(chunks(bytes, half::f16::from_le_bytes)),
        DataType::Fp32 => TensorData::Fp32(chunks(bytes, f32::from_le_bytes)),
        DataType::Fp64 => TensorData::Fp64(chunks(bytes, f64::from_le_bytes)),
        DataType::Bytes => {
            let mut v = Vec::with_capacity(count.min(bytes.len() / 4));
            let mut pos = 0usize;
            while pos < bytes.len() {
                let index = v.len();
                let Some(prefix) = bytes.get(pos..pos + 4) else {
                    return Err(ProtocolError::BytesEncoding {
                        field: field.to_string(),
                        message: format!(
                            "element {index}: {} bytes left, too few for a 4-byte length prefix",
                            bytes.len() - pos
                        ),
                    });
                };
                let mut l = [0u8; 4];
                l.copy_from_slice(prefix);
                let len = u32::from_le_bytes(l) as usize;
                pos += 4;
                let Some(body) = bytes.get(pos..pos.saturating_add(len)) else {
                    return Err(ProtocolError::BytesEncoding {
                        field: field.to_string(),
                        message: format!(
                            "element {index}: length prefix says {len} bytes but only {} remain",
                            bytes.len() - pos
                        ),
                    });
                };
                v.push(body.to_vec());
                pos += len;
            }
            if v.len() != count {
                return Err(ProtocolError::BytesEncoding {
                    field: field.to_string(),
                    message: format!(
                        "binary data holds {} BYTES elements but the shape needs {count}",
                        v.len()
                    ),
                });
            }
            TensorData::Bytes(v)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn json_leaves() {
        let d = data_from_json(
            "x",
            &json!([[1, 2.5], ["NaN", "-Infinity"]]),
            DataType::Fp32,
        )
        .unwrap();
        let TensorData::Fp32(v) = d else { panic!() };
        assert_eq!(v[..2], [1.0, 2.5]);
        assert!(v[2].is_nan() && v[3] == f32::NEG_INFINITY);
        let e = data_from_json("inputs[0].data", &json!([1, 2, 300]), DataType::Uint8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inputs[0].data[2]: expected an integer in the range of UINT8, got 300"
        );
        let e = data_from_json("d", &json!([1, "a"]), DataType::Int64).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d[1]: expected an integer for INT64, got a string"
        );
        let e = data_from_json("d", &json!(["a", 1]), DataType::Bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d[1]: expected a string for BYTES, got a number"
        );
        let e = data_from_json("d", &json!([true, 0]), DataType::Bool).unwrap_err();
        assert!(e.to_string().contains("expected true or false"));
        assert!(data_from_json("d", &json!([1e300]), DataType::Fp32).is_err());
        assert_eq!(
            data_from_json("d", &json!([2.0]), DataType::Int32).unwrap(),
            TensorData::Int32(vec![2])
        );
        assert!(data_from_json("d", &json!([2.5]), DataType::Int32).is_err());
        assert_eq!(
            data_from_json("d", &json!([u64::MAX]), DataType::Uint64).unwrap(),
            TensorData::Uint64(vec![u64::MAX])
        );
    }

    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e40f64..1e40).prop_map(Value::from),
            (-300i64..300).prop_map(Value::from),
            (-3.0f64..3.0).prop_map(|f| Value::from((f * 4.0).round() / 4.0)),
            // the edges of the types' ranges (the numbers' fast path)
            prop_oneof![
                Just(Value::from(f64::from(f32::MAX))),
                Just(Value::from(-3.402_823_567_797_336_6e38)),
                Just(Value::from(i64::from(i32::MAX) + 1)),
                Just(Value::from(i64::from(i32::MIN) - 1)),
                Just(Value::from(i64::MAX.unsigned_abs() + 1)),
                Just(Value::from(i64::MIN)),
            ],
            prop_oneof![
                Just("NaN"),
                Just("Infinity"),
                Just("-inf"),
                Just("x"),
                Just("é\"q")
            ]
            .prop_map(Value::from),
            Just(json!({"a": 1})),
        ]
    }

    fn nested() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 32, 6, |inner| {
            prop::collection::vec(inner, 0..6).prop_map(Value::Array)
        })
    }

    const DTYPES: [DataType; 13] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    fn same(a: &TensorData, b: &TensorData) -> bool {
        // NaN != NaN: compare the bit patterns of floats
        match (a, b) {
            (TensorData::Fp32(x), TensorData::Fp32(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            (TensorData::Fp64(x), TensorData::Fp64(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            (TensorData::Fp16(x), TensorData::Fp16(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            _ => a == b,
        }
    }

    proptest! {
        /// The streaming decoder accepts and rejects exactly what the
        /// value-tree decoder does, with the same tensors and messages.
        #[test]
        fn streaming_decode_equals_value_decode(v in nested(), d in 0usize..13) {
            let dtype = DTYPES[d];
            let text = serde_json::to_string(&v).unwrap();
            let tree = data_from_json("inputs[0].data", &v, dtype);
            let streamed = data_from_json_text("inputs[0].data", &text, dtype, 4);
            match (&tree, &streamed) {
                (Ok(a), Ok(b)) => prop_assert!(same(a, b), "{text}: {a:?} vs {b:?}"),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                _ => prop_assert!(false, "{text} as {dtype}: {tree:?} vs {streamed:?}"),
            }
        }
    }

    #[test]
    fn streaming_decode_reports_bad_json() {
        let e = data_from_json_text("d", "[1, 2", DataType::Fp32, 2).unwrap_err();
        assert!(matches!(e, ProtocolError::Json { .. }), "{e}");
        let e = data_from_json_text("d", "[1] x", DataType::Fp32, 2).unwrap_err();
        assert!(matches!(e, ProtocolError::Json { .. }), "{e}");
    }

    #[test]
    fn json_output() {
        let s =
            serde_json::to_string(&JsonData(&TensorData::Fp32(vec![0.97, f32::NAN, 1.0]))).unwrap();
        assert_eq!(s, r#"[0.97,"NaN",1.0]"#);
        assert!(serde_json::to_string(&JsonData(&TensorData::Bytes(vec![vec![0xff]]))).is_err());
    }

    #[test]
    fn raw_bytes() {
        let d = TensorData::Bytes(vec![b"ab".to_vec(), vec![], vec![0xff, 0]]);
        let mut out = Vec::new();
        encode_raw(&d, &mut out).unwrap();
        assert_eq!(
            out,
            [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0, 2, 0, 0, 0, 0xff, 0]
        );
        assert_eq!(raw_size(&d), out.len());
        assert_eq!(decode_raw("x", &out, DataType::Bytes, 3).unwrap(), d);
        assert!(decode_raw("x", &out[..5], DataType::Bytes, 3).is_err());
        assert!(decode_raw("x", &out, DataType::Bytes, 2).is_err());
        assert!(decode_raw("x", &[2], DataType::Bool, 1).is_err());
    }
}
