//! End-to-end tests through ONNX Runtime with the committed test models
//! (tests/models, built by tests/models/make_models.py) and the outputs
//! onnxruntime (Python) computed for them.
//!
//! These tests need the ONNX Runtime shared library. It is found as described
//! in `slipway_runtime::onnx`; when it cannot be found they fail with the
//! message saying how to provide it (no silent skip).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use slipway_runtime::*;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

fn runtime() -> OnnxRuntime {
    match OnnxRuntime::new(&OrtConfig::default()) {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    }
}

fn load(name: &str) -> OnnxModel {
    runtime()
        .load_onnx_file(&models_dir().join(name), &LoadOptions::default())
        .unwrap()
}

fn expected(name: &str) -> Value {
    let p = models_dir().join(name.replace(".onnx", ".expected.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn tensor_from_json(name: &str, v: &Value) -> Tensor {
    let shape: Vec<i64> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect();
    let data = v["data"].as_array().unwrap();
    let data = match v["datatype"].as_str().unwrap() {
        "FP32" => TensorData::Fp32(data.iter().map(|x| x.as_f64().unwrap() as f32).collect()),
        "FP64" => TensorData::Fp64(data.iter().map(|x| x.as_f64().unwrap()).collect()),
        "INT64" => TensorData::Int64(data.iter().map(|x| x.as_i64().unwrap()).collect()),
        "BYTES" => TensorData::Bytes(
            data.iter()
                .map(|x| x.as_str().unwrap().as_bytes().to_vec())
                .collect(),
        ),
        other => panic!("unexpected datatype {other}"),
    };
    Tensor::new(name, shape, data).unwrap()
}

fn expected_inputs(doc: &Value, sig: &Signature) -> Vec<Tensor> {
    sig.inputs
        .iter()
        .map(|s| tensor_from_json(&s.name, &doc["inputs"][&s.name]))
        .collect()
}

fn assert_close(name: &str, got: &TensorData, want: &TensorData) {
    match (got, want) {
        (TensorData::Fp32(g), TensorData::Fp32(w)) => {
            assert_eq!(g.len(), w.len(), "{name}: length");
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                let tol = 1e-6 * b.abs().max(1.0);
                assert!((a - b).abs() <= tol, "{name}[{i}]: got {a}, want {b}");
            }
        }
        (TensorData::Fp64(g), TensorData::Fp64(w)) => {
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "{name}[{i}]: got {a}, want {b}"
                );
            }
        }
        _ => assert_eq!(got, want, "{name}: labels must match exactly"),
    }
}

fn check_outputs(doc: &Value, outputs: &[ModelOutput]) {
    let want = doc["outputs"].as_object().unwrap();
    assert_eq!(outputs.len(), want.len());
    for out in outputs {
        let w = &want[&out.tensor.name];
        let wt = tensor_from_json(&out.tensor.name, w);
        assert_eq!(out.tensor.shape, wt.shape, "{} shape", out.tensor.name);
        assert_close(&out.tensor.name, &out.tensor.data, &wt.data);
        match w.get("classes") {
            Some(classes) => {
                let labels = out.class_labels.as_ref().expect("class labels");
                assert_eq!(&labels.to_json(), classes, "{} classes", out.tensor.name);
            }
            None => assert!(out.class_labels.is_none()),
        }
    }
}

fn run_expected(model_file: &str) -> (Signature, Vec<ModelOutput>) {
    let doc = expected(model_file);
    let mut model = load(model_file);
    let sig = model.signature().clone();
    let outputs = model.run(expected_inputs(&doc, &sig)).unwrap();
    check_outputs(&doc, &outputs);
    (sig, outputs)
}

#[test]
fn library_is_found() {
    let path = find_onnxruntime_library(&OrtConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(path.to_string_lossy().contains("onnxruntime"));
    assert_eq!(runtime().name(), "onnxruntime");
}

#[test]
fn iris_logreg_zipmap_int_labels() {
    let (sig, outputs) = run_expected("iris_logreg.onnx");
    assert_eq!(
        sig.inputs,
        vec![TensorSpec::new("float_input", DataType::Fp32, vec![-1, 4])]
    );
    assert_eq!(
        sig.outputs[0],
        TensorSpec::new("output_label", DataType::Int64, vec![-1])
    );
    assert_eq!(
        sig.outputs[1],
        TensorSpec::new("output_probability", DataType::Fp32, vec![-1, -1])
    );
    assert_eq!(
        outputs[1].class_labels,
        Some(ClassLabels::Int64(vec![0, 1, 2]))
    );
    assert_eq!(outputs[1].tensor.shape, vec![16, 3]);
}

#[test]
fn iris_rf_zipmap_string_labels() {
    let (_, outputs) = run_expected("iris_rf_strings.onnx");
    assert_eq!(outputs[0].tensor.dtype(), DataType::Bytes);
    assert_eq!(
        outputs[1].class_labels,
        Some(ClassLabels::String(vec![
            "setosa".into(),
            "versicolor".into(),
            "virginica".into()
        ]))
    );
}

/// skl2onnx classifiers lose their ZipMap at load (the answers above are
/// onnxruntime's own, through the ZipMap); models without one are untouched.
#[test]
fn zipmaps_are_removed_at_load() {
    for (file, output) in [
        ("iris_logreg.onnx", "output_probability"),
        ("iris_rf_strings.onnx", "output_probability"),
    ] {
        let bytes = std::fs::read(models_dir().join(file)).unwrap();
        let s = slipway_runtime::zipmap::strip(&bytes).unwrap_or_else(|| panic!("{file}"));
        assert!(s.labels.contains_key(output), "{file}: {:?}", s.labels);
    }
    for file in ["diabetes_rf_regressor.onnx", "mlp.onnx"] {
        let bytes = std::fs::read(models_dir().join(file)).unwrap();
        assert!(slipway_runtime::zipmap::strip(&bytes).is_none(), "{file}");
    }
}

#[test]
fn rf_regressor() {
    let (sig, outputs) = run_expected("diabetes_rf_regressor.onnx");
    assert_eq!(sig.inputs[0].shape, vec![-1, 10]);
    assert_eq!(outputs[0].tensor.shape, vec![12, 1]);
}

#[test]
fn mlp_dynamic_batch() {
    let (sig, _) = run_expected("mlp.onnx");
    assert!(sig.supports_batching());
}

#[test]
fn two_inputs_and_conversion() {
    let (sig, _) = run_expected("two_inputs.onnx");
    assert_eq!(sig.inputs[0].dtype, DataType::Fp64);
    assert_eq!(sig.inputs[1].dtype, DataType::Int64);
    // INT32 for the INT64 input and FP32 for the FP64 input are converted.
    let a = Tensor::new("a", vec![1, 2], TensorData::Fp32(vec![0.5, 1.5])).unwrap();
    let b = Tensor::new("b", vec![1, 2], TensorData::Int32(vec![1, 2])).unwrap();
    let (conv, _) = conform(&sig, vec![b, a], &Policy::default()).unwrap();
    let mut model = load("two_inputs.onnx");
    let out = model.run(conv).unwrap();
    assert_eq!(out[0].tensor.data, TensorData::Fp64(vec![2.0, 5.0]));
}

#[test]
fn load_from_bytes_and_options() {
    let bytes = std::fs::read(models_dir().join("iris_logreg.onnx")).unwrap();
    let opts = LoadOptions {
        intra_op_threads: Some(1),
        optimization_level: OptimizationLevel::Disable,
    };
    let mut model = runtime().load_bytes(&bytes, &opts).unwrap();
    let doc = expected("iris_logreg.onnx");
    let inputs = expected_inputs(&doc, &model.signature().clone());
    check_outputs(&doc, &model.run(inputs).unwrap());
    let Err(err) = runtime().load_bytes(b"not a model", &opts) else {
        panic!("garbage loaded as a model")
    };
    assert!(matches!(err, RuntimeError::ModelLoad(_)), "{err}");
    assert_eq!(err.http_status(), 500);
}

#[test]
fn bad_inputs_reach_validation_not_ort() {
    let model = load("iris_logreg.onnx");
    let sig = model.signature().clone();
    let t = Tensor::new("float_input", vec![2, 3], TensorData::Fp32(vec![0.0; 6])).unwrap();
    let err = validate(&sig, &[t], &Policy::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input 'float_input' has shape [2,3]; dimension 1 must be 4 (the model expects [-1,4])"
    );
    let err: RuntimeError = err.into();
    assert_eq!(err.http_status(), 400);
}

/// Records the batch sizes the worker runs, delegating to the real model.
struct Recording {
    inner: OnnxModel,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Model for Recording {
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<ModelOutput>, RuntimeError> {
        self.batches
            .lock()
            .unwrap()
            .push(inputs[0].batch_size().unwrap_or(0));
        // make concurrent callers pile up in the queue
        std::thread::sleep(Duration::from_millis(5));
        self.inner.run(inputs)
    }
}

fn concurrent_requests_match_single(model_file: &str) {
    let doc = expected(model_file);
    let model = load(model_file);
    let sig = model.signature().clone();
    let all = expected_inputs(&doc, &sig);
    let rows = all[0].batch_size().unwrap();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let worker = Arc::new(
        ModelWorker::start(
            Box::new(Recording {
                inner: model,
                batches: batches.clone(),
            }),
            sig,
            WorkerConfig {
                name: model_file.into(),
                max_batch_size: 8,
                max_queue_delay: Duration::from_millis(20),
                // a single request may be larger than what the worker batches
                policy: Policy {
                    max_batch_size: Some(64),
                    ..Policy::default()
                },
                ..WorkerConfig::default()
            },
        )
        .unwrap(),
    );
    // single-row reference answers, one request at a time
    let singles: Vec<Vec<ModelOutput>> = (0..rows)
        .map(|r| {
            let inputs = all
                .iter()
                .map(|t| t.slice_rows(r, r + 1).unwrap())
                .collect();
            worker.infer_blocking(inputs).unwrap().outputs
        })
        .collect();
    batches.lock().unwrap().clear();
    // now all rows at once from many threads
    let handles: Vec<_> = (0..rows)
        .map(|r| {
            let worker = worker.clone();
            let inputs: Vec<Tensor> = all
                .iter()
                .map(|t| t.slice_rows(r, r + 1).unwrap())
                .collect();
            std::thread::spawn(move || worker.infer_blocking(inputs).unwrap().outputs)
        })
        .collect();
    for (r, h) in handles.into_iter().enumerate() {
        let got = h.join().unwrap();
        assert_eq!(got.len(), singles[r].len());
        for (g, s) in got.iter().zip(&singles[r]) {
            assert_eq!(g.tensor.shape, s.tensor.shape);
            assert_eq!(g.class_labels, s.class_labels);
            assert_close(&g.tensor.name, &g.tensor.data, &s.tensor.data);
        }
    }
    let seen = batches.lock().unwrap().clone();
    assert_eq!(
        seen.iter().sum::<usize>(),
        rows,
        "every row ran once: {seen:?}"
    );
    assert!(
        seen.iter().any(|b| *b > 1),
        "requests were batched: {seen:?}"
    );
    assert!(
        seen.iter().all(|b| *b <= 8),
        "max_batch_size respected: {seen:?}"
    );
    // and the full batch in one request matches the Python outputs
    let whole = worker.infer_blocking(all).unwrap();
    check_outputs(&doc, &whole.outputs);
    Arc::try_unwrap(worker).unwrap().shutdown();
}

#[test]
fn batching_mlp() {
    concurrent_requests_match_single("mlp.onnx");
}

#[test]
fn batching_zipmap_classifier() {
    concurrent_requests_match_single("iris_rf_strings.onnx");
}

#[test]
fn batching_two_inputs() {
    concurrent_requests_match_single("two_inputs.onnx");
}

#[test]
fn worker_warmup_learns_labels_and_validates() {
    let model = load("iris_logreg.onnx");
    let mut sig = model.signature().clone();
    sig.ranges = FeatureRanges::from_json(
        r#"{"float_input": {"min": [4, 2, 1, 0], "max": [8, 4.5, 7, 2.5]}}"#,
    )
    .unwrap();
    let worker = ModelWorker::start(Box::new(model), sig, WorkerConfig::default()).unwrap();
    assert_eq!(
        worker.class_labels().get("output_probability"),
        Some(&ClassLabels::Int64(vec![0, 1, 2]))
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let x = Tensor::new(
        "float_input",
        vec![1, 4],
        TensorData::Fp64(vec![5.1, 3.5, 1.4, 9.0]),
    )
    .unwrap();
    let r = rt.block_on(worker.infer(vec![x])).unwrap();
    assert_eq!(r.validation.flagged, 1);
    assert_eq!(r.outputs[0].tensor.data, TensorData::Int64(vec![2]));
    let nan = Tensor::new(
        "float_input",
        vec![1, 4],
        TensorData::Fp32(vec![5.1, f32::NAN, 1.4, 0.2]),
    )
    .unwrap();
    let err = rt.block_on(worker.infer(vec![nan])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input 'float_input' element [0,1] is NaN; the model does not accept NaN"
    );
    assert_eq!(err.http_status(), 400);
    let big = Tensor::new("float_input", vec![40, 4], TensorData::Fp32(vec![1.0; 160])).unwrap();
    let err = worker.infer_blocking(vec![big]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input 'float_input' has batch size 40; the maximum batch size is 32"
    );
}

#[test]
fn mlflow_signature_resolution_with_real_model() {
    let yaml = r#"flavors:
  python_function: {loader_module: mlflow.onnx}
signature:
  inputs: '[{"type": "double", "name": "sepal length (cm)"}, {"type": "double", "name": "sepal width (cm)"}, {"type": "double", "name": "petal length (cm)"}, {"type": "double", "name": "petal width (cm)"}]'
  outputs: '[{"type": "long"}]'
"#;
    let ml = MlflowSignature::from_mlmodel_yaml(yaml).unwrap();
    let model = load("iris_logreg.onnx");
    let sig = Signature::resolve(model.signature().clone(), ml.as_ref());
    assert_eq!(sig.columns.as_ref().unwrap().len(), 4);
    assert_eq!(sig.inputs[0].name, "float_input");
}
