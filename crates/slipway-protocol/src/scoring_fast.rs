//! One-pass decoding of the commonest scoring request, a `dataframe_split`
//! of scalar cells for a single-input model, straight from the JSON text
//! into the input's typed buffer: no `serde_json::Value` tree, no vector per
//! row.
//!
//! It answers only what it can answer exactly as [`crate::mlflow`]'s general
//! parser does (same tensor, same shape, same format). Anything else — a
//! cell the input type refuses, a ragged row, `data` before `columns`, a
//! nested cell, a malformed body — returns `None`, and the general parser
//! takes the request and words any error. So accepting and rejecting stay
//! the general parser's, which the property test in
//! `tests/mlflow.rs` checks on generated payloads.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use slipway_runtime::{Signature, Tensor, TensorData};
use std::borrow::Cow;
use std::fmt;

use crate::data::{push_scalar, Scalar};
use crate::mlflow::{column_order, ScoringFormat, ScoringRequest, FORMATS};

/// The field name the general parser reports (used to compute the column
/// order; errors never leave this module).
const FIELD: &str = "dataframe_split";

/// The request decoded in one pass, or `None` for the general parser.
pub(crate) fn dataframe_split(body: &[u8], sig: &Signature) -> Option<ScoringRequest> {
    if sig.inputs.len() != 1 {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut state = State {
        sig,
        names: None,
        order: Vec::new(),
        data: None,
        rows: 0,
        row: Vec::new(),
    };
    let params = Body { state: &mut state }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    let data = state.data?;
    let spec = &sig.inputs[0];
    let rows = i64::try_from(state.rows).ok()?;
    let width = i64::try_from(state.order.len()).ok()?;
    let shape = if spec.shape.len() == 1 && width == 1 {
        vec![rows]
    } else {
        vec![rows, width]
    };
    Some(ScoringRequest {
        format: ScoringFormat::DataframeSplit,
        inputs: vec![Tensor {
            name: spec.name.clone(),
            shape,
            data,
        }],
        params,
    })
}

struct State<'s, 'de> {
    sig: &'s Signature,
    /// `columns`, once read.
    names: Option<Vec<Option<String>>>,
    /// Which cells of a row feed the input, in order.
    order: Vec<usize>,
    /// The input's buffer, once `data` was read.
    data: Option<TensorData>,
    rows: usize,
    /// The current row's cells (reused).
    row: Vec<Scalar<'de>>,
}

fn fail<E: serde::de::Error>() -> E {
    E::custom("not for the one-pass decoder")
}

/// The top-level object: `dataframe_split` once, optional `params`, other
/// keys skipped (as the general parser ignores them).
struct Body<'a, 's, 'de> {
    state: &'a mut State<'s, 'de>,
}

impl<'de> DeserializeSeed<'de> for Body<'_, '_, 'de> {
    type Value = Option<Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_, '_, 'de> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scoring request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut params = None;
        let mut seen_split = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "dataframe_split" if !seen_split => {
                    seen_split = true;
                    map.next_value_seed(Split {
                        state: &mut *self.state,
                    })?;
                }
                "params" if params.is_none() => params = Some(map.next_value::<Value>()?),
                k if k == "dataframe_split" || k == "params" || FORMATS.contains(&k) => {
                    return Err(fail());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_split {
            return Err(fail());
        }
        Ok(params)
    }
}

/// `{"columns": [...], "data": [[...], ...]}`, columns first.
struct Split<'a, 's, 'de> {
    state: &'a mut State<'s, 'de>,
}

impl<'de> DeserializeSeed<'de> for Split<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Split<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dataframe_split object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let st = self.state;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "columns" if st.names.is_none() && st.data.is_none() => {
                    let names: Vec<String> = map.next_value()?;
                    let names: Vec<Option<String>> = names.into_iter().map(Some).collect();
                    st.order = column_order(&names, FIELD, st.sig).map_err(|_| fail())?;
                    st.names = Some(names);
                }
                "data" if st.names.is_some() && st.data.is_none() => {
                    let spec = &st.sig.inputs[0];
                    st.data = Some(TensorData::with_capacity(spec.dtype, 0));
                    map.next_value_seed(Rows { state: &mut *st })?;
                }
                "columns" | "data" => return Err(fail()),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `data`: a list of rows, each a list of as many scalars as there are
/// columns.
struct Rows<'a, 's, 'de> {
    state: &'a mut State<'s, 'de>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.state;
        let width = st.names.as_ref().map_or(0, Vec::len);
        loop {
            st.row.clear();
            if seq.next_element_seed(Row { cells: &mut st.row })?.is_none() {
                return Ok(());
            }
            if st.row.len() != width {
                return Err(fail());
            }
            let data = st.data.as_mut().ok_or_else(fail)?;
            for &c in &st.order {
                let cell = std::mem::replace(&mut st.row[c], Scalar::Null);
                push_scalar(data, cell, true).map_err(|_| fail())?;
            }
            st.rows += 1;
        }
    }
}

/// One row: scalars only (a nested list or an object goes to the general
/// parser).
struct Row<'a, 'de> {
    cells: &'a mut Vec<Scalar<'de>>,
}

impl<'de> DeserializeSeed<'de> for Row<'_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Row<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row of scalars")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(cell) = seq.next_element::<Cell<'de>>()? {
            self.cells.push(cell.0);
        }
        Ok(())
    }
}

/// One scalar cell, as the general parser's `Value` would hold it.
struct Cell<'de>(Scalar<'de>);

impl<'de> serde::Deserialize<'de> for Cell<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Cell(Scalar::Null))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Cell(Scalar::Bool(v)))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Cell(Scalar::Number(v.into())))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Cell(Scalar::Number(v.into())))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // JSON numbers are finite
        serde_json::Number::from_f64(v)
            .map(|n| Cell(Scalar::Number(n)))
            .ok_or_else(fail)
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cell(Scalar::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cell(Scalar::Str(Cow::Owned(v.to_string()))))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cell(Scalar::Str(Cow::Owned(v))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mlflow::parse_json_tree;
    use proptest::prelude::*;
    use slipway_runtime::{ColumnSpec, DataType, TensorSpec};

    const NAMES: [&str; 5] = ["a", "b", "c", "d", "x"];

    fn signatures() -> Vec<Signature> {
        let one = |dtype, shape| Signature::new(vec![TensorSpec::new("x", dtype, shape)], vec![]);
        let mut named = one(DataType::Fp32, vec![-1, 3]);
        named.columns = Some(
            ["c", "a", "b"]
                .iter()
                .map(|n| ColumnSpec {
                    name: Some(n.to_string()),
                    dtype: DataType::Fp64,
                    required: true,
                })
                .collect(),
        );
        let mut unnamed = one(DataType::Fp64, vec![-1, 2]);
        unnamed.columns = Some(
            (0..2)
                .map(|_| ColumnSpec {
                    name: None,
                    dtype: DataType::Fp64,
                    required: true,
                })
                .collect(),
        );
        vec![
            named,
            unnamed,
            one(DataType::Fp32, vec![-1, -1]),
            one(DataType::Fp32, vec![-1]),
            one(DataType::Fp16, vec![-1, -1]),
            one(DataType::Int64, vec![-1, -1]),
            one(DataType::Uint8, vec![-1, -1]),
            one(DataType::Bool, vec![-1, -1]),
            one(DataType::Bytes, vec![-1, -1]),
            Signature::new(
                vec![
                    TensorSpec::new("a", DataType::Fp32, vec![-1]),
                    TensorSpec::new("b", DataType::Fp32, vec![-1]),
                ],
                vec![],
            ),
        ]
    }

    /// Cells, mostly numbers, with every kind the general parser treats
    /// differently.
    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (-1e6f64..1e6).prop_map(|x| format!("{x}")),
            4 => (-300i64..300).prop_map(|i| i.to_string()),
            1 => Just("1e39".to_string()),
            1 => Just("-70000".to_string()),
            1 => Just("18446744073709551615".to_string()),
            1 => Just("1.5e-320".to_string()),
            1 => Just("null".to_string()),
            1 => Just("true".to_string()),
            1 => prop_oneof![Just("\"NaN\""), Just("\"x\""), Just("\"1.5\""), Just("\"-inf\"")]
                .prop_map(str::to_string),
            1 => Just("[1, 2]".to_string()),
            1 => Just("{\"k\": 1}".to_string()),
        ]
    }

    /// A body: `columns` (maybe missing, reordered or after `data`), rows
    /// (maybe ragged or scalar), other keys, malformed tails.
    fn body() -> impl Strategy<Value = String> {
        (
            proptest::sample::subsequence(NAMES.to_vec(), 0..=5).prop_shuffle(),
            proptest::collection::vec(proptest::collection::vec(cell(), 0..6), 0..6),
            0u8..12,
        )
            .prop_map(|(names, rows, twist)| {
                let width = names.len();
                let rows: Vec<String> = rows
                    .into_iter()
                    .enumerate()
                    .map(|(r, mut cells)| {
                        // mostly rectangular
                        if twist != 1 || r != 1 {
                            cells.resize(width, "0.5".to_string());
                        }
                        if twist == 2 && r == 0 {
                            return cells.first().cloned().unwrap_or_else(|| "1".into());
                        }
                        format!("[{}]", cells.join(","))
                    })
                    .collect();
                let columns = format!(
                    "\"columns\": [{}]",
                    names
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let data = format!("\"data\": [{}]", rows.join(","));
                let split = match twist {
                    3 => format!("{{{data}, {columns}}}"),
                    4 => format!("{{\"index\": [0, 1], {columns}, {data}}}"),
                    5 => format!("{{{data}}}"),
                    6 => format!("{{{columns}, {data}, {columns}}}"),
                    _ => format!("{{{columns}, {data}}}"),
                };
                match twist {
                    7 => format!("{{\"params\": {{\"k\": 1}}, \"dataframe_split\": {split}}}"),
                    8 => format!("{{\"dataframe_split\": {split}, \"inputs\": [1]}}"),
                    9 => format!("{{\"dataframe_split\": {split}, \"other\": [1, {{}}]}}"),
                    10 => format!("{{\"dataframe_split\": {split}}} x"),
                    11 => format!("{{\"dataframe_split\": {split}, \"dataframe_split\": {split}}}"),
                    _ => format!("{{\"dataframe_split\": {split}}}"),
                }
            })
    }

    /// Whatever the one-pass decoder answers, the general parser answers the
    /// same; when it declines, the general parser answers alone. Run over
    /// generated bodies with a fixed seed, counting how many the decoder took
    /// (so the test cannot pass by declining everything).
    #[test]
    fn answers_only_what_the_general_parser_answers_the_same() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let sigs = signatures();
        let strategy = body();
        let (mut taken, mut pairs) = (0, 0);
        for _ in 0..4000 {
            let body = strategy.new_tree(&mut runner).unwrap().current();
            for sig in &sigs {
                pairs += 1;
                let Some(fast) = dataframe_split(body.as_bytes(), sig) else {
                    continue;
                };
                taken += 1;
                let tree = parse_json_tree(body.as_bytes(), sig);
                assert!(tree.is_ok(), "body {body} sig {:?}: {tree:?}", sig.inputs);
                // Debug, not ==: NaN cells must match too
                assert_eq!(
                    format!("{fast:?}"),
                    format!("{:?}", tree.unwrap()),
                    "body {body}"
                );
            }
        }
        eprintln!("the decoder took {taken} of {pairs} (body, signature) pairs");
        assert!(taken * 10 > pairs, "the decoder took {taken} of {pairs}");
        assert!(
            taken * 10 < pairs * 9,
            "the decoder took {taken} of {pairs}"
        );
    }

    #[test]
    fn takes_the_common_requests() {
        let sig = &signatures()[0];
        let body = br#"{"dataframe_split": {"index": [0, 1], "columns": ["a", "b", "c", "d"], "data": [[1, 2.5, 3, "x"], [4, 5, null, "y"]]}, "params": {"k": 1}}"#;
        let fast = dataframe_split(body, sig).expect("the one-pass decoder takes it");
        assert_eq!(
            format!("{fast:?}"),
            format!("{:?}", parse_json_tree(body, sig).unwrap())
        );
        assert_eq!(fast.inputs[0].shape, vec![2, 3]);
        // c, a, b in signature order; null is NaN for floats
        match &fast.inputs[0].data {
            TensorData::Fp32(v) => {
                assert_eq!(&v[..3], &[3.0, 1.0, 2.5]);
                assert!(v[3].is_nan());
                assert_eq!(&v[4..], &[4.0, 5.0]);
            }
            other => panic!("{other:?}"),
        }
    }
}
