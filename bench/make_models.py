#!/usr/bin/env python3
"""Builds the benchmark models, each in every form a contestant needs.

For each workload model (iris, rf, mlp) writes under OUT/<name>/:

  model.joblib          the fitted scikit-learn estimator (MLServer + mlserver-sklearn)
  model.onnx            skl2onnx conversion of the same estimator (Slipway, FastAPI + onnxruntime)
  mlflow-sklearn/       mlflow.sklearn.save_model of the same estimator (mlflow models serve)
  mlserver-plain/       MLServer model repository (model-settings.json + the joblib)
  mlserver-batched/     the same with adaptive batching (max_batch_size 64, max_batch_time 1 ms)
  meta.json             feature count, input name, output names, onnx sha256

Plus OUT/fleet/iris-NN.onnx: 20 distinct small iris models (different bootstrap samples),
for the "20 deployed models" memory figure, and OUT/swap/v1.onnx, v2.onnx for the alias swap.

Deterministic (fixed seeds), uses only data that scikit-learn generates or ships (no download).
Usage: .bench-venv/bin/python bench/make_models.py OUT
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore")
INPUT = "float_input"
OPSET = 17


def to_onnx(est, n_features: int, zipmap_off: bool) -> bytes:
    options = {id(est): {"zipmap": False}} if zipmap_off else None
    if zipmap_off and isinstance(est, Pipeline):
        options = {id(est.steps[-1][1]): {"zipmap": False}}
    onx = convert_sklearn(
        est,
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        target_opset={"": OPSET, "ai.onnx.ml": 3},
        options=options,
    )
    return onx.SerializeToString()


def iris_model(seed: int = 0, bootstrap: bool = False):
    data = load_iris()
    x, y = data.data.astype(np.float32), data.target
    if bootstrap:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(x), len(x))
        x, y = x[idx], y[idx]
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(x, y)
    return pipe, 4


def rf_model():
    x, y = make_regression(n_samples=4000, n_features=16, noise=0.5, random_state=1)
    rf = RandomForestRegressor(n_estimators=200, max_depth=10, random_state=1, n_jobs=1)
    rf.fit(x.astype(np.float32), y)
    return rf, 16


def mlp_model():
    x, y = make_regression(n_samples=2000, n_features=64, noise=0.5, random_state=2)
    x = x.astype(np.float32)
    mlp = MLPRegressor(hidden_layer_sizes=(256, 256, 256), max_iter=20, random_state=2)
    mlp.fit(x, y)
    return mlp, 64


def write_mlserver(root: Path, name: str, joblib_path: Path):
    """Two MLServer model repositories: plain, and with adaptive batching."""
    for repo, batching in (("mlserver-plain", False), ("mlserver-batched", True)):
        model_name = name
        d = root / repo / model_name
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(joblib_path, d / "model.joblib")
        settings = {
            "name": model_name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
        }
        if batching:
            settings["max_batch_size"] = 64
            settings["max_batch_time"] = 0.001
        (d / "model-settings.json").write_text(json.dumps(settings, indent=2))


def build(out: Path, name: str, est, n_features: int, classifier: bool):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    d = out / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    joblib.dump(est, d / "model.joblib")
    onnx_bytes = to_onnx(est, n_features, zipmap_off=classifier)
    (d / "model.onnx").write_bytes(onnx_bytes)
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    sample = np.random.default_rng(7).normal(size=(3, n_features)).astype(np.float32)
    sig = infer_signature(sample, est.predict(sample))
    # mlflow 3 saves with skops, which wants the non-standard types listed (our own model).
    import skops.io

    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(est)) or None
    mlflow.sklearn.save_model(
        est, str(d / "mlflow-sklearn"), signature=sig, skops_trusted_types=trusted
    )
    outputs = ["predict", "predict_proba"] if classifier else ["predict"]
    write_mlserver(d, name, d / "model.joblib")
    meta = {
        "name": name,
        "n_features": n_features,
        "input": INPUT,
        "onnx_outputs": [o.name for o in sess.get_outputs()],
        "mlserver_outputs": outputs,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "estimator": repr(est).replace("\n", " "),
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=2))
    print(f"built {name}: {meta['estimator'][:100]} onnx={len(onnx_bytes)} bytes", flush=True)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    if (out / "DONE").exists():
        print("models already built", flush=True)
        return
    est, n = iris_model()
    build(out, "iris", est, n, classifier=True)
    est, n = rf_model()
    build(out, "rf", est, n, classifier=False)
    est, n = mlp_model()
    build(out, "mlp", est, n, classifier=False)
    fleet = out / "fleet"
    fleet.mkdir(exist_ok=True)
    for i in range(20):
        est, n = iris_model(seed=100 + i, bootstrap=True)
        (fleet / f"iris-{i:02d}.onnx").write_bytes(to_onnx(est, n, zipmap_off=True))
    swap = out / "swap"
    swap.mkdir(exist_ok=True)
    for i, v in enumerate(("v1", "v2")):
        est, n = iris_model(seed=200 + i, bootstrap=True)
        (swap / f"{v}.onnx").write_bytes(to_onnx(est, n, zipmap_off=True))
    (out / "DONE").write_text("ok\n")


if __name__ == "__main__":
    main()
