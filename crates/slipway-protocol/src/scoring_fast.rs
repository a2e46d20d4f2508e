//! One-pass decoding of the common scoring requests straight from the JSON
//! text into the inputs' typed buffers: no `serde_json::Value` tree, no
//! vector per row, no allocation per element.
//!
//! It takes `dataframe_split` of scalar cells for a single-input model,
//! `inputs` (a nested list for a single-input model, or an object of nested
//! lists keyed by input name) and `instances` (a nested list for a
//! single-input model). It answers only what it can answer exactly as
//! [`crate::mlflow`]'s general parser does (same tensors, same shapes, same
//! format). Anything else — a cell the input type refuses, a ragged array,
//! `data` before `columns`, `dataframe_records`, a list of objects, a
//! malformed body — returns `None`, and the general parser takes the request
//! and words any error. So accepting and rejecting stay the general
//! parser's, which the property tests below check on generated payloads.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use slipway_runtime::{Signature, Tensor, TensorData, TensorSpec};
use std::borrow::Cow;
use std::fmt;

use crate::data::{push_scalar, Scalar};
use crate::mlflow::{column_order, ScoringFormat, ScoringRequest, FORMATS};

/// The field name the general parser reports (used to compute the column
/// order; errors never leave this module).
const FIELD: &str = "dataframe_split";

/// The request decoded in one pass, or `None` for the general parser.
pub(crate) fn decode(body: &[u8], sig: &Signature) -> Option<ScoringRequest> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut out = None;
    let params = Body { sig, out: &mut out }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    let (format, inputs) = out?;
    Some(ScoringRequest {
        format,
        inputs,
        params,
    })
}

fn fail<E: serde::de::Error>() -> E {
    E::custom("not for the one-pass decoder")
}

type Decoded = (ScoringFormat, Vec<Tensor>);

/// The top-level object: one request form, optional `params`, other keys
/// skipped (as the general parser ignores them).
struct Body<'a, 's> {
    sig: &'s Signature,
    out: &'a mut Option<Decoded>,
}

impl<'de> DeserializeSeed<'de> for Body<'_, '_> {
    type Value = Option<Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_, '_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scoring request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let sig = self.sig;
        let mut params = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let key = key.as_ref();
            if FORMATS.contains(&key) && self.out.is_some() {
                // two forms, or one twice: the general parser words it
                return Err(fail());
            }
            match key {
                "dataframe_split" => {
                    let [spec] = sig.inputs.as_slice() else {
                        return Err(fail());
                    };
                    let mut split = SplitState {
                        sig,
                        names: None,
                        order: Vec::new(),
                        data: None,
                        rows: 0,
                        row: Vec::new(),
                    };
                    map.next_value_seed(Split { state: &mut split })?;
                    *self.out = Some((ScoringFormat::DataframeSplit, vec![split.finish(spec)?]));
                }
                "inputs" => {
                    let inputs = map.next_value_seed(Inputs { sig })?;
                    *self.out = Some((ScoringFormat::Inputs, inputs));
                }
                "instances" => {
                    let [spec] = sig.inputs.as_slice() else {
                        return Err(fail());
                    };
                    let tensor = map.next_value_seed(ListOf(spec))?;
                    *self.out = Some((ScoringFormat::Instances, vec![tensor]));
                }
                "params" if params.is_none() => params = Some(map.next_value::<Value>()?),
                "params" => return Err(fail()),
                k if FORMATS.contains(&k) => return Err(fail()),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(params)
    }
}

// ------------------------------------------------------------------ dataframe_split

struct SplitState<'s, 'de> {
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

impl SplitState<'_, '_> {
    fn finish<E: serde::de::Error>(self, spec: &TensorSpec) -> Result<Tensor, E> {
        let data = self.data.ok_or_else(fail)?;
        let rows = i64::try_from(self.rows).map_err(|_| fail())?;
        let width = i64::try_from(self.order.len()).map_err(|_| fail())?;
        let shape = if spec.shape.len() == 1 && width == 1 {
            vec![rows]
        } else {
            vec![rows, width]
        };
        Ok(Tensor {
            name: spec.name.clone(),
            shape,
            data,
        })
    }
}

/// `{"columns": [...], "data": [[...], ...]}`, columns first.
struct Split<'a, 's, 'de> {
    state: &'a mut SplitState<'s, 'de>,
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
    state: &'a mut SplitState<'s, 'de>,
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

// ------------------------------------------------------------------ inputs, instances

/// `inputs`: a nested list for the single input, or an object of nested
/// lists keyed by input name (the general parser's order: by name).
struct Inputs<'s> {
    sig: &'s Signature,
}

impl<'de> DeserializeSeed<'de> for Inputs<'_> {
    type Value = Vec<Tensor>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Inputs<'_> {
    type Value = Vec<Tensor>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list or an object of lists")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let [spec] = self.sig.inputs.as_slice() else {
            return Err(fail());
        };
        Ok(vec![ListOf(spec).visit_seq(seq)?])
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // every key an input: not the columnar form, whatever the columns
        let mut out: Vec<Tensor> = Vec::with_capacity(self.sig.inputs.len());
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let spec = self.sig.input(&key).ok_or_else(fail)?;
            if out.iter().any(|t| t.name == spec.name) {
                return Err(fail());
            }
            let mut nested = Nested::new(spec);
            map.next_value_seed(Level {
                nested: &mut nested,
                depth: 0,
            })?;
            out.push(nested.finish(spec)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// A nested list (never a lone scalar) for one input.
struct ListOf<'s>(&'s TensorSpec);

impl<'de> DeserializeSeed<'de> for ListOf<'_> {
    type Value = Tensor;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Tensor, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListOf<'_> {
    type Value = Tensor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Tensor, A::Error> {
        let mut nested = Nested::new(self.0);
        Level {
            nested: &mut nested,
            depth: 0,
        }
        .visit_seq(seq)?;
        nested.finish(self.0)
    }
}

/// A nested list being read into one buffer. The general parser takes the
/// shape from the first element at each depth and requires every sibling to
/// have the same shape; read depth-first, that is: every list at depth `d`
/// has the length of the first list at depth `d` to close, and every leaf
/// sits at the depth of the first leaf (or, when the first list at some
/// depth is empty, nothing lies below it).
struct Nested {
    data: TensorData,
    /// Length of the lists at each depth, once the first one closed.
    lens: Vec<Option<usize>>,
    /// Depth of the leaves, once known.
    rank: Option<usize>,
}

impl Nested {
    fn new(spec: &TensorSpec) -> Self {
        Nested {
            data: TensorData::with_capacity(spec.dtype, 0),
            lens: Vec::new(),
            rank: None,
        }
    }

    fn finish<E: serde::de::Error>(self, spec: &TensorSpec) -> Result<Tensor, E> {
        let rank = self.rank.ok_or_else(fail)?;
        let shape = (0..rank)
            .map(|d| {
                self.lens
                    .get(d)
                    .copied()
                    .flatten()
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(fail)
            })
            .collect::<Result<Vec<i64>, E>>()?;
        Ok(Tensor {
            name: spec.name.clone(),
            shape,
            data: self.data,
        })
    }

    /// A leaf at `depth`.
    fn leaf<E: serde::de::Error>(&mut self, depth: usize, v: Scalar<'_>) -> Result<(), E> {
        match self.rank {
            None => self.rank = Some(depth),
            Some(r) if r != depth => return Err(fail()),
            Some(_) => {}
        }
        push_scalar(&mut self.data, v, true).map_err(|_| fail())
    }
}

/// One value of a nested list at `depth`.
struct Level<'a> {
    nested: &'a mut Nested,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a nested list of scalars")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (nested, depth) = (self.nested, self.depth);
        if nested.rank.is_some_and(|r| depth >= r) {
            return Err(fail());
        }
        let mut n = 0usize;
        while seq
            .next_element_seed(Level {
                nested: &mut *nested,
                depth: depth + 1,
            })?
            .is_some()
        {
            n += 1;
        }
        if n == 0 && nested.rank.is_none() {
            nested.rank = Some(depth + 1);
        }
        if nested.lens.len() <= depth {
            nested.lens.resize(depth + 1, None);
        }
        match nested.lens[depth] {
            None => nested.lens[depth] = Some(n),
            Some(len) if len != n => return Err(fail()),
            Some(_) => {}
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(fail())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.nested.leaf(self.depth, Scalar::Null)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.nested.leaf(self.depth, Scalar::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.nested.leaf(self.depth, Scalar::Number(v.into()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.nested.leaf(self.depth, Scalar::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        let n = serde_json::Number::from_f64(v).ok_or_else(fail)?;
        self.nested.leaf(self.depth, Scalar::Number(n))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.nested.leaf(self.depth, Scalar::Str(Cow::Borrowed(v)))
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
                let Some(fast) = decode(body.as_bytes(), sig) else {
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

    /// A nested list of `dims`, cells from `cells`, with one twist at the
    /// `at`-th list (depth-first) or leaf: 1 drops a list's last element, 2
    /// makes a leaf a list, 3 makes a list a scalar, 4 empties a list, 5
    /// makes a leaf an object.
    fn nested_text(dims: &[usize], cells: &[String], twist: u8, at: usize) -> String {
        fn walk(
            dims: &[usize],
            cells: &[String],
            twist: u8,
            at: usize,
            lists: &mut usize,
            leaves: &mut usize,
        ) -> String {
            let Some((&n, rest)) = dims.split_first() else {
                let i = *leaves;
                *leaves += 1;
                return match twist {
                    2 if i == at => "[0.5]".to_string(),
                    5 if i == at => "{\"k\": 1}".to_string(),
                    _ => cells[i % cells.len()].clone(),
                };
            };
            let i = *lists;
            *lists += 1;
            match twist {
                3 if i == at => return "1".to_string(),
                4 if i == at => return "[]".to_string(),
                _ => {}
            }
            let len = if twist == 1 && i == at {
                n.saturating_sub(1)
            } else {
                n
            };
            let items: Vec<String> = (0..len)
                .map(|_| walk(rest, cells, twist, at, lists, leaves))
                .collect();
            format!("[{}]", items.join(","))
        }
        walk(dims, cells, twist, at, &mut 0, &mut 0)
    }

    /// `inputs` / `instances` bodies: nested lists (mostly rectangular),
    /// objects keyed by input names (unknown, repeated), other forms beside
    /// them, malformed tails.
    fn tensor_body() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(0usize..4, 0..4),
            proptest::collection::vec(cell(), 1..8),
            0u8..10,
            0usize..6,
            0u8..12,
        )
            .prop_map(|(dims, cells, twist, at, wrap)| {
                let x = nested_text(&dims, &cells, twist, at);
                let y = nested_text(&dims, &cells, 0, 0);
                match wrap {
                    0 | 1 => format!("{{\"inputs\": {x}}}"),
                    2 | 3 => format!("{{\"instances\": {x}, \"params\": {{\"k\": [1]}}}}"),
                    4 => format!("{{\"inputs\": {{\"x\": {x}}}}}"),
                    5 => format!("{{\"inputs\": {{\"b\": {x}, \"a\": {y}}}}}"),
                    6 => format!("{{\"inputs\": {{\"a\": {x}, \"nope\": {y}}}}}"),
                    7 => format!("{{\"inputs\": {{\"x\": {x}, \"x\": {y}}}}}"),
                    8 => format!("{{\"instances\": [{{\"x\": {x}}}]}}"),
                    9 => format!("{{\"instances\": {x}, \"inputs\": {y}}}"),
                    10 => format!("{{\"other\": 1, \"inputs\": {x}}} x"),
                    _ => format!("{{\"inputs\": {x}, \"params\": 1, \"params\": 2}}"),
                }
            })
    }

    /// As above, for `inputs` and `instances`.
    #[test]
    fn nested_lists_answer_only_what_the_general_parser_answers_the_same() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]),
        );
        let sigs = signatures();
        let strategy = tensor_body();
        let (mut taken, mut pairs, mut refused) = (0, 0, 0);
        for _ in 0..4000 {
            let body = strategy.new_tree(&mut runner).unwrap().current();
            for sig in &sigs {
                pairs += 1;
                let tree = parse_json_tree(body.as_bytes(), sig);
                let Some(fast) = decode(body.as_bytes(), sig) else {
                    refused += usize::from(tree.is_err());
                    continue;
                };
                taken += 1;
                assert!(tree.is_ok(), "body {body} sig {:?}: {tree:?}", sig.inputs);
                assert_eq!(
                    format!("{fast:?}"),
                    format!("{:?}", tree.unwrap()),
                    "body {body}"
                );
            }
        }
        eprintln!(
            "the decoder took {taken} of {pairs} pairs; the general parser refused {refused}"
        );
        assert!(taken * 10 > pairs, "the decoder took {taken} of {pairs}");
        assert!(
            refused * 10 > pairs,
            "only {refused} of {pairs} were refused"
        );
    }

    #[test]
    fn takes_the_common_requests() {
        let sig = &signatures()[0];
        let body = br#"{"dataframe_split": {"index": [0, 1], "columns": ["a", "b", "c", "d"], "data": [[1, 2.5, 3, "x"], [4, 5, null, "y"]]}, "params": {"k": 1}}"#;
        let fast = decode(body, sig).expect("the one-pass decoder takes it");
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
