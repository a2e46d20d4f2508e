//! One-pass decoding of the common scoring requests straight from the JSON
//! text into the inputs' typed buffers: no `serde_json::Value` tree, no
//! vector per row, no allocation per element.
//!
//! It takes `dataframe_split` of scalar cells for a single-input model,
//! `dataframe_records` of scalar cells for a single-input model whose
//! signature names its columns, `inputs` (a nested list for a single-input
//! model, or an object of nested lists keyed by input name), `instances` (a
//! nested list for a single-input model) and `text/csv` of unquoted fields
//! ([`decode_csv`]). It answers only what it can answer exactly as
//! [`crate::mlflow`]'s general parser does (same tensors, same shapes, same
//! format). Anything else — a cell the input type refuses, a ragged array,
//! `data` before `columns`, a record missing a column, a list of objects for
//! `instances`, a quoted CSV field, a malformed body — returns `None`, and
//! the general parser takes the request and words any error. So accepting and rejecting stay the general
//! parser's, which the property tests below check on generated payloads.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use slipway_runtime::{DataType, Signature, Tensor, TensorData, TensorSpec};
use std::borrow::Cow;
use std::fmt;

use crate::data::{push_f64_fast, push_i64_fast, push_scalar, push_u64_fast, Scalar};
use crate::mlflow::{column_order, frame_shape, ScoringFormat, ScoringRequest, FORMATS};

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
                "dataframe_records" => {
                    let ([spec], Some(names)) = (sig.inputs.as_slice(), named_columns(sig)) else {
                        return Err(fail());
                    };
                    let tensor = map.next_value_seed(Records { spec, names })?;
                    *self.out = Some((ScoringFormat::DataframeRecords, vec![tensor]));
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
        let shape = frame_shape(spec, rows, width);
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

// ------------------------------------------------------------------ dataframe_records

/// The signature's column names when it names every column (the only case
/// where the general parser's column order does not depend on the order of
/// the records' keys).
fn named_columns(sig: &Signature) -> Option<Vec<&str>> {
    let cols = sig.columns.as_ref().filter(|c| !c.is_empty())?;
    cols.iter().map(|c| c.name.as_deref()).collect()
}

/// `dataframe_records` for a single-input model whose signature names its
/// columns: a non-empty list of objects, each giving every column one
/// scalar. Other keys are skipped, as the general parser's unused columns
/// are; a missing or repeated column goes to the general parser.
struct Records<'s> {
    spec: &'s TensorSpec,
    names: Vec<&'s str>,
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = Tensor;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Tensor, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = Tensor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tensor, A::Error> {
        let mut data = TensorData::with_capacity(self.spec.dtype, 0);
        let mut row: Vec<Option<Scalar<'de>>> = self.names.iter().map(|_| None).collect();
        let mut rows = 0usize;
        while seq
            .next_element_seed(Record {
                names: &self.names,
                row: &mut row,
            })?
            .is_some()
        {
            for slot in &mut row {
                let cell = slot.take().ok_or_else(fail)?;
                push_scalar(&mut data, cell, true).map_err(|_| fail())?;
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(fail());
        }
        let rows = i64::try_from(rows).map_err(|_| fail())?;
        let width = i64::try_from(self.names.len()).map_err(|_| fail())?;
        let shape = frame_shape(self.spec, rows, width);
        Ok(Tensor {
            name: self.spec.name.clone(),
            shape,
            data,
        })
    }
}

/// One record: its columns' cells into `row` (by the signature's order).
struct Record<'a, 's, 'de> {
    names: &'a [&'s str],
    row: &'a mut [Option<Scalar<'de>>],
}

impl<'de> DeserializeSeed<'de> for Record<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.names.iter().position(|n| *n == key.as_ref()) {
                Some(c) if self.row[c].is_none() => {
                    self.row[c] = Some(map.next_value::<Cell<'de>>()?.0);
                }
                Some(_) => return Err(fail()),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
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

    /// Checks that a leaf may sit at `depth` (the depth of every leaf).
    fn leaf_at<E: serde::de::Error>(&mut self, depth: usize) -> Result<(), E> {
        match self.rank {
            None => self.rank = Some(depth),
            Some(r) if r != depth => return Err(fail()),
            Some(_) => {}
        }
        Ok(())
    }

    /// A leaf at `depth`.
    fn leaf<E: serde::de::Error>(&mut self, depth: usize, v: Scalar<'_>) -> Result<(), E> {
        self.leaf_at(depth)?;
        push_scalar(&mut self.data, v, true).map_err(|_| fail())
    }

    /// A number at `depth`: pushed by `fast` when the buffer's type takes
    /// it as it is, else by [`Nested::leaf`].
    fn number<E: serde::de::Error>(
        &mut self,
        depth: usize,
        fast: impl FnOnce(&mut TensorData) -> bool,
        slow: impl FnOnce() -> Result<serde_json::Number, E>,
    ) -> Result<(), E> {
        self.leaf_at(depth)?;
        if fast(&mut self.data) {
            return Ok(());
        }
        self.leaf(depth, Scalar::Number(slow()?))
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
        self.nested
            .number(self.depth, |d| push_i64_fast(d, v), || Ok(v.into()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.nested
            .number(self.depth, |d| push_u64_fast(d, v), || Ok(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.nested.number(
            self.depth,
            |d| push_f64_fast(d, v),
            || serde_json::Number::from_f64(v).ok_or_else(fail),
        )
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.nested.leaf(self.depth, Scalar::Str(Cow::Borrowed(v)))
    }
}

// ------------------------------------------------------------------ CSV

/// A `text/csv` body decoded in one pass, or `None` for the general parser
/// ([`crate::mlflow::parse_csv_tree`]). It takes a header row and data rows
/// of unquoted fields (LF or CRLF, blank lines skipped) for a single-input
/// model whose type is not BYTES; quoted fields, ragged rows, a cell the
/// type refuses and every other case go to the general parser.
pub(crate) fn decode_csv(body: &[u8], sig: &Signature) -> Option<ScoringRequest> {
    let [spec] = sig.inputs.as_slice() else {
        return None;
    };
    if spec.dtype == DataType::Bytes || body.contains(&b'"') {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    if matches!(text.trim_start().chars().next(), Some('{' | '[')) {
        return None;
    }
    // the general parser's records: a line's CR before LF is dropped (a
    // last line without LF keeps it); empty lines are skipped
    let mut segments = text.split('\n').peekable();
    let mut lines = std::iter::from_fn(move || loop {
        let seg = segments.next()?;
        let line = match segments.peek() {
            Some(_) => seg.strip_suffix('\r').unwrap_or(seg),
            None => seg,
        };
        if !line.is_empty() {
            return Some(line);
        }
    });
    let mut header: Vec<Option<String>> = lines
        .next()?
        .split(',')
        .map(|n| Some(n.to_string()))
        .collect();
    let drop_index = header.first().is_some_and(|n| n.as_deref() == Some(""));
    if drop_index {
        header.remove(0);
    }
    let order = column_order(&header, "csv", sig).ok()?;
    let mut data = TensorData::with_capacity(spec.dtype, 0);
    let mut cells: Vec<&str> = Vec::with_capacity(header.len() + 1);
    let mut rows = 0usize;
    for line in lines {
        cells.clear();
        cells.extend(line.split(','));
        let row = if drop_index { &cells[1..] } else { &cells[..] };
        if row.len() != header.len() {
            return None;
        }
        for &c in &order {
            push_scalar(&mut data, text_cell(row[c], spec.dtype)?, true).ok()?;
        }
        rows += 1;
    }
    if rows == 0 {
        return None;
    }
    let rows = i64::try_from(rows).ok()?;
    let width = i64::try_from(order.len()).ok()?;
    let shape = frame_shape(spec, rows, width);
    Some(ScoringRequest {
        format: ScoringFormat::Csv,
        inputs: vec![Tensor {
            name: spec.name.clone(),
            shape,
            data,
        }],
        params: None,
    })
}

/// A CSV cell as the general parser reads it for a non-BYTES input: blank
/// is null; for BOOL `true`/`1`/`false`/`0` (any case); otherwise an
/// integer, a finite float, or the trimmed text. `None`: a BOOL cell that is
/// none of those (the general parser's error).
fn text_cell(cell: &str, dtype: DataType) -> Option<Scalar<'_>> {
    let t = cell.trim();
    Some(if t.is_empty() {
        Scalar::Null
    } else if dtype == DataType::Bool {
        match t.to_ascii_lowercase().as_str() {
            "true" | "1" => Scalar::Bool(true),
            "false" | "0" => Scalar::Bool(false),
            _ => return None,
        }
    } else if let Ok(i) = t.parse::<i64>() {
        Scalar::Number(i.into())
    } else if let Ok(u) = t.parse::<u64>() {
        Scalar::Number(u.into())
    } else if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        Scalar::Number(n)
    } else {
        Scalar::Str(Cow::Borrowed(t))
    })
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
        // one column named as the input: the tensor-frame case
        let mut lone = one(DataType::Fp64, vec![-1]);
        lone.columns = Some(vec![ColumnSpec {
            name: Some("x".to_string()),
            dtype: DataType::Fp64,
            required: true,
        }]);
        vec![
            named,
            lone,
            unnamed,
            one(DataType::Fp32, vec![-1, -1]),
            one(DataType::Fp32, vec![-1]),
            one(DataType::Fp16, vec![-1, -1]),
            one(DataType::Int64, vec![-1, -1]),
            one(DataType::Int32, vec![-1, -1]),
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
            // the edges of the types' ranges (the numbers' fast path)
            1 => prop_oneof![
                Just("3.4028234663852886e38"),
                Just("-3.4028235677973366e38"),
                Just("2147483648"),
                Just("-2147483649"),
                Just("9223372036854775808"),
                Just("-9223372036854775808"),
            ]
            .prop_map(str::to_string),
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
        let (taken, pairs, _) = compare(body(), 7, |body, sig| {
            (decode(body, sig), parse_json_tree(body, sig))
        });
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
        let (taken, pairs, refused) = compare(tensor_body(), 9, |body, sig| {
            (decode(body, sig), parse_json_tree(body, sig))
        });
        assert!(taken * 10 > pairs, "the decoder took {taken} of {pairs}");
        assert!(
            refused * 10 > pairs,
            "only {refused} of {pairs} were refused"
        );
    }

    /// `dataframe_records` bodies: records keyed by column names (reordered,
    /// missing, repeated, extra), non-object records, other forms beside
    /// them, malformed tails.
    fn records_body() -> impl Strategy<Value = String> {
        let record = (
            proptest::sample::subsequence(NAMES.to_vec(), 0..=5).prop_shuffle(),
            proptest::collection::vec(cell(), 5),
            0u8..8,
        )
            .prop_map(|(names, cells, twist)| {
                let mut fields: Vec<String> = names
                    .iter()
                    .zip(&cells)
                    .map(|(n, c)| format!("\"{n}\": {c}"))
                    .collect();
                match twist {
                    0 => fields.push("\"a\": 1".to_string()),
                    1 => fields.push("\"z\": [1, {\"k\": null}]".to_string()),
                    2 => return "[1, 2, 3]".to_string(),
                    _ => {}
                }
                format!("{{{}}}", fields.join(", "))
            });
        let number = prop_oneof![
            (-1e6f64..1e6).prop_map(|x| format!("{x}")),
            (-300i64..300).prop_map(|i| i.to_string()),
        ];
        let full = proptest::collection::vec(number, 3)
            .prop_map(|c| format!("{{\"a\": {}, \"b\": {}, \"c\": {}}}", c[0], c[1], c[2]));
        (
            proptest::collection::vec(prop_oneof![3 => full, 1 => record], 0..6),
            0u8..8,
        )
            .prop_map(|(records, wrap)| {
                let list = format!("[{}]", records.join(", "));
                match wrap {
                    0 => format!("{{\"dataframe_records\": {list}, \"params\": {{\"k\": 1}}}}"),
                    1 => format!("{{\"dataframe_records\": {list}, \"inputs\": [1]}}"),
                    2 => format!("{{\"dataframe_records\": {list}}} x"),
                    3 => r#"{"dataframe_records": {"a": [1]}}"#.to_string(),
                    _ => format!("{{\"dataframe_records\": {list}}}"),
                }
            })
    }

    /// As above, for `dataframe_records`.
    #[test]
    fn records_answer_only_what_the_general_parser_answers_the_same() {
        let (taken, pairs, refused) = compare(records_body(), 11, |body, sig| {
            (decode(body, sig), parse_json_tree(body, sig))
        });
        // two of the eleven signatures name their columns
        assert!(taken * 100 > pairs, "the decoder took {taken} of {pairs}");
        assert!(
            refused * 10 > pairs,
            "only {refused} of {pairs} were refused"
        );
    }

    /// CSV bodies: a header (maybe with pandas' unnamed index column), rows
    /// of unquoted cells of every kind the general parser reads differently
    /// (blank, padded, words, non-finite), quoted fields, ragged rows, CRLF,
    /// blank lines, JSON sent as CSV.
    fn csv_body() -> impl Strategy<Value = String> {
        let csv_cell = prop_oneof![
            6 => (-1e6f64..1e6).prop_map(|x| format!("{x}")),
            4 => (-300i64..300).prop_map(|i| i.to_string()),
            1 => prop_oneof![
                Just(""), Just(" 2.5 "), Just("true"), Just("FALSE"), Just("1"), Just("0"),
                Just("x"), Just("inf"), Just("NaN"), Just("1e400"), Just("\"1,5\""),
                Just("18446744073709551615"), Just("99999999999999999999"), Just("1\r"),
            ]
            .prop_map(str::to_string),
        ];
        (
            proptest::sample::subsequence(NAMES.to_vec(), 1..=5).prop_shuffle(),
            proptest::collection::vec(proptest::collection::vec(csv_cell, 6), 0..5),
            any::<bool>(),
            0u8..10,
        )
            .prop_map(|(names, rows, index, twist)| {
                let width = names.len();
                let nl = if twist == 1 { "\r\n" } else { "\n" };
                let mut lines = vec![format!(
                    "{}{}",
                    if index { "," } else { "" },
                    names.join(",")
                )];
                for (r, cells) in rows.iter().enumerate() {
                    let n = if twist == 2 && r == 1 {
                        width + 1
                    } else {
                        width
                    };
                    let cells = cells.iter().cycle().take(n).cloned().collect::<Vec<_>>();
                    let lead = if index {
                        format!("{r},")
                    } else {
                        String::new()
                    };
                    lines.push(format!("{lead}{}", cells.join(",")));
                    if twist == 3 && r == 0 {
                        lines.push(String::new());
                    }
                }
                let text = lines.join(nl);
                match twist {
                    4 => format!("{text}{nl}"),
                    5 => format!("{nl}{text}"),
                    6 => "[[1, 2]]".to_string(),
                    _ => text,
                }
            })
    }

    /// As above, for CSV.
    #[test]
    fn csv_answers_only_what_the_general_parser_answers_the_same() {
        use crate::mlflow::parse_csv_tree;
        let (taken, pairs, refused) = compare(csv_body(), 13, |body, sig| {
            (decode_csv(body, sig), parse_csv_tree(body, sig))
        });
        assert!(taken * 20 > pairs, "the decoder took {taken} of {pairs}");
        assert!(
            refused * 10 > pairs,
            "only {refused} of {pairs} were refused"
        );
    }

    /// Runs `decoders` (one-pass, general) over 4,000 generated bodies and
    /// every test signature: whatever the one-pass decoder answers, the
    /// general parser answers the same. Returns how many pairs the one-pass
    /// decoder took, how many there were, how many the general parser
    /// refused.
    fn compare(
        strategy: impl Strategy<Value = String>,
        seed: u8,
        decoders: impl Fn(
            &[u8],
            &Signature,
        ) -> (
            Option<ScoringRequest>,
            Result<ScoringRequest, crate::ProtocolError>,
        ),
    ) -> (usize, usize, usize) {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
        );
        let sigs = signatures();
        let (mut taken, mut pairs, mut refused) = (0, 0, 0);
        for _ in 0..4000 {
            let body = strategy.new_tree(&mut runner).unwrap().current();
            for sig in &sigs {
                pairs += 1;
                let (fast, tree) = decoders(body.as_bytes(), sig);
                let Some(fast) = fast else {
                    refused += usize::from(tree.is_err());
                    continue;
                };
                taken += 1;
                assert!(tree.is_ok(), "body {body:?} sig {:?}: {tree:?}", sig.inputs);
                // Debug, not ==: NaN cells must match too
                assert_eq!(
                    format!("{fast:?}"),
                    format!("{:?}", tree.unwrap()),
                    "body {body:?}"
                );
            }
        }
        eprintln!(
            "the decoder took {taken} of {pairs} pairs; the general parser refused {refused}"
        );
        (taken, pairs, refused)
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
