//! MLflow scoring protocol tests.
#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::{json, Value};
use slipway_protocol::mlflow::*;
use slipway_protocol::ProtocolError;
use slipway_runtime::{
    ClassLabels, ColumnSpec, DataType, ModelOutput, Signature, Tensor, TensorData, TensorSpec,
};

fn iris_sig(columns: bool) -> Signature {
    let mut s = Signature::new(
        vec![TensorSpec::new("float_input", DataType::Fp32, vec![-1, 4])],
        vec![TensorSpec::new("output_label", DataType::Int64, vec![-1])],
    );
    if columns {
        s.columns = Some(
            ["sepal_length", "sepal_width", "petal_length", "petal_width"]
                .iter()
                .map(|n| ColumnSpec {
                    name: Some(n.to_string()),
                    dtype: DataType::Fp64,
                    required: true,
                })
                .collect(),
        );
    }
    s
}

fn two_sig() -> Signature {
    Signature::new(
        vec![
            TensorSpec::new("a", DataType::Fp64, vec![-1, 2]),
            TensorSpec::new("b", DataType::Int64, vec![-1]),
        ],
        vec![],
    )
}

fn parse(v: Value, sig: &Signature) -> Result<ScoringRequest, ProtocolError> {
    parse_request(
        "application/json; charset=utf-8",
        v.to_string().as_bytes(),
        sig,
    )
}

fn fp32(shape: Vec<i64>, v: Vec<f32>) -> Tensor {
    Tensor::new("float_input", shape, TensorData::Fp32(v)).unwrap()
}

#[test]
fn dataframe_split_in_signature_order() {
    let r = parse(
        json!({"dataframe_split": {
            "columns": ["petal_width", "sepal_length", "extra", "sepal_width", "petal_length"],
            "data": [[0.2, 5.1, "x", 3.5, 1.4], [2.3, 6.7, "y", 3.0, 5.2]]}}),
        &iris_sig(true),
    )
    .unwrap();
    assert_eq!(r.format, ScoringFormat::DataframeSplit);
    assert_eq!(
        r.inputs,
        vec![fp32(
            vec![2, 4],
            vec![5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]
        )]
    );
    // without a column signature: request order
    let r = parse(
        json!({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}),
        &iris_sig(false),
    )
    .unwrap();
    assert_eq!(r.inputs, vec![fp32(vec![1, 2], vec![1.0, 2.0])]);
}

#[test]
fn dataframe_records_and_missing_column() {
    let sig = iris_sig(true);
    let r = parse(
        json!({"dataframe_records": [
            {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
            {"petal_width": null, "sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2}]}),
        &sig,
    )
    .unwrap();
    let TensorData::Fp32(v) = &r.inputs[0].data else {
        panic!()
    };
    assert_eq!(r.inputs[0].shape, vec![2, 4]);
    assert_eq!(v[..7], [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2]);
    assert!(
        v[7].is_nan(),
        "null is NaN (rejected later by validation unless allowed)"
    );
    let e = parse(json!({"dataframe_records": [{"sepal_length": 5.1}]}), &sig).unwrap_err();
    assert_eq!(
        e.to_string(),
        "dataframe_records: column 'sepal_width' is missing; the model's signature requires columns 'sepal_length', 'sepal_width', 'petal_length', 'petal_width'"
    );
    let e = parse(
        json!({"dataframe_records": [{"sepal_length": "big", "sepal_width": 1, "petal_length": 1, "petal_width": 1}]}),
        &sig,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "dataframe_records row 0 column 'sepal_length': expected a number, got the string \"big\""
    );
}

#[test]
fn instances_and_inputs() {
    let sig = iris_sig(false);
    let r = parse(json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}), &sig).unwrap();
    assert_eq!(r.format, ScoringFormat::Instances);
    assert_eq!(r.inputs, vec![fp32(vec![1, 4], vec![5.1, 3.5, 1.4, 0.2])]);
    let r = parse(
        json!({"inputs": [[5.1, 3.5, 1.4, 0.2]], "params": {"k": 1}}),
        &sig,
    )
    .unwrap();
    assert_eq!(r.params, Some(json!({"k": 1})));
    let r = parse(json!({"inputs": {"float_input": [[1, 2, 3, 4]]}}), &sig).unwrap();
    assert_eq!(r.inputs, vec![fp32(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0])]);
    // named tensors as instances
    let two = two_sig();
    let r = parse(
        json!({"instances": [{"a": [1.5, 2], "b": 3}, {"a": [0, 1], "b": -1}]}),
        &two,
    )
    .unwrap();
    assert_eq!(
        r.inputs[0],
        Tensor::new("a", vec![2, 2], TensorData::Fp64(vec![1.5, 2.0, 0.0, 1.0])).unwrap()
    );
    assert_eq!(
        r.inputs[1],
        Tensor::new("b", vec![2], TensorData::Int64(vec![3, -1])).unwrap()
    );
    let e = parse(json!({"inputs": [[1, 2]]}), &two).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("inputs: a list can only feed a model with one input"),
        "{e}"
    );
    let e = parse(json!({"inputs": {"c": [1]}}), &two).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs.c: 'c' is not an input of the model; its inputs are 'a', 'b'"
    );
    let e = parse(json!({"instances": [[1, 2, 3, 4], [1, 2]]}), &sig).unwrap_err();
    assert!(e.to_string().contains("ragged"), "{e}");
    let e = parse(json!({"inputs": {"b": [1.5]}, }), &two).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs.b[0]: expected an integer for INT64, got 1.5"
    );
    // columnar dict for a column-signature model
    let r = parse(
        json!({"inputs": {"sepal_length": [5.1], "sepal_width": [3.5], "petal_length": [1.4], "petal_width": [0.2]}}),
        &iris_sig(true),
    )
    .unwrap();
    assert_eq!(r.inputs, vec![fp32(vec![1, 4], vec![5.1, 3.5, 1.4, 0.2])]);
}

#[test]
fn envelope_errors() {
    let sig = iris_sig(false);
    let e = parse(json!({"data": [[1]]}), &sig).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("body: must contain exactly one of dataframe_split"),
        "{e}"
    );
    let e = parse(json!({"inputs": [[1]], "instances": [[1]]}), &sig).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("body: must contain exactly one of"),
        "{e}"
    );
    let e = parse(json!([1, 2]), &sig).unwrap_err();
    assert!(e.to_string().contains("got an array"), "{e}");
    let e = parse_request("application/xml", b"<a/>", &sig).unwrap_err();
    assert_eq!(e.http_status(), 415);
    let e = parse(
        json!({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}),
        &sig,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "dataframe_split.data[0]: has 2 values but there are 1 columns"
    );
}

#[test]
fn csv() {
    let sig = iris_sig(true);
    let body = b",sepal_length,sepal_width,petal_length,petal_width\r\n0,5.1,3.5,1.4,0.2\r\n1,6.7,3.0,\"5.2\",\n";
    let r = parse_request("text/csv", body, &sig).unwrap();
    assert_eq!(r.format, ScoringFormat::Csv);
    let TensorData::Fp32(v) = &r.inputs[0].data else {
        panic!()
    };
    assert_eq!(v[..7], [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2]);
    assert!(v[7].is_nan(), "empty cell is NaN");
    let e = parse_request("text/csv", b"a,b\n1\n", &iris_sig(false)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "csv line 2: has 1 fields but the header has 2"
    );
    let e = parse_request("text/csv", b"a\n\"1\n", &iris_sig(false)).unwrap_err();
    assert!(e.to_string().contains("unterminated"), "{e}");
    let strs = Signature::new(
        vec![TensorSpec::new("s", DataType::Bytes, vec![-1, 1])],
        vec![],
    );
    let r = parse_request("text/csv", b"s\n\"a,\"\"b\"\"\"\n12\n", &strs).unwrap();
    assert_eq!(
        r.inputs[0].data,
        TensorData::Bytes(vec![b"a,\"b\"".to_vec(), b"12".to_vec()])
    );
    assert_eq!(r.inputs[0].shape, vec![2, 1]);
}

/// A JSON body sent as text/csv, or a CSV with only a header row, used to
/// answer 200 with no predictions; both are 400 naming the fault.
#[test]
fn csv_without_rows_or_with_json_is_refused() {
    let sig = iris_sig(true);
    for (body, want) in [
        (
            &br#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#[..],
            "looks like JSON",
        ),
        (&b"  [[5.1, 3.5, 1.4, 0.2]]"[..], "looks like JSON"),
        (
            &b"sepal_length,sepal_width,petal_length,petal_width\n"[..],
            "no data rows",
        ),
        (
            &b"sepal_length,sepal_width,petal_length,petal_width"[..],
            "no data rows",
        ),
    ] {
        let e = parse_request("text/csv", body, &sig).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(e.to_string().contains(want), "{e}");
    }
}

fn classifier_outputs() -> Vec<ModelOutput> {
    vec![
        ModelOutput::plain(
            Tensor::new(
                "output_label",
                vec![2],
                TensorData::Bytes(vec![b"setosa".to_vec(), b"virginica".to_vec()]),
            )
            .unwrap(),
        ),
        ModelOutput {
            tensor: Tensor::new(
                "output_probability",
                vec![2, 2],
                TensorData::Fp32(vec![0.75, 0.25, 0.5, 0.5]),
            )
            .unwrap(),
            class_labels: Some(ClassLabels::String(vec![
                "setosa".into(),
                "virginica".into(),
            ])),
        },
    ]
}

fn decoded(body: Vec<u8>) -> serde_json::Value {
    serde_json::from_slice(&body).expect("the body is JSON")
}

#[test]
fn predictions_like_mlflow() {
    let outs = classifier_outputs();
    assert_eq!(
        decoded(encode_predictions(ScoringFormat::DataframeSplit, &outs).unwrap()),
        json!({"predictions": [
            {"output_label": "setosa", "output_probability": {"setosa": 0.75, "virginica": 0.25}},
            {"output_label": "virginica", "output_probability": {"setosa": 0.5, "virginica": 0.5}}]})
    );
    assert_eq!(
        decoded(encode_predictions(ScoringFormat::Inputs, &outs).unwrap()),
        json!({"predictions": {
            "output_label": ["setosa", "virginica"],
            "output_probability": [{"setosa": 0.75, "virginica": 0.25}, {"setosa": 0.5, "virginica": 0.5}]}})
    );
    // regressor [n, 1] -> scalar per record; multi-column -> list per record
    let reg = vec![
        ModelOutput::plain(
            Tensor::new("variable", vec![2, 1], TensorData::Fp32(vec![1.5, 2.5])).unwrap(),
        ),
        ModelOutput::plain(
            Tensor::new(
                "probs",
                vec![2, 2],
                TensorData::Fp64(vec![0.1, 0.9, 0.3, 0.7]),
            )
            .unwrap(),
        ),
    ];
    assert_eq!(
        decoded(encode_predictions(ScoringFormat::Csv, &reg).unwrap()),
        json!({"predictions": [{"variable": 1.5, "probs": [0.1, 0.9]}, {"variable": 2.5, "probs": [0.3, 0.7]}]})
    );
    assert_eq!(
        decoded(encode_predictions(ScoringFormat::Instances, &reg).unwrap()),
        json!({"predictions": {"variable": [[1.5], [2.5]], "probs": [[0.1, 0.9], [0.3, 0.7]]}})
    );
}
