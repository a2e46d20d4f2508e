//! Removes ZipMap from a model's graph before it is loaded.
//!
//! scikit-learn classifiers converted by skl2onnx end in a `ZipMap` node
//! (`ai.onnx.ml`) that turns the probability tensor `[N, classes]` into a
//! sequence of `N` maps from class label to probability. Reading that
//! sequence back through ONNX Runtime's C API costs several calls and
//! allocations per row (4–5 µs a row here: 320 µs for 64 iris rows against
//! 14 µs for the model itself), and Slipway turns it back into the same
//! `[N, classes]` tensor anyway. So a ZipMap whose output is a graph output,
//! and consumed by nothing else, is replaced by an `Identity` of its input,
//! the graph output is declared `float[N, C]`, and the class labels are read
//! from the node's attributes (`classlabels_int64s` / `classlabels_strings`)
//! and attached to that output on every run, as before.
//!
//! The model is edited at the protobuf wire level: only the graph's `node`,
//! `output` and `value_info` fields change; every other byte is copied as
//! it is. Anything unexpected (a malformed message, a ZipMap that feeds
//! another node, no default-domain opset for `Identity`) leaves the model
//! untouched: [`strip`] answers `None` and the caller loads the original.

use std::collections::HashMap;

use crate::runtime::ClassLabels;

/// A model without its output ZipMaps, and each former ZipMap output's labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Stripped {
    /// The edited `ModelProto`.
    pub bytes: Vec<u8>,
    /// Class labels per output name.
    pub labels: HashMap<String, ClassLabels>,
}

/// `ModelProto.graph`.
const MODEL_GRAPH: u32 = 7;
/// `ModelProto.opset_import`.
const MODEL_OPSET_IMPORT: u32 = 8;
/// `GraphProto.node`.
const GRAPH_NODE: u32 = 1;
/// `GraphProto.output`.
const GRAPH_OUTPUT: u32 = 12;
/// `GraphProto.value_info`.
const GRAPH_VALUE_INFO: u32 = 13;

const LEN: u8 = 2;
const VARINT: u8 = 0;

/// One field of a message: number, wire type and the raw bytes of its value
/// (for length-delimited fields, without the length prefix).
#[derive(Debug, Clone, Copy)]
struct Field<'a> {
    number: u32,
    wire: u8,
    /// The whole field as it appeared (key, length and value).
    raw: &'a [u8],
    /// The value: the payload of a length-delimited field, else the value bytes.
    value: &'a [u8],
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

/// The fields of a message, in order; `None` when it is not well formed.
fn fields(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let key = varint(buf, &mut pos)?;
        let number = u32::try_from(key >> 3).ok()?;
        let wire = (key & 7) as u8;
        let value_start;
        match wire {
            0 => {
                value_start = pos;
                varint(buf, &mut pos)?;
            }
            1 => {
                value_start = pos;
                pos = pos.checked_add(8)?;
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                value_start = pos;
                pos = pos.checked_add(len)?;
            }
            5 => {
                value_start = pos;
                pos = pos.checked_add(4)?;
            }
            _ => return None, // groups: not used by ONNX
        }
        if pos > buf.len() || number == 0 {
            return None;
        }
        out.push(Field {
            number,
            wire,
            raw: &buf[start..pos],
            value: &buf[value_start..pos],
        });
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, u64::from(number) << 3 | u64::from(LEN));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_int(out: &mut Vec<u8>, number: u32, v: u64) {
    put_varint(out, u64::from(number) << 3 | u64::from(VARINT));
    put_varint(out, v);
}

fn string(f: &Field<'_>) -> Option<String> {
    (f.wire == LEN)
        .then(|| std::str::from_utf8(f.value).ok().map(str::to_string))
        .flatten()
}

/// The parts of a `NodeProto` that matter here.
#[derive(Debug, Default)]
struct Node {
    inputs: Vec<String>,
    outputs: Vec<String>,
    name: Option<String>,
    op_type: String,
    domain: String,
    labels: Option<ClassLabels>,
}

fn node(buf: &[u8]) -> Option<Node> {
    let mut n = Node::default();
    for f in fields(buf)? {
        match f.number {
            1 => n.inputs.push(string(&f)?),
            2 => n.outputs.push(string(&f)?),
            3 => n.name = Some(string(&f)?),
            4 => n.op_type = string(&f)?,
            7 => n.domain = string(&f)?,
            5 if f.wire == LEN => {
                if let Some(l) = class_labels(f.value)? {
                    n.labels = Some(l);
                }
            }
            _ => {}
        }
    }
    Some(n)
}

/// A ZipMap's `classlabels_int64s` or `classlabels_strings` attribute;
/// `Some(None)` for another attribute.
fn class_labels(attr: &[u8]) -> Option<Option<ClassLabels>> {
    let fs = fields(attr)?;
    let name = fs.iter().find(|f| f.number == 1).and_then(string);
    match name.as_deref() {
        Some("classlabels_int64s") => {
            let mut ints = Vec::new();
            for f in fs.iter().filter(|f| f.number == 8) {
                match f.wire {
                    VARINT => {
                        let mut p = 0;
                        ints.push(varint(f.value, &mut p)? as i64);
                    }
                    LEN => {
                        // packed
                        let mut p = 0;
                        while p < f.value.len() {
                            ints.push(varint(f.value, &mut p)? as i64);
                        }
                    }
                    _ => return None,
                }
            }
            Some(Some(ClassLabels::Int64(ints)))
        }
        Some("classlabels_strings") => {
            let labels = fs
                .iter()
                .filter(|f| f.number == 9)
                .map(string)
                .collect::<Option<Vec<_>>>()?;
            Some(Some(ClassLabels::String(labels)))
        }
        _ => Some(None),
    }
}

/// The `name` of a `ValueInfoProto`.
fn value_info_name(buf: &[u8]) -> Option<String> {
    fields(buf)?.iter().find(|f| f.number == 1).and_then(string)
}

/// `NodeProto { input: [from], output: [to], name, op_type: "Identity" }`.
fn identity(from: &str, to: &str, name: Option<&str>) -> Vec<u8> {
    let mut n = Vec::new();
    put_bytes(&mut n, 1, from.as_bytes());
    put_bytes(&mut n, 2, to.as_bytes());
    if let Some(name) = name {
        put_bytes(&mut n, 3, name.as_bytes());
    }
    put_bytes(&mut n, 4, b"Identity");
    n
}

/// `ValueInfoProto { name, type: tensor(float)[N, C] }` (both dimensions
/// symbolic, as the sequence of maps was described before).
fn float_matrix(name: &str) -> Vec<u8> {
    let dim = |param: &str| {
        let mut d = Vec::new();
        put_bytes(&mut d, 2, param.as_bytes()); // Dimension.dim_param
        d
    };
    let mut shape = Vec::new();
    put_bytes(&mut shape, 1, &dim("N")); // TensorShapeProto.dim
    put_bytes(&mut shape, 1, &dim("C"));
    let mut tensor = Vec::new();
    put_int(&mut tensor, 1, 1); // elem_type FLOAT
    put_bytes(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    put_bytes(&mut ty, 1, &tensor); // TypeProto.tensor_type
    let mut vi = Vec::new();
    put_bytes(&mut vi, 1, name.as_bytes());
    put_bytes(&mut vi, 2, &ty);
    vi
}

/// Whether the model imports the default operator set (`Identity` lives there).
fn imports_default_domain(model: &[Field<'_>]) -> bool {
    model
        .iter()
        .filter(|f| f.number == MODEL_OPSET_IMPORT && f.wire == LEN)
        .any(|f| {
            fields(f.value).is_some_and(|fs| {
                let domain = fs.iter().find(|x| x.number == 1).and_then(string);
                matches!(domain.as_deref(), None | Some("") | Some("ai.onnx"))
            })
        })
}

/// The model without the ZipMaps that produce graph outputs; `None` when
/// it has none, or anything about it is unexpected.
pub fn strip(model: &[u8]) -> Option<Stripped> {
    let top = fields(model)?;
    let graph_field = top
        .iter()
        .find(|f| f.number == MODEL_GRAPH && f.wire == LEN)?;
    let graph = fields(graph_field.value)?;
    let outputs: Vec<String> = graph
        .iter()
        .filter(|f| f.number == GRAPH_OUTPUT && f.wire == LEN)
        .map(|f| value_info_name(f.value))
        .collect::<Option<_>>()?;
    let nodes: Vec<(usize, Node)> = graph
        .iter()
        .enumerate()
        .filter(|(_, f)| f.number == GRAPH_NODE && f.wire == LEN)
        .map(|(i, f)| node(f.value).map(|n| (i, n)))
        .collect::<Option<_>>()?;
    // ZipMaps writing a graph output that no other node reads
    let mut replace: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut labels = HashMap::new();
    for (i, n) in &nodes {
        if n.op_type != "ZipMap" || n.domain != "ai.onnx.ml" {
            continue;
        }
        let ([input], [output], Some(l)) = (&n.inputs[..], &n.outputs[..], &n.labels) else {
            return None;
        };
        if !outputs.contains(output) || nodes.iter().any(|(_, m)| m.inputs.contains(output)) {
            return None;
        }
        replace.insert(*i, identity(input, output, n.name.as_deref()));
        labels.insert(output.clone(), l.clone());
    }
    if labels.is_empty() || !imports_default_domain(&top) {
        return None;
    }
    let mut new_graph = Vec::with_capacity(graph_field.value.len());
    for (i, f) in graph.iter().enumerate() {
        match f.number {
            GRAPH_NODE if replace.contains_key(&i) => {
                put_bytes(&mut new_graph, GRAPH_NODE, &replace[&i]);
            }
            GRAPH_OUTPUT | GRAPH_VALUE_INFO if f.wire == LEN => {
                let name = value_info_name(f.value)?;
                if labels.contains_key(&name) {
                    if f.number == GRAPH_OUTPUT {
                        put_bytes(&mut new_graph, GRAPH_OUTPUT, &float_matrix(&name));
                    } // a stale value_info of the output is dropped
                } else {
                    new_graph.extend_from_slice(f.raw);
                }
            }
            _ => new_graph.extend_from_slice(f.raw),
        }
    }
    let mut bytes = Vec::with_capacity(model.len());
    for f in &top {
        if std::ptr::eq(f.raw, graph_field.raw) {
            put_bytes(&mut bytes, MODEL_GRAPH, &new_graph);
        } else {
            bytes.extend_from_slice(f.raw);
        }
    }
    Some(Stripped { bytes, labels })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn zipmap_node(input: &str, output: &str, labels: &[i64]) -> Vec<u8> {
        let mut attr = Vec::new();
        put_bytes(&mut attr, 1, b"classlabels_int64s");
        let mut packed = Vec::new();
        for l in labels {
            put_varint(&mut packed, *l as u64);
        }
        put_bytes(&mut attr, 8, &packed);
        put_int(&mut attr, 20, 7); // AttributeProto.type INTS
        let mut n = Vec::new();
        put_bytes(&mut n, 1, input.as_bytes());
        put_bytes(&mut n, 2, output.as_bytes());
        put_bytes(&mut n, 3, b"ZipMap");
        put_bytes(&mut n, 4, b"ZipMap");
        put_bytes(&mut n, 5, &attr);
        put_bytes(&mut n, 7, b"ai.onnx.ml");
        n
    }

    fn model(nodes: &[Vec<u8>], outputs: &[&str], default_opset: bool) -> Vec<u8> {
        let mut g = Vec::new();
        for n in nodes {
            put_bytes(&mut g, GRAPH_NODE, n);
        }
        put_bytes(&mut g, 2, b"graph"); // GraphProto.name
        for o in outputs {
            let mut vi = Vec::new();
            put_bytes(&mut vi, 1, o.as_bytes());
            put_bytes(&mut g, GRAPH_OUTPUT, &vi);
        }
        let mut m = Vec::new();
        put_int(&mut m, 1, 8); // ir_version
        put_bytes(&mut m, 2, b"skl2onnx"); // producer_name
        put_bytes(&mut m, MODEL_GRAPH, &g);
        let mut opset = Vec::new();
        if !default_opset {
            put_bytes(&mut opset, 1, b"ai.onnx.ml");
        }
        put_int(&mut opset, 2, 17);
        put_bytes(&mut m, MODEL_OPSET_IMPORT, &opset);
        m
    }

    #[test]
    fn a_zipmap_output_becomes_an_identity_with_labels() {
        let m = model(
            &[zipmap_node(
                "probabilities",
                "output_probability",
                &[0, 1, 2],
            )],
            &["output_label", "output_probability"],
            true,
        );
        let s = strip(&m).unwrap();
        assert_eq!(
            s.labels["output_probability"],
            ClassLabels::Int64(vec![0, 1, 2])
        );
        let top = fields(&s.bytes).unwrap();
        let g = top.iter().find(|f| f.number == MODEL_GRAPH).unwrap();
        let gf = fields(g.value).unwrap();
        let n = node(gf.iter().find(|f| f.number == GRAPH_NODE).unwrap().value).unwrap();
        assert_eq!(
            (n.op_type.as_str(), n.inputs, n.outputs),
            (
                "Identity",
                vec!["probabilities".to_string()],
                vec!["output_probability".to_string()]
            )
        );
        let outs: Vec<String> = gf
            .iter()
            .filter(|f| f.number == GRAPH_OUTPUT)
            .map(|f| value_info_name(f.value).unwrap())
            .collect();
        assert_eq!(outs, ["output_label", "output_probability"]);
        // the rest of the model is untouched
        assert_eq!(top.len(), 4);
        assert_eq!(top[1].raw, fields(&m).unwrap()[1].raw);
    }

    #[test]
    fn anything_unexpected_leaves_the_model_alone() {
        // no ZipMap
        assert!(strip(&model(&[], &["y"], true)).is_none());
        // no default opset for Identity
        let zm = zipmap_node("p", "out", &[0, 1]);
        assert!(strip(&model(std::slice::from_ref(&zm), &["out"], false)).is_none());
        // the ZipMap's output is not a graph output, or feeds another node
        assert!(strip(&model(std::slice::from_ref(&zm), &["other"], true)).is_none());
        let mut reader = Vec::new();
        put_bytes(&mut reader, 1, b"out");
        put_bytes(&mut reader, 2, b"z");
        put_bytes(&mut reader, 4, b"Identity");
        assert!(strip(&model(&[zm, reader], &["out", "z"], true)).is_none());
        // malformed bytes
        assert!(strip(&[0x0a, 0xff]).is_none());
        assert!(strip(&[]).is_none());
        assert!(strip(&[0x3a, 0x05, 0x0a]).is_none());
    }
}
