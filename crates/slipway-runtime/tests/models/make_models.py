#!/usr/bin/env python3
"""Builds the small ONNX test models used by slipway-runtime's tests, and the
outputs onnxruntime (Python) computes for them.

Run with the project venv (scripts/setup-python.sh):

    .venv/bin/python crates/slipway-runtime/tests/models/make_models.py

The .onnx files and the *.expected.json files are committed; this script only
needs re-running when a model changes. Everything is deterministic (fixed
random_state / seeds), and only data sets that ship inside scikit-learn are used.

Expected-output JSON layout (one file per model):

    {
      "model": "iris_logreg.onnx",
      "inputs":  {"<name>": {"datatype": "FP32", "shape": [n, 4], "data": [...flat...]}},
      "outputs": {"<name>": {"datatype": "INT64", "shape": [...], "data": [...flat...]},
                  "<zipmap output>": {"datatype": "FP32", "shape": [n, k], "data": [...],
                                       "classes": [...labels in order...]}}
    }
"""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
}


def tensor_json(arr):
    arr = np.asarray(arr)
    if arr.dtype.kind in ("U", "O"):
        return {"datatype": "BYTES", "shape": list(arr.shape), "data": [str(x) for x in arr.ravel()]}
    dt = DTYPES[arr.dtype]
    # float32 -> Python float is exact, so the Rust side can compare bit-for-bit
    # or within a tolerance.
    return {"datatype": dt, "shape": list(arr.shape), "data": arr.ravel().tolist()}


def zipmap_json(seq_of_maps):
    classes = list(seq_of_maps[0].keys())
    data = np.array([[m[c] for c in classes] for m in seq_of_maps], dtype=np.float32)
    out = tensor_json(data)
    out["classes"] = [c if isinstance(c, str) else int(c) for c in classes]
    return out


def run_and_record(name, onx_bytes, feeds):
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(onx_bytes)
    size = os.path.getsize(path)
    assert size < 500_000, f"{name} is {size} bytes; keep test models small"
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    results = sess.run(out_names, feeds)
    outputs = {}
    for oname, value in zip(out_names, results):
        if isinstance(value, list):
            outputs[oname] = zipmap_json(value)
        else:
            outputs[oname] = tensor_json(value)
    doc = {
        "model": name,
        "inputs": {k: tensor_json(v) for k, v in feeds.items()},
        "outputs": outputs,
    }
    with open(os.path.join(HERE, name.replace(".onnx", ".expected.json")), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{name}: {size} bytes, outputs {out_names}")


def iris_rows():
    iris = load_iris()
    x = iris.data.astype(np.float32)
    # a mix of rows from all three classes plus a few perturbed ones
    rng = np.random.RandomState(7)
    pick = [0, 1, 2, 50, 51, 52, 100, 101, 102, 149]
    extra = x[rng.randint(0, len(x), 6)] + rng.normal(0, 0.3, (6, 4)).astype(np.float32)
    return iris, np.concatenate([x[pick], extra]).astype(np.float32)


def make_iris_logreg():
    iris, rows = iris_rows()
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(iris.data.astype(np.float32), iris.target)
    # the classic skl2onnx example naming: input "float_input", shape [None, 4]
    onx = convert_sklearn(
        pipe,
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    run_and_record("iris_logreg.onnx", onx.SerializeToString(), {"float_input": rows})


def make_iris_rf_strings():
    """RandomForestClassifier trained on string labels: output_label is a
    string tensor and output_probability a sequence of map(string, float)."""
    iris, rows = iris_rows()
    labels = np.array(iris.target_names)[iris.target]
    clf = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
    clf.fit(iris.data.astype(np.float32), labels)
    onx = to_onnx(clf, iris.data[:1].astype(np.float32), target_opset={"": 17, "ai.onnx.ml": 3})
    run_and_record("iris_rf_strings.onnx", onx.SerializeToString(), {"X": rows})


def make_diabetes_rf_regressor():
    data = load_diabetes()
    x = data.data.astype(np.float32)
    reg = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0)
    reg.fit(x, data.target)
    onx = to_onnx(reg, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    run_and_record("diabetes_rf_regressor.onnx", onx.SerializeToString(), {"X": x[:12]})


def make_mlp():
    """A 4 -> 8 -> 3 MLP with ReLU and a softmax head, dynamic batch dim."""
    rng = np.random.RandomState(42)
    w1 = rng.normal(0, 0.5, (4, 8)).astype(np.float32)
    b1 = rng.normal(0, 0.1, (8,)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (8, 3)).astype(np.float32)
    b2 = rng.normal(0, 0.1, (3,)).astype(np.float32)
    inits = [
        helper.make_tensor("w1", TensorProto.FLOAT, w1.shape, w1.ravel()),
        helper.make_tensor("b1", TensorProto.FLOAT, b1.shape, b1.ravel()),
        helper.make_tensor("w2", TensorProto.FLOAT, w2.shape, w2.ravel()),
        helper.make_tensor("b2", TensorProto.FLOAT, b2.shape, b2.ravel()),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="slipway-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    x = rng.normal(0, 1, (9, 4)).astype(np.float32)
    run_and_record("mlp.onnx", model.SerializeToString(), {"x": x})


def make_two_inputs():
    """Two named inputs of different dtypes: y = a * 2 + cast(b), dynamic batch."""
    nodes = [
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("c", TensorProto.DOUBLE, [], [2.0])),
        helper.make_node("Mul", ["a", "two"], ["a2"]),
        helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.DOUBLE),
        helper.make_node("Add", ["a2", "bf"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.DOUBLE, ["batch", 2]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["batch", 2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="slipway-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    a = np.array([[0.5, 1.5], [2.0, -1.0], [3.25, 0.0]], dtype=np.float64)
    b = np.array([[1, 2], [3, 4], [-5, 6]], dtype=np.int64)
    run_and_record("two_inputs.onnx", model.SerializeToString(), {"a": a, "b": b})


if __name__ == "__main__":
    make_iris_logreg()
    make_iris_rf_strings()
    make_diabetes_rf_regressor()
    make_mlp()
    make_two_inputs()
