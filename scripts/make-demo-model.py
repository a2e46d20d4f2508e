#!/usr/bin/env python3
"""Builds Slipway's bundled demo model: iris, StandardScaler + LogisticRegression, as ONNX.

Writes models/demo/iris/ (relative to the repository root, or to --out):

  model.onnx                 skl2onnx conversion (default ZipMap on the probabilities), opset <= 17
  MLmodel                    MLflow model metadata for the ``onnx`` + ``python_function`` flavors,
                             with a tensor-based signature
  conda.yaml, python_env.yaml, requirements.txt, serving_input_example.json
                             what ``mlflow.onnx.save_model`` writes next to the model
  input_example.json         MLflow's input example (ndarray, a plain list of rows)
  feature_ranges.json        {"float_input": {"min": [4 floats], "max": [4 floats]}} of the training data
  expected.json              onnxruntime's predictions for a few rows (used by tests)

Uses only sklearn's bundled iris data (no download). Deterministic: fixed random_state, the
machine-dependent fields that MLflow writes (``utc_time_created``, a random ``model_uuid``) are
removed or derived from the model bytes, so re-running with the same package versions produces
byte-identical files.

Run with the project venv:  .venv/bin/python scripts/make-demo-model.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "models" / "demo" / "iris"
TARGET_OPSET = 17  # the highest default-domain opset the converter may use; onnxruntime 1.31 supports it
INPUT_NAME = "float_input"
EXPECTED_ROWS = [0, 25, 50, 75, 100, 125]  # two rows of each class
INPUT_EXAMPLE_ROWS = [0, 50, 100]
# Fixed namespace so model_uuid is a pure function of the model bytes.
UUID_NAMESPACE = uuid.UUID("5a1b3c4d-0000-4000-8000-51a1f0a7de00")


def train():
    iris = load_iris()
    x = iris.data.astype(np.float64)
    y = iris.target
    pipe = Pipeline(
        [
            ("scaler", StandardScaler()),
            ("clf", LogisticRegression(max_iter=1000, random_state=0)),
        ]
    )
    pipe.fit(x, y)
    return pipe, x, y


def convert(pipe):
    onx = convert_sklearn(
        pipe,
        name="slipway_demo_iris",
        initial_types=[(INPUT_NAME, FloatTensorType([None, 4]))],
        target_opset=TARGET_OPSET,
    )
    # Keep the bytes independent of where/when the script ran: the converter collects opset
    # imports in a set, so their order follows Python's hash seed; sort them by domain.
    onx.doc_string = ""
    opsets = sorted(((o.domain, o.version) for o in onx.opset_import))
    del onx.opset_import[:]
    for domain, version in opsets:
        onx.opset_import.add(domain=domain, version=version)
    return onx


def ort_predict(model_bytes: bytes, rows: np.ndarray):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in sess.get_outputs()]
    label, proba = sess.run(outputs, {INPUT_NAME: rows.astype(np.float32)})
    # ZipMap output: a list of {class: probability}; densify in class order.
    classes = sorted(proba[0].keys())
    dense = [[float(p[c]) for c in classes] for p in proba]
    return [int(v) for v in label], dense, [int(c) for c in classes], sess


def write_mlflow_files(onx, x, out: Path):
    """Lets MLflow write the MLmodel (so the format is exactly MLflow's), then normalises it."""
    import mlflow.onnx
    import yaml
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 4), INPUT_NAME)]),
        outputs=Schema(
            [
                TensorSpec(np.dtype("int64"), (-1,), "output_label"),
                # The graph's real output is ZipMap's seq(map(int64, float)); MLflow's schema has no
                # such tensor type, so the signature declares its dense equivalent (one column per class).
                TensorSpec(np.dtype("float32"), (-1, 3), "output_probability"),
            ]
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "model"
        mlflow.onnx.save_model(
            onx,
            str(saved),
            signature=signature,
            input_example=x[INPUT_EXAMPLE_ROWS],
            save_as_external_data=False,
        )
        meta = yaml.safe_load((saved / "MLmodel").read_text())
        model_bytes = (saved / "model.onnx").read_bytes()
        meta.pop("utc_time_created", None)
        meta["model_uuid"] = uuid.uuid5(UUID_NAMESPACE, hashlib.sha256(model_bytes).hexdigest()).hex
        meta["model_size_bytes"] = sum(
            p.stat().st_size for p in saved.iterdir() if p.is_file() and p.name != "MLmodel"
        )
        (saved / "MLmodel").write_text(yaml.safe_dump(meta, default_flow_style=False, sort_keys=True))
        for item in saved.iterdir():
            shutil.copyfile(item, out / item.name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    pipe, x, y = train()
    onx = convert(pipe)
    model_bytes = onx.SerializeToString()

    rows = x[EXPECTED_ROWS]
    labels, dense, classes, _ = ort_predict(model_bytes, rows)
    sk_labels = pipe.predict(rows).tolist()
    if labels != sk_labels:
        print(f"onnxruntime labels {labels} differ from sklearn {sk_labels}", file=sys.stderr)
        return 1
    if not np.allclose(dense, pipe.predict_proba(rows), atol=1e-4):
        print("onnxruntime probabilities differ from sklearn", file=sys.stderr)
        return 1

    write_mlflow_files(onx, x, out)
    # mlflow.onnx.save_model re-serialises the ModelProto; make sure model.onnx is the converter's bytes.
    (out / "model.onnx").write_bytes(model_bytes)

    ranges = {INPUT_NAME: {"min": x.min(axis=0).tolist(), "max": x.max(axis=0).tolist()}}
    (out / "feature_ranges.json").write_text(json.dumps(ranges, indent=2) + "\n")

    expected = {
        "description": "onnxruntime (CPU) predictions of model.onnx for rows of sklearn's iris data",
        "onnxruntime_version": ort.__version__,
        "input_name": INPUT_NAME,
        "rows": EXPECTED_ROWS,
        "inputs": {INPUT_NAME: rows.astype(np.float32).astype(np.float64).tolist()},
        "outputs": {
            "output_label": labels,
            # ZipMap gives one {class: p} map per row; here densified in class order.
            "output_probability": dense,
        },
        "probability_classes": classes,
        "true_labels": y[EXPECTED_ROWS].tolist(),
        "probability_atol": 1e-5,
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")

    digest = hashlib.sha256(model_bytes).hexdigest()
    print(f"wrote {out} (model.onnx sha256 {digest}, {len(model_bytes)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
