"""The bundled demo model (models/demo/iris, made by scripts/make-demo-model.py). No server needed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from slipway_testlib import REPO_ROOT

DEMO = REPO_ROOT / "models" / "demo" / "iris"
SCRIPT = REPO_ROOT / "scripts" / "make-demo-model.py"


def _predict(model_path, rows):
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"float_input": np.asarray(rows, dtype=np.float32)})
    classes = sorted(proba[0].keys())
    return label.tolist(), [[p[c] for c in classes] for p in proba], classes


def test_demo_files_present():
    for name in ("model.onnx", "MLmodel", "input_example.json", "feature_ranges.json", "expected.json"):
        assert (DEMO / name).is_file(), name


def test_demo_model_graph_and_expected_predictions():
    sess = ort.InferenceSession(str(DEMO / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("float_input", "tensor(float)", 4)
    outs = {o.name: o.type for o in sess.get_outputs()}
    assert outs == {"output_label": "tensor(int64)", "output_probability": "seq(map(int64,tensor(float)))"}

    exp = json.loads((DEMO / "expected.json").read_text())
    labels, proba, classes = _predict(DEMO / "model.onnx", exp["inputs"]["float_input"])
    assert labels == exp["outputs"]["output_label"]
    assert classes == exp["probability_classes"] == [0, 1, 2]
    np.testing.assert_allclose(proba, exp["outputs"]["output_probability"], rtol=0, atol=exp["probability_atol"])
    # The model is actually good on these rows.
    assert labels == exp["true_labels"]


def test_demo_mlmodel_signature_and_example():
    from mlflow.models import Model

    m = Model.load(str(DEMO / "MLmodel"))
    assert set(m.flavors) == {"onnx", "python_function"}
    assert m.flavors["onnx"]["data"] == "model.onnx"
    assert m.flavors["python_function"]["loader_module"] == "mlflow.onnx"
    inputs = json.loads(m.signature.inputs.to_json())
    assert inputs == [{"name": "float_input", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]
    outputs = {o["name"]: o for o in json.loads(m.signature.outputs.to_json())}
    assert outputs["output_label"]["tensor-spec"] == {"dtype": "int64", "shape": [-1]}
    assert "output_probability" in outputs
    example = json.loads((DEMO / "input_example.json").read_text())
    assert np.asarray(example).shape[1] == 4
    labels, _p, _c = _predict(DEMO / "model.onnx", example)
    assert len(labels) == len(example)


def test_demo_loads_with_mlflow_onnx():
    import mlflow.onnx

    model = mlflow.onnx.load_model(str(DEMO))
    assert model.SerializeToString() == (DEMO / "model.onnx").read_bytes()


def test_demo_feature_ranges():
    from sklearn.datasets import load_iris

    x = load_iris().data
    ranges = json.loads((DEMO / "feature_ranges.json").read_text())
    assert set(ranges) == {"float_input"}
    assert ranges["float_input"]["min"] == x.min(axis=0).tolist()
    assert ranges["float_input"]["max"] == x.max(axis=0).tolist()


@pytest.mark.timeout(120)
def test_make_demo_model_is_deterministic(tmp_path):
    out = tmp_path / "iris"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True, timeout=110)
    # Files mlflow writes from the running environment (pip/setuptools/python
    # versions) legitimately differ between machines; the model and its data do not.
    env_dependent = {"python_env.yaml", "conda.yaml", "requirements.txt", "MLmodel"}
    for f in sorted(DEMO.iterdir()):
        if f.name in env_dependent:
            continue
        assert (out / f.name).read_bytes() == f.read_bytes(), f"{f.name} differs when re-generated"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in DEMO.iterdir())
