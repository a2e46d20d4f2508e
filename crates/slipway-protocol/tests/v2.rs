//! Open Inference Protocol codec tests: fixed expectations, bodies produced by
//! the real tritonclient.http (tests/fixtures, see make_fixtures.py), and
//! property tests of the binary codec.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};
use slipway_protocol::v2::*;
use slipway_protocol::ProtocolError;
use slipway_runtime::{ClassLabels, DataType, ModelOutput, Tensor, TensorData};

fn fixture(name: &str) -> (Vec<u8>, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let body = std::fs::read(dir.join(format!("{name}.body"))).unwrap();
    let doc =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    (body, doc)
}

fn expected_data(dtype: &str, data: &Value) -> TensorData {
    let a = data.as_array().unwrap();
    match dtype {
        "FP32" => TensorData::Fp32(a.iter().map(|x| x.as_f64().unwrap() as f32).collect()),
        "FP16" => TensorData::Fp16(
            a.iter()
                .map(|x| half::f16::from_f64(x.as_f64().unwrap()))
                .collect(),
        ),
        "INT64" => TensorData::Int64(a.iter().map(|x| x.as_i64().unwrap()).collect()),
        "UINT16" => TensorData::Uint16(a.iter().map(|x| x.as_u64().unwrap() as u16).collect()),
        "BOOL" => TensorData::Bool(a.iter().map(|x| x.as_bool().unwrap()).collect()),
        // latin-1 decoded bytes: one char per byte
        "BYTES" => TensorData::Bytes(
            a.iter()
                .map(|x| x.as_str().unwrap().chars().map(|c| c as u8).collect())
                .collect(),
        ),
        other => panic!("{other}"),
    }
}

fn check_fixture(name: &str) -> DecodedRequest {
    let (body, doc) = fixture(name);
    let header = doc["header_length"].as_u64().map(|n| n as usize);
    let req = decode_request(&body, header).unwrap();
    assert_eq!(req.id.as_deref(), Some("req-1"));
    let want = doc["inputs"].as_object().unwrap();
    assert_eq!(req.inputs.len(), want.len());
    for t in &req.inputs {
        let w = &want[&t.name];
        let shape: Vec<i64> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_i64().unwrap())
            .collect();
        assert_eq!(t.shape, shape, "{}", t.name);
        assert_eq!(t.dtype().as_str(), w["datatype"].as_str().unwrap());
        assert_eq!(
            t.data,
            expected_data(w["datatype"].as_str().unwrap(), &w["data"]),
            "{}",
            t.name
        );
    }
    req
}

#[test]
fn tritonclient_binary_request() {
    let req = check_fixture("triton_binary");
    assert!(!req.wants_binary("output_label"));
    assert!(req.wants_binary("output_probability"));
    let outs = req.outputs.as_ref().unwrap();
    assert_eq!(outs[1].binary_data, Some(true));
}

#[test]
fn tritonclient_json_request() {
    let req = check_fixture("triton_json");
    // tritonclient asks for binary outputs at request level when none are listed
    assert!(req.wants_binary("anything"));
    assert!(req.outputs.is_none());
}

fn binary_fixture_parts() -> (Vec<u8>, usize) {
    let (body, doc) = fixture("triton_binary");
    (body, doc["header_length"].as_u64().unwrap() as usize)
}

#[test]
fn binary_errors() {
    let (body, n) = binary_fixture_parts();
    // truncated payload
    let e = decode_request(&body[..body.len() - 3], Some(n)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs[5].parameters.binary_data_size: binary_data_size is 6 bytes but only 3 bytes of binary data remain"
    );
    // trailing bytes
    let mut long = body.clone();
    long.extend_from_slice(&[0, 0]);
    assert_eq!(
        decode_request(&long, Some(n)).unwrap_err(),
        ProtocolError::TrailingBytes { count: 2 }
    );
    // header longer than the body
    assert!(matches!(
        decode_request(&body, Some(body.len() + 1)),
        Err(ProtocolError::HeaderLength { .. })
    ));
    // header length cutting the JSON
    assert!(matches!(
        decode_request(&body, Some(n - 1)),
        Err(ProtocolError::Json { .. })
    ));
    // binary_data_size without the header
    let e = decode_request(&body[..n], None).unwrap_err();
    assert!(
        e.to_string()
            .contains("no Inference-Header-Content-Length header"),
        "{e}"
    );
    // binary_data_size disagreeing with shape x dtype
    let json = String::from_utf8(body[..n].to_vec())
        .unwrap()
        .replace("\"binary_data_size\":32", "\"binary_data_size\":28");
    let mut b = json.clone().into_bytes();
    b.extend_from_slice(&body[n..]);
    let e = decode_request(&b, Some(json.len())).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs[0].parameters.binary_data_size: binary_data_size is 28 bytes but shape [2, 4] of FP32 needs 32 bytes"
    );
    assert_eq!(e.http_status(), 400);
}

#[test]
fn json_request_errors() {
    let dec = |v: Value| decode_request(v.to_string().as_bytes(), None);
    let e = dec(
        json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs[0].data: shape [2, 2] holds 4 elements but 3 were given"
    );
    let e =
        dec(json!({"inputs": [{"name": "x", "shape": [2], "datatype": "FP33", "data": [1, 2]}]}))
            .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("inputs[0].datatype: unknown datatype 'FP33'"),
        "{e}"
    );
    let e = dec(
        json!({"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": ["a", 2]}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs[0].data[1]: expected a string for BYTES, got a number"
    );
    let e = dec(json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BOOL", "data": [1]}]}))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs[0].data[0]: expected true or false for BOOL, got a number"
    );
    let e = dec(json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs[0].data (or parameters.binary_data_size) is required"
    );
    let e = dec(json!({"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": []}]}))
        .unwrap_err();
    assert!(e.to_string().starts_with("inputs[0].shape:"), "{e}");
    let e = dec(json!({"inputs": [
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}))
    .unwrap_err();
    assert!(e.to_string().contains("given twice"), "{e}");
    let e = dec(json!({"input": []})).unwrap_err();
    assert!(matches!(e, ProtocolError::Json { .. }), "{e}");
    assert!(decode_request(b"{not json", None).is_err());
    // nested data, NaN as a string
    let r = dec(json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, "NaN"], [3, 4.5]]}]})).unwrap();
    let TensorData::Fp64(v) = &r.inputs[0].data else {
        panic!()
    };
    assert!(v[1].is_nan() && v[3] == 4.5);
}

fn zipmap_outputs() -> Vec<ModelOutput> {
    vec![
        ModelOutput::plain(
            Tensor::new("output_label", vec![2], TensorData::Int64(vec![0, 2])).unwrap(),
        ),
        ModelOutput {
            tensor: Tensor::new(
                "output_probability",
                vec![2, 3],
                TensorData::Fp32(vec![0.97, 0.02, 0.01, 0.1, 0.2, 0.7]),
            )
            .unwrap(),
            class_labels: Some(ClassLabels::Int64(vec![0, 1, 2])),
        },
    ]
}

#[test]
fn json_response_exact() {
    let req = decode_request(br#"{"inputs": []}"#, None).unwrap();
    let mut outs = req.select_outputs(zipmap_outputs()).unwrap();
    let meta = ResponseMeta {
        model_name: "iris",
        model_version: Some("3"),
        id: Some("r1"),
        parameters: None,
    };
    let enc = encode_response(meta, &mut outs).unwrap();
    assert_eq!(enc.header_length, None);
    assert_eq!(enc.content_type(), "application/json");
    assert_eq!(
        String::from_utf8(enc.body).unwrap(),
        r#"{"model_name":"iris","model_version":"3","id":"r1","outputs":[{"name":"output_label","shape":[2],"datatype":"INT64","data":[0,2]},{"name":"output_probability","shape":[2,3],"datatype":"FP32","parameters":{"class_labels":[0,1,2]},"data":[0.97,0.02,0.01,0.1,0.2,0.7]}]}"#
    );
}

#[test]
fn binary_response_roundtrip_and_selection() {
    let body = json!({"inputs": [], "outputs": [
        {"name": "output_probability", "parameters": {"binary_data": true}},
        {"name": "output_label"}]});
    let req = decode_request(body.to_string().as_bytes(), None).unwrap();
    req.check_outputs(&["output_label", "output_probability"])
        .unwrap();
    let mut outs = req.select_outputs(zipmap_outputs()).unwrap();
    assert_eq!(outs[0].tensor.name, "output_probability");
    let enc = encode_response(
        ResponseMeta {
            model_name: "iris",
            ..Default::default()
        },
        &mut outs,
    )
    .unwrap();
    let n = enc.header_length.unwrap();
    assert_eq!(enc.body.len(), n + 24);
    let header: Value = serde_json::from_slice(&enc.body[..n]).unwrap();
    assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 24);
    assert!(header["outputs"][0].get("data").is_none());
    let dec = decode_response(&enc.body, Some(n)).unwrap();
    assert_eq!(dec.outputs[0], zipmap_outputs()[1].tensor);
    assert_eq!(dec.outputs[1], zipmap_outputs()[0].tensor);
    assert_eq!(
        dec.class_labels("output_probability"),
        Some(ClassLabels::Int64(vec![0, 1, 2]))
    );

    let bad = decode_request(br#"{"inputs": [], "outputs": [{"name": "nope"}]}"#, None).unwrap();
    let e = bad.select_outputs(zipmap_outputs()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "outputs[0].name: the model has no output 'nope'; it has output_label, output_probability"
    );
    assert!(bad.check_outputs(&["output_label"]).is_err());
}

#[test]
fn non_utf8_bytes_need_binary() {
    let out =
        ModelOutput::plain(Tensor::new("s", vec![1], TensorData::Bytes(vec![vec![0xff]])).unwrap());
    let req = decode_request(br#"{"inputs": []}"#, None).unwrap();
    let mut outs = req.select_outputs(vec![out.clone()]).unwrap();
    let e = encode_response(
        ResponseMeta {
            model_name: "m",
            ..Default::default()
        },
        &mut outs,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("request it with parameters.binary_data: true"),
        "{e}"
    );
    let req = decode_request(
        br#"{"inputs": [], "parameters": {"binary_data_output": true}}"#,
        None,
    )
    .unwrap();
    let mut outs = req.select_outputs(vec![out]).unwrap();
    assert!(encode_response(
        ResponseMeta {
            model_name: "m",
            ..Default::default()
        },
        &mut outs
    )
    .is_ok());
}

fn arb_data() -> impl Strategy<Value = TensorData> {
    let n = 0usize..12;
    prop_oneof![
        prop::collection::vec(any::<bool>(), n.clone()).prop_map(TensorData::Bool),
        prop::collection::vec(any::<u8>(), n.clone()).prop_map(TensorData::Uint8),
        prop::collection::vec(any::<u16>(), n.clone()).prop_map(TensorData::Uint16),
        prop::collection::vec(any::<u32>(), n.clone()).prop_map(TensorData::Uint32),
        prop::collection::vec(any::<u64>(), n.clone()).prop_map(TensorData::Uint64),
        prop::collection::vec(any::<i8>(), n.clone()).prop_map(TensorData::Int8),
        prop::collection::vec(any::<i16>(), n.clone()).prop_map(TensorData::Int16),
        prop::collection::vec(any::<i32>(), n.clone()).prop_map(TensorData::Int32),
        prop::collection::vec(any::<i64>(), n.clone()).prop_map(TensorData::Int64),
        prop::collection::vec(any::<u16>().prop_map(half::f16::from_bits), n.clone())
            .prop_map(TensorData::Fp16),
        prop::collection::vec(any::<f32>(), n.clone()).prop_map(TensorData::Fp32),
        prop::collection::vec(any::<f64>(), n.clone()).prop_map(TensorData::Fp64),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..9), n)
            .prop_map(TensorData::Bytes),
    ]
}

fn arb_tensor(name: String) -> impl Strategy<Value = Tensor> {
    arb_data().prop_map(move |data| {
        let n = data.len() as i64;
        // split into [a, b] when possible to exercise multi-dim shapes
        let shape = if n % 2 == 0 && n > 0 {
            vec![2, n / 2]
        } else {
            vec![n]
        };
        Tensor {
            name: name.clone(),
            shape,
            data,
        }
    })
}

/// Equality, with every NaN equal to every NaN (JSON carries NaN as "NaN",
/// which does not keep payload bits); otherwise bitwise.
fn same_bits(a: &Tensor, b: &Tensor) -> bool {
    if a.name != b.name || a.shape != b.shape || a.dtype() != b.dtype() {
        return false;
    }
    if a.dtype().is_float() {
        return (0..a.data.len()).all(|i| {
            let (x, y) = (a.data.get_f64(i).unwrap(), b.data.get_f64(i).unwrap());
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        });
    }
    a.data == b.data
}

fn tensors() -> impl Strategy<Value = Vec<(Tensor, bool)>> {
    prop::collection::vec((arb_tensor(String::new()), any::<bool>()), 0..5).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (mut t, b))| {
                t.name = format!("t{i}");
                (t, b)
            })
            .collect()
    })
}

fn json_safe(t: &Tensor) -> bool {
    match &t.data {
        TensorData::Bytes(v) => v.iter().all(|b| std::str::from_utf8(b).is_ok()),
        _ => true,
    }
}

proptest! {
    #[test]
    fn request_roundtrip(tensors in tensors()) {
        // JSON can only carry UTF-8 strings; such tensors go binary
        let inputs: Vec<InputTensor> = tensors
            .iter()
            .map(|(t, b)| InputTensor { tensor: t.clone(), binary: *b || !json_safe(t) })
            .collect();
        let (body, header) = encode_request(Some("id"), None, &inputs, None).unwrap();
        let dec = decode_request(&body, header).unwrap();
        prop_assert_eq!(dec.inputs.len(), inputs.len());
        for (got, want) in dec.inputs.iter().zip(&inputs) {
            prop_assert!(same_bits(got, &want.tensor), "{:?} != {:?}", got, want.tensor);
        }
    }

    #[test]
    fn response_roundtrip(tensors in tensors()) {
        let mut outs: Vec<OutputTensor> = tensors
            .iter()
            .map(|(t, b)| OutputTensor { tensor: t.clone(), parameters: Default::default(), binary: *b || !json_safe(t) })
            .collect();
        let enc = encode_response(ResponseMeta { model_name: "m", ..Default::default() }, &mut outs).unwrap();
        let dec = decode_response(&enc.body, enc.header_length).unwrap();
        for (got, want) in dec.outputs.iter().zip(&tensors) {
            prop_assert!(same_bits(got, &want.0), "{:?} != {:?}", got, want.0);
        }
    }

    /// Arbitrary bytes after a valid header never panic the decoder.
    #[test]
    fn decoder_total(tail in prop::collection::vec(any::<u8>(), 0..64), cut in 0usize..64) {
        let (body, n) = binary_fixture_parts();
        let mut b = body[..n].to_vec();
        b.extend_from_slice(&body[n..n + cut.min(body.len() - n)]);
        b.extend_from_slice(&tail);
        let _ = decode_request(&b, Some(n));
        let _ = decode_request(&b, Some(cut.min(b.len())));
        let _ = decode_request(&tail, None);
    }
}

#[test]
fn datatype_names() {
    assert_eq!(DataType::from_v2("FP16"), Some(DataType::Fp16));
}
