//! The tensor model shared by every runtime and protocol codec.
//!
//! Tensors are dense, row-major (C order) and own their data as a typed `Vec`.
//! Element types carry the Open Inference Protocol (KServe V2) names
//! (`FP32`, `INT64`, `BYTES`, ...).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Element type of a tensor, named as in the Open Inference Protocol (V2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// Boolean (one byte per element on the wire).
    #[serde(rename = "BOOL")]
    Bool,
    /// Unsigned 8-bit integer.
    #[serde(rename = "UINT8")]
    Uint8,
    /// Unsigned 16-bit integer.
    #[serde(rename = "UINT16")]
    Uint16,
    /// Unsigned 32-bit integer.
    #[serde(rename = "UINT32")]
    Uint32,
    /// Unsigned 64-bit integer.
    #[serde(rename = "UINT64")]
    Uint64,
    /// Signed 8-bit integer.
    #[serde(rename = "INT8")]
    Int8,
    /// Signed 16-bit integer.
    #[serde(rename = "INT16")]
    Int16,
    /// Signed 32-bit integer.
    #[serde(rename = "INT32")]
    Int32,
    /// Signed 64-bit integer.
    #[serde(rename = "INT64")]
    Int64,
    /// IEEE 754 half precision float.
    #[serde(rename = "FP16")]
    Fp16,
    /// IEEE 754 single precision float.
    #[serde(rename = "FP32")]
    Fp32,
    /// IEEE 754 double precision float.
    #[serde(rename = "FP64")]
    Fp64,
    /// Variable-length byte strings (ONNX `string`).
    #[serde(rename = "BYTES")]
    Bytes,
}

impl DataType {
    /// All data types, in V2 declaration order.
    pub const ALL: [DataType; 13] = [
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

    /// The V2 name (`"FP32"`, `"INT64"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses a V2 name (exact, upper case).
    pub fn from_v2(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Parses an MLflow/numpy dtype name as found in MLmodel signatures
    /// (`float32`, `float64`, `int64`, `bool`, `str`, `object`, ...), and the
    /// MLflow column types (`double`, `float`, `long`, `integer`, `boolean`,
    /// `string`, `binary`).
    pub fn from_mlflow(name: &str) -> Option<DataType> {
        Some(match name {
            "bool" | "boolean" => DataType::Bool,
            "uint8" => DataType::Uint8,
            "uint16" => DataType::Uint16,
            "uint32" => DataType::Uint32,
            "uint64" => DataType::Uint64,
            "int8" => DataType::Int8,
            "int16" => DataType::Int16,
            "int32" | "integer" => DataType::Int32,
            "int64" | "long" => DataType::Int64,
            "float16" => DataType::Fp16,
            "float32" | "float" => DataType::Fp32,
            "float64" | "double" => DataType::Fp64,
            "str" | "string" | "object" | "bytes" | "binary" => DataType::Bytes,
            _ => return None,
        })
    }

    /// Size in bytes of one element in the raw little-endian encoding, or
    /// `None` for `BYTES` (variable length).
    pub fn element_size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
            DataType::Bytes => return None,
        })
    }

    /// True for FP16/FP32/FP64.
    pub fn is_float(self) -> bool {
        matches!(self, DataType::Fp16 | DataType::Fp32 | DataType::Fp64)
    }

    /// True for the signed and unsigned integer types.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::Uint8
                | DataType::Uint16
                | DataType::Uint32
                | DataType::Uint64
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
        )
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Typed, flat (row-major) tensor contents.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `BOOL`
    Bool(Vec<bool>),
    /// `UINT8`
    Uint8(Vec<u8>),
    /// `UINT16`
    Uint16(Vec<u16>),
    /// `UINT32`
    Uint32(Vec<u32>),
    /// `UINT64`
    Uint64(Vec<u64>),
    /// `INT8`
    Int8(Vec<i8>),
    /// `INT16`
    Int16(Vec<i16>),
    /// `INT32`
    Int32(Vec<i32>),
    /// `INT64`
    Int64(Vec<i64>),
    /// `FP16`
    Fp16(Vec<half::f16>),
    /// `FP32`
    Fp32(Vec<f32>),
    /// `FP64`
    Fp64(Vec<f64>),
    /// `BYTES`: each element is an arbitrary byte string.
    Bytes(Vec<Vec<u8>>),
}

/// Applies `$body` to the inner `Vec` of any [`TensorData`] variant.
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// Applies `$body` to two [`TensorData`] of the same variant
/// (`$a` mutable, `$b` shared); evaluates `$mismatch` otherwise.
macro_rules! with_data_pair {
    ($a:expr, $b:expr, ($x:ident, $y:ident) => $body:expr, else $mismatch:expr) => {
        match ($a, $b) {
            (TensorData::Bool($x), TensorData::Bool($y)) => $body,
            (TensorData::Uint8($x), TensorData::Uint8($y)) => $body,
            (TensorData::Uint16($x), TensorData::Uint16($y)) => $body,
            (TensorData::Uint32($x), TensorData::Uint32($y)) => $body,
            (TensorData::Uint64($x), TensorData::Uint64($y)) => $body,
            (TensorData::Int8($x), TensorData::Int8($y)) => $body,
            (TensorData::Int16($x), TensorData::Int16($y)) => $body,
            (TensorData::Int32($x), TensorData::Int32($y)) => $body,
            (TensorData::Int64($x), TensorData::Int64($y)) => $body,
            (TensorData::Fp16($x), TensorData::Fp16($y)) => $body,
            (TensorData::Fp32($x), TensorData::Fp32($y)) => $body,
            (TensorData::Fp64($x), TensorData::Fp64($y)) => $body,
            (TensorData::Bytes($x), TensorData::Bytes($y)) => $body,
            _ => $mismatch,
        }
    };
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp16(_) => DataType::Fp16,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty vector of the given type with room for `capacity` elements.
    pub fn with_capacity(dtype: DataType, capacity: usize) -> TensorData {
        match dtype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::Uint8 => TensorData::Uint8(Vec::with_capacity(capacity)),
            DataType::Uint16 => TensorData::Uint16(Vec::with_capacity(capacity)),
            DataType::Uint32 => TensorData::Uint32(Vec::with_capacity(capacity)),
            DataType::Uint64 => TensorData::Uint64(Vec::with_capacity(capacity)),
            DataType::Int8 => TensorData::Int8(Vec::with_capacity(capacity)),
            DataType::Int16 => TensorData::Int16(Vec::with_capacity(capacity)),
            DataType::Int32 => TensorData::Int32(Vec::with_capacity(capacity)),
            DataType::Int64 => TensorData::Int64(Vec::with_capacity(capacity)),
            DataType::Fp16 => TensorData::Fp16(Vec::with_capacity(capacity)),
            DataType::Fp32 => TensorData::Fp32(Vec::with_capacity(capacity)),
            DataType::Fp64 => TensorData::Fp64(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// `n` zero elements (`false`, `0`, `0.0`, empty strings).
    pub fn zeros(dtype: DataType, n: usize) -> TensorData {
        match dtype {
            DataType::Bool => TensorData::Bool(vec![false; n]),
            DataType::Uint8 => TensorData::Uint8(vec![0; n]),
            DataType::Uint16 => TensorData::Uint16(vec![0; n]),
            DataType::Uint32 => TensorData::Uint32(vec![0; n]),
            DataType::Uint64 => TensorData::Uint64(vec![0; n]),
            DataType::Int8 => TensorData::Int8(vec![0; n]),
            DataType::Int16 => TensorData::Int16(vec![0; n]),
            DataType::Int32 => TensorData::Int32(vec![0; n]),
            DataType::Int64 => TensorData::Int64(vec![0; n]),
            DataType::Fp16 => TensorData::Fp16(vec![half::f16::ZERO; n]),
            DataType::Fp32 => TensorData::Fp32(vec![0.0; n]),
            DataType::Fp64 => TensorData::Fp64(vec![0.0; n]),
            DataType::Bytes => TensorData::Bytes(vec![Vec::new(); n]),
        }
    }

    /// Appends the elements of `other` (same type) to `self`.
    pub fn extend_from(&mut self, other: &TensorData) -> Result<(), TensorError> {
        let (want, got) = (self.dtype(), other.dtype());
        with_data_pair!(self, other, (a, b) => { a.extend_from_slice(b); Ok(()) },
            else Err(TensorError::DtypeMismatch { expected: want, actual: got }))
    }

    /// A copy of elements `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        match self {
            TensorData::Bool(v) => TensorData::Bool(v[start..end].to_vec()),
            TensorData::Uint8(v) => TensorData::Uint8(v[start..end].to_vec()),
            TensorData::Uint16(v) => TensorData::Uint16(v[start..end].to_vec()),
            TensorData::Uint32(v) => TensorData::Uint32(v[start..end].to_vec()),
            TensorData::Uint64(v) => TensorData::Uint64(v[start..end].to_vec()),
            TensorData::Int8(v) => TensorData::Int8(v[start..end].to_vec()),
            TensorData::Int16(v) => TensorData::Int16(v[start..end].to_vec()),
            TensorData::Int32(v) => TensorData::Int32(v[start..end].to_vec()),
            TensorData::Int64(v) => TensorData::Int64(v[start..end].to_vec()),
            TensorData::Fp16(v) => TensorData::Fp16(v[start..end].to_vec()),
            TensorData::Fp32(v) => TensorData::Fp32(v[start..end].to_vec()),
            TensorData::Fp64(v) => TensorData::Fp64(v[start..end].to_vec()),
            TensorData::Bytes(v) => TensorData::Bytes(v[start..end].to_vec()),
        }
    }

    /// Element `i` as an `f64` (for range checks and conversions), `None` for
    /// `BYTES` or an out-of-bounds index. Booleans map to 0/1.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        Some(match self {
            TensorData::Bool(v) => f64::from(u8::from(*v.get(i)?)),
            TensorData::Uint8(v) => f64::from(*v.get(i)?),
            TensorData::Uint16(v) => f64::from(*v.get(i)?),
            TensorData::Uint32(v) => f64::from(*v.get(i)?),
            TensorData::Uint64(v) => *v.get(i)? as f64,
            TensorData::Int8(v) => f64::from(*v.get(i)?),
            TensorData::Int16(v) => f64::from(*v.get(i)?),
            TensorData::Int32(v) => f64::from(*v.get(i)?),
            TensorData::Int64(v) => *v.get(i)? as f64,
            TensorData::Fp16(v) => f64::from(*v.get(i)?),
            TensorData::Fp32(v) => f64::from(*v.get(i)?),
            TensorData::Fp64(v) => *v.get(i)?,
            TensorData::Bytes(_) => return None,
        })
    }
}

/// Errors building or reshaping tensors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// The shape has a negative dimension.
    #[error("shape {shape:?} has a negative dimension")]
    NegativeDim {
        /// The offending shape.
        shape: Vec<i64>,
    },
    /// The shape's element count overflows `usize`.
    #[error("shape {shape:?} has too many elements")]
    Overflow {
        /// The offending shape.
        shape: Vec<i64>,
    },
    /// The shape's element count differs from the data length.
    #[error("shape {shape:?} holds {expected} elements but the data has {actual}")]
    ElementCount {
        /// The shape.
        shape: Vec<i64>,
        /// Elements the shape implies.
        expected: usize,
        /// Elements present.
        actual: usize,
    },
    /// Two tensors that must share a type do not.
    #[error("data type mismatch: expected {expected}, got {actual}")]
    DtypeMismatch {
        /// Expected type.
        expected: DataType,
        /// Actual type.
        actual: DataType,
    },
    /// Tensors to concatenate have incompatible shapes.
    #[error("cannot concatenate along dim 0: shape {a:?} vs {b:?}")]
    ConcatShape {
        /// First shape.
        a: Vec<i64>,
        /// Second shape.
        b: Vec<i64>,
    },
}

/// Number of elements implied by `shape` (1 for a scalar `[]`), checked for
/// negative dimensions and overflow.
pub fn element_count(shape: &[i64]) -> Result<usize, TensorError> {
    let mut n: usize = 1;
    for &d in shape {
        let d = usize::try_from(d).map_err(|_| TensorError::NegativeDim {
            shape: shape.to_vec(),
        })?;
        n = n.checked_mul(d).ok_or_else(|| TensorError::Overflow {
            shape: shape.to_vec(),
        })?;
    }
    Ok(n)
}

/// A named, dense, row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Tensor name (the model input/output it binds to).
    pub name: String,
    /// Dimensions; all non-negative for a concrete tensor.
    pub shape: Vec<i64>,
    /// Flat contents.
    pub data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that `shape` matches the data length.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<i64>,
        data: TensorData,
    ) -> Result<Tensor, TensorError> {
        let expected = element_count(&shape)?;
        if expected != data.len() {
            return Err(TensorError::ElementCount {
                shape,
                expected,
                actual: data.len(),
            });
        }
        Ok(Tensor {
            name: name.into(),
            shape,
            data,
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DataType {
        self.data.dtype()
    }

    /// Number of elements actually held.
    pub fn element_count(&self) -> usize {
        self.data.len()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Reshapes in place; the new shape must hold the same number of elements.
    /// At most one dimension may be `-1`, which is inferred.
    pub fn reshape(&mut self, shape: &[i64]) -> Result<(), TensorError> {
        let n = self.data.len();
        let mut shape = shape.to_vec();
        let unknown: Vec<usize> = shape
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == -1)
            .map(|(i, _)| i)
            .collect();
        if unknown.len() == 1 {
            let mut known = shape.clone();
            known[unknown[0]] = 1;
            let rest = element_count(&known)?;
            if rest == 0 || n % rest != 0 {
                return Err(TensorError::ElementCount {
                    shape,
                    expected: rest,
                    actual: n,
                });
            }
            shape[unknown[0]] = i64::try_from(n / rest).map_err(|_| TensorError::Overflow {
                shape: shape.clone(),
            })?;
        }
        let expected = element_count(&shape)?;
        if expected != n {
            return Err(TensorError::ElementCount {
                shape,
                expected,
                actual: n,
            });
        }
        self.shape = shape;
        Ok(())
    }

    /// Row-major strides (in elements) for this tensor's shape.
    pub fn strides(&self) -> Vec<usize> {
        strides(&self.shape)
    }

    /// Batch size: the first dimension, or `None` for a scalar.
    pub fn batch_size(&self) -> Option<usize> {
        self.shape.first().and_then(|d| usize::try_from(*d).ok())
    }

    /// Concatenates tensors along dim 0. All must share dtype and trailing
    /// dimensions; the result takes the first tensor's name.
    pub fn concat(parts: &[&Tensor]) -> Result<Tensor, TensorError> {
        let first = parts.first().ok_or(TensorError::ElementCount {
            shape: vec![],
            expected: 1,
            actual: 0,
        })?;
        if first.shape.is_empty() {
            return Err(TensorError::ConcatShape {
                a: first.shape.clone(),
                b: first.shape.clone(),
            });
        }
        let total: usize = parts.iter().map(|t| t.data.len()).sum();
        let mut data = TensorData::with_capacity(first.dtype(), total);
        let mut rows: i64 = 0;
        for t in parts {
            if t.shape.len() != first.shape.len() || t.shape[1..] != first.shape[1..] {
                return Err(TensorError::ConcatShape {
                    a: first.shape.clone(),
                    b: t.shape.clone(),
                });
            }
            data.extend_from(&t.data)?;
            rows += t.shape[0];
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Tensor::new(first.name.clone(), shape, data)
    }

    /// Rows `start..end` along dim 0 as a new tensor.
    pub fn slice_rows(&self, start: usize, end: usize) -> Result<Tensor, TensorError> {
        let rows = self.batch_size().unwrap_or(0);
        if self.shape.is_empty() || start > end || end > rows {
            return Err(TensorError::ElementCount {
                shape: self.shape.clone(),
                expected: end,
                actual: rows,
            });
        }
        let row_len = element_count(&self.shape[1..])?;
        let mut shape = self.shape.clone();
        shape[0] = i64::try_from(end - start).map_err(|_| TensorError::Overflow {
            shape: self.shape.clone(),
        })?;
        Ok(Tensor {
            name: self.name.clone(),
            shape,
            data: self.data.slice(start * row_len, end * row_len),
        })
    }
}

/// Row-major strides (in elements) for `shape`; negative dims count as 0.
pub fn strides(shape: &[i64]) -> Vec<usize> {
    let mut out = vec![1usize; shape.len()];
    let mut acc = 1usize;
    for (i, d) in shape.iter().enumerate().rev() {
        out[i] = acc;
        acc = acc.saturating_mul(usize::try_from(*d).unwrap_or(0));
    }
    out
}

/// Converts a flat index into a multi-index for `shape` (row-major).
pub fn unravel_index(mut flat: usize, shape: &[i64]) -> Vec<usize> {
    let st = strides(shape);
    let mut out = Vec::with_capacity(shape.len());
    for s in st {
        match flat.checked_div(s) {
            Some(q) => {
                out.push(q);
                flat %= s;
            }
            None => out.push(0),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_roundtrip() {
        for d in DataType::ALL {
            assert_eq!(DataType::from_v2(d.as_str()), Some(d));
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.as_str()));
        }
        assert_eq!(DataType::from_mlflow("float32"), Some(DataType::Fp32));
        assert_eq!(DataType::from_mlflow("double"), Some(DataType::Fp64));
    }

    #[test]
    fn new_checks_count() {
        assert!(Tensor::new("x", vec![2, 2], TensorData::Fp32(vec![0.0; 4])).is_ok());
        let e = Tensor::new("x", vec![2, 3], TensorData::Fp32(vec![0.0; 4])).unwrap_err();
        assert!(matches!(
            e,
            TensorError::ElementCount {
                expected: 6,
                actual: 4,
                ..
            }
        ));
        assert!(Tensor::new("x", vec![-1, 4], TensorData::Fp32(vec![])).is_err());
        assert_eq!(element_count(&[]).unwrap(), 1);
        assert!(element_count(&[i64::MAX, i64::MAX]).is_err());
    }

    #[test]
    fn reshape_infers() {
        let mut t = Tensor::new("x", vec![6], TensorData::Int64((0..6).collect())).unwrap();
        t.reshape(&[-1, 3]).unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert!(t.reshape(&[4, -1]).is_err());
        assert!(t.reshape(&[5]).is_err());
    }

    #[test]
    fn concat_and_slice() {
        let a = Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![1.0, 2.0])).unwrap();
        let b = Tensor::new("x", vec![2, 2], TensorData::Fp32(vec![3.0, 4.0, 5.0, 6.0])).unwrap();
        let c = Tensor::concat(&[&a, &b]).unwrap();
        assert_eq!(c.shape, vec![3, 2]);
        assert_eq!(
            c.slice_rows(1, 3).unwrap(),
            Tensor {
                name: "x".into(),
                ..b.clone()
            }
        );
        let bad = Tensor::new("x", vec![1, 3], TensorData::Fp32(vec![0.0; 3])).unwrap();
        assert!(Tensor::concat(&[&a, &bad]).is_err());
        assert_eq!(unravel_index(5, &[2, 3]), vec![1, 2]);
    }
}
