"""Model builders and HTTP helpers for the serving interop tests (`test_serving_*.py`).

Everything is small and deterministic (fixed seeds, sklearn's bundled data, no download):

  iris_pipeline()      StandardScaler + LogisticRegression, skl2onnx defaults (ZipMap probabilities)
  rf_classifier()      RandomForestClassifier, skl2onnx defaults (ZipMap probabilities)
  rf_regressor(seed)   RandomForestRegressor (one FP32 output of shape [N, 1])
  mlp(seed)            a two-layer MLP built with onnx.helper, dynamic batch dimension, opset 17, IR 8

Reference predictions come from onnxruntime's Python API on the same ONNX bytes that are logged
with ``mlflow.onnx.log_model``. ZipMap outputs (a list of ``{class: probability}`` dicts in Python)
are normalised to an ``[N, n_classes]`` matrix with the class labels in sorted order, which is how
Slipway's V2 endpoint returns them (``parameters.class_labels``).

Also here: starting a server *with* the demo deployment (``slipway_testlib.start_server`` always
passes ``--no-demo``), pointing the mlflow client at another server for a while, a throw-away
SeaweedFS (``scripts/start-s3.sh``), and V2 request/response encoding (JSON and the binary tensor
extension) done by hand, so the tests can also send what a client library never would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import requests
from onnx import TensorProto, helper, numpy_helper

from slipway_testlib import (
    REPO_ROOT,
    START_TIMEOUT_S,
    ServerProcess,
    auth_headers,
    start_server,
)

DEMO_DIR = REPO_ROOT / "models" / "demo" / "iris"
TARGET_OPSET = 17  # onnxruntime 1.31 runs it; skl2onnx may use lower
MAX_IR_VERSION = 10
PIP_REQUIREMENTS = ["onnx", "onnxruntime"]

NP_TO_V2 = {
    np.dtype("float32"): "FP32",
    np.dtype("float64"): "FP64",
    np.dtype("int64"): "INT64",
    np.dtype("int32"): "INT32",
    np.dtype("bool"): "BOOL",
}
V2_TO_NP = {v: k for k, v in NP_TO_V2.items()}


# --------------------------------------------------------------------------------------------
# Models


@dataclass
class BuiltModel:
    """An ONNX model, its single float input, sample rows and onnxruntime's answers."""

    key: str
    onnx_model: onnx.ModelProto
    input_name: str
    x: np.ndarray  # float32 rows the tests send
    kind: str  # "classifier" or "regressor"
    _session: ort.InferenceSession | None = field(default=None, repr=False)

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.onnx_model.graph.output]

    def session(self) -> ort.InferenceSession:
        if self._session is None:
            self._session = ort.InferenceSession(
                self.onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
            )
        return self._session

    def predict_raw(self, x: np.ndarray) -> dict:
        """onnxruntime's outputs as Python gives them (ZipMap: list of dicts)."""
        sess = self.session()
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(None, {self.input_name: np.asarray(x, dtype=np.float32)})))

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """onnxruntime's outputs with ZipMap lists turned into [N, n_classes] matrices."""
        return {k: zipmap_to_matrix(v)[0] if is_zipmap(v) else np.asarray(v) for k, v in self.predict_raw(x).items()}

    def class_labels(self, output: str) -> list | None:
        v = self.predict_raw(self.x[:1])[output]
        return zipmap_to_matrix(v)[1] if is_zipmap(v) else None

    def signature(self):
        """An MLflow tensor signature (ZipMap outputs described as FP32 [-1, n_classes])."""
        from mlflow.models.signature import ModelSignature
        from mlflow.types.schema import Schema, TensorSpec

        outs = []
        for name, v in self.predict(self.x[:2]).items():
            shape = (-1,) + tuple(v.shape[1:])
            outs.append(TensorSpec(np.dtype(v.dtype), shape, name))
        return ModelSignature(
            inputs=Schema([TensorSpec(np.dtype("float32"), (-1, self.n_features), self.input_name)]),
            outputs=Schema(outs),
        )


def is_zipmap(v) -> bool:
    return isinstance(v, list) and (len(v) == 0 or isinstance(v[0], dict))


def zipmap_to_matrix(v: list[dict]) -> tuple[np.ndarray, list]:
    labels = sorted(v[0].keys()) if v else []
    return np.array([[row[k] for k in labels] for row in v], dtype=np.float32), labels


def _check_versions(m: onnx.ModelProto) -> onnx.ModelProto:
    onnx.checker.check_model(m)
    assert m.ir_version <= MAX_IR_VERSION, m.ir_version
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            assert o.version <= TARGET_OPSET, o.version
    return m


def iris_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def iris_pipeline() -> BuiltModel:
    """StandardScaler + LogisticRegression on iris, skl2onnx defaults (ZipMap)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris_data()
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=1000, random_state=0))])
    pipe.fit(x, y)
    onx = convert_sklearn(pipe, initial_types=[("float_input", FloatTensorType([None, 4]))], target_opset=TARGET_OPSET)
    return BuiltModel("pipeline", _check_versions(onx), "float_input", x, "classifier")


def rf_classifier() -> BuiltModel:
    """RandomForestClassifier on a synthetic 3-class problem (6 features), skl2onnx defaults."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(
        n_samples=200, n_features=6, n_informative=4, n_classes=3, random_state=1
    )
    x = x.astype(np.float32)
    clf = RandomForestClassifier(n_estimators=12, max_depth=5, random_state=0).fit(x, y)
    onx = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 6]))], target_opset=TARGET_OPSET)
    return BuiltModel("rf_classifier", _check_versions(onx), "input", x, "classifier")


def rf_regressor(seed: int = 0) -> BuiltModel:
    """RandomForestRegressor on make_regression (5 features); ``seed`` changes data and forest."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_regression
    from sklearn.ensemble import RandomForestRegressor

    x, y = make_regression(n_samples=200, n_features=5, noise=0.5, random_state=seed)
    x = x.astype(np.float32)
    reg = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=seed).fit(x, y)
    onx = convert_sklearn(reg, initial_types=[("input", FloatTensorType([None, 5]))], target_opset=TARGET_OPSET)
    return BuiltModel(f"rf_regressor_{seed}", _check_versions(onx), "input", x, "regressor")


def mlp(seed: int = 0, n_in: int = 6, hidden: int = 16, n_out: int = 3, rows: int = 64) -> BuiltModel:
    """features [N, n_in] -> MatMul/Add/Relu -> MatMul/Add -> scores [N, n_out]; weights from ``seed``."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (n_in, hidden)).astype(np.float32)
    b1 = rng.normal(0, 0.1, (hidden,)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (hidden, n_out)).astype(np.float32)
    b2 = rng.normal(0, 0.1, (n_out,)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["features", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h1b"]),
        helper.make_node("Relu", ["h1b"], ["h1r"]),
        helper.make_node("MatMul", ["h1r", "w2"], ["h2"]),
        helper.make_node("Add", ["h2", "b2"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        f"slipway_test_mlp_{seed}",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_out])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(b2, "b2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", TARGET_OPSET)], producer_name="slipway-tests")
    model.ir_version = 8
    x = np.random.default_rng(1000 + seed).normal(0, 1, (rows, n_in)).astype(np.float32)
    return BuiltModel(f"mlp_{seed}", _check_versions(model), "features", x, "regressor")


# --------------------------------------------------------------------------------------------
# Logging, registering, deploying


def log_and_register(built: BuiltModel, registered_name: str, experiment_id: str, tags: dict | None = None) -> str:
    """``mlflow.onnx.log_model(..., registered_model_name=...)`` in a new run; returns the version."""
    import mlflow
    import mlflow.onnx

    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.onnx.log_model(
            built.onnx_model,
            name="model",
            registered_model_name=registered_name,
            signature=built.signature(),
            pip_requirements=PIP_REQUIREMENTS,  # skips MLflow's slow requirement inference
        )
    version = str(info.registered_model_version)
    if tags:
        from mlflow.tracking import MlflowClient

        c = MlflowClient()
        for k, v in tags.items():
            c.set_model_version_tag(registered_name, version, k, v)
    return version


def put_deployment(url: str, token: str, name: str, spec: dict, *, expect_state: str = "ready") -> dict:
    r = requests.put(f"{url}/api/v1/deployments/{name}", json=spec, headers=auth_headers(token), timeout=120)
    assert r.status_code == 200, f"PUT deployment {name} {spec}: HTTP {r.status_code} {r.text[:500]}"
    body = r.json()
    assert body["name"] == name, body
    if expect_state is not None:
        assert body["status"]["state"] == expect_state, body
    return body


def get_deployment(url: str, token: str, name: str) -> dict:
    r = requests.get(f"{url}/api/v1/deployments/{name}", headers=auth_headers(token), timeout=30)
    assert r.status_code == 200, f"GET deployment {name}: HTTP {r.status_code} {r.text[:300]}"
    return r.json()


def delete_deployment(url: str, token: str, name: str) -> None:
    with contextlib.suppress(requests.RequestException):
        requests.delete(f"{url}/api/v1/deployments/{name}", headers=auth_headers(token), timeout=30)


@contextlib.contextmanager
def tracking_at(url: str, token: str):
    """Points the mlflow client (fluent API and new MlflowClient()s) at ``url`` for a while."""
    import mlflow

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN")}
    saved_uri = mlflow.get_tracking_uri()
    saved_reg = mlflow.get_registry_uri()
    os.environ["MLFLOW_TRACKING_URI"] = url
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        mlflow.set_tracking_uri(saved_uri)
        mlflow.set_registry_uri(saved_reg)


# --------------------------------------------------------------------------------------------
# Servers


def start_server_with_demo(
    data_dir: Path | str,
    *,
    admin_token: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
    isolate: bool = True,
) -> ServerProcess:
    """``slipway up`` WITHOUT ``--no-demo`` (so the ``iris`` deployment exists), else like
    ``slipway_testlib.start_server``."""
    return start_server(data_dir, admin_token=admin_token, env=env, timeout=timeout, isolate=isolate, demo=True)


_EXPORT_RE = re.compile(r"^export ([A-Z_][A-Z0-9_]*)=(.*)$")


def start_s3() -> dict[str, str]:
    """Starts a private SeaweedFS with ``scripts/start-s3.sh``; returns the variables it exports."""
    r = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "start-s3.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SLIPWAY_S3_BUCKET": "slipway-serving-test"},
    )
    if r.returncode != 0:
        raise RuntimeError(f"start-s3.sh failed ({r.returncode}):\n{r.stderr[-3000:]}")
    out: dict[str, str] = {}
    for line in r.stdout.splitlines():
        m = _EXPORT_RE.match(line.strip())
        if m:
            vals = shlex.split(m.group(2))
            out[m.group(1)] = vals[0] if vals else ""
    for k in ("SLIPWAY_S3_PID", "SLIPWAY_S3_DIR", "SLIPWAY_S3_ENDPOINT", "SLIPWAY_TEST_S3_BUCKET", "AWS_ACCESS_KEY_ID"):
        if k not in out:
            raise RuntimeError(f"start-s3.sh printed no {k}: {r.stdout!r}")
    return out


def kill_s3(s3: dict[str, str], timeout: float = 10.0) -> None:
    """SIGKILLs the SeaweedFS process that ``start_s3`` started (the store vanishes at once; a
    graceful stop takes ~10 s). Only the pid recorded in the script's own directory is touched."""
    pid = int(s3["SLIPWAY_S3_PID"])
    recorded = Path(s3["SLIPWAY_S3_DIR"], "weed.pid").read_text().strip()
    assert recorded == str(pid), (recorded, pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state == "Z":
            return
        time.sleep(0.05)
    raise RuntimeError(f"SeaweedFS pid {pid} still alive after SIGKILL")


def stop_s3(s3: dict[str, str]) -> None:
    subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "start-s3.sh"), "--stop", s3["SLIPWAY_S3_PID"], s3["SLIPWAY_S3_DIR"]],
        capture_output=True,
        timeout=60,
    )


def s3_server_env(s3: dict[str, str], prefix: str) -> dict[str, str]:
    """Environment for a Slipway server whose artifact root is in the private SeaweedFS."""
    env = {k: s3[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION",
                              "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "SLIPWAY_S3_ENDPOINT") if k in s3}
    env["SLIPWAY_ARTIFACT_ROOT"] = f"s3://{s3['SLIPWAY_TEST_S3_BUCKET']}/{prefix}"
    return env


# --------------------------------------------------------------------------------------------
# V2 protocol by hand


def v2_json_body(inputs: list[tuple[str, np.ndarray]], outputs: list[str] | None = None) -> dict:
    body = {
        "inputs": [
            {"name": n, "shape": list(a.shape), "datatype": NP_TO_V2[a.dtype], "data": a.reshape(-1).tolist()}
            for n, a in inputs
        ]
    }
    if outputs is not None:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


def v2_binary_body(
    inputs: list[tuple[str, np.ndarray]], outputs: list[str] | None = None, binary_outputs: bool = True
) -> tuple[bytes, dict[str, str]]:
    """A binary-tensor-extension request: JSON header + raw little-endian tensors."""
    header: dict = {"inputs": []}
    raws = []
    for n, a in inputs:
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header["inputs"].append(
            {"name": n, "shape": list(a.shape), "datatype": NP_TO_V2[a.dtype], "parameters": {"binary_data_size": len(raw)}}
        )
        raws.append(raw)
    if outputs is not None:
        header["outputs"] = [{"name": o, "parameters": {"binary_data": binary_outputs}} for o in outputs]
    else:
        header["parameters"] = {"binary_data_output": binary_outputs}
    hb = json.dumps(header).encode()
    return hb + b"".join(raws), {
        "Inference-Header-Content-Length": str(len(hb)),
        "Content-Type": "application/octet-stream",
    }


@dataclass
class V2Result:
    status: int
    headers: dict
    body: dict
    arrays: dict[str, np.ndarray]
    params: dict[str, dict]

    @property
    def version(self) -> str | None:
        return self.headers.get("x-slipway-model-version")


def parse_v2_response(r: requests.Response) -> V2Result:
    headers = {k.lower(): v for k, v in r.headers.items()}
    content = r.content
    hlen = headers.get("inference-header-content-length")
    if r.status_code != 200:
        try:
            body = r.json()
        except ValueError:
            body = {"raw": content[:500]}
        return V2Result(r.status_code, headers, body, {}, {})
    n = int(hlen) if hlen is not None else len(content)
    body = json.loads(content[:n])
    arrays, params = {}, {}
    offset = n
    for out in body.get("outputs", []):
        p = dict(out.get("parameters") or {})
        dt = out["datatype"]
        shape = out["shape"]
        if "binary_data_size" in p:
            size = int(p["binary_data_size"])
            raw = content[offset: offset + size]
            assert len(raw) == size, f"response binary data for {out['name']} is short: {len(raw)} < {size}"
            offset += size
            arr = np.frombuffer(raw, dtype=V2_TO_NP[dt].newbyteorder("<")).reshape(shape)
        else:
            arr = np.array(out["data"], dtype=V2_TO_NP[dt]).reshape(shape)
        arrays[out["name"]] = arr
        params[out["name"]] = p
    assert offset == len(content), f"response has {len(content) - offset} unexplained trailing bytes"
    return V2Result(r.status_code, headers, body, arrays, params)


def v2_infer(
    session: requests.Session | None,
    url: str,
    model: str,
    inputs: list[tuple[str, np.ndarray]],
    *,
    binary: bool = False,
    outputs: list[str] | None = None,
    token: str | None = None,
    version: str | None = None,
    timeout: float = 60,
) -> V2Result:
    s = session or requests
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    headers = auth_headers(token) if token else {}
    if binary:
        body, h = v2_binary_body(inputs, outputs)
        r = s.post(url + path, data=body, headers={**headers, **h}, timeout=timeout)
    else:
        r = s.post(url + path, json=v2_json_body(inputs, outputs), headers=headers, timeout=timeout)
    return parse_v2_response(r)


def invocations(url: str, token: str, name: str, payload, content_type: str = "application/json", session=None):
    s = session or requests
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return s.post(
        f"{url}/api/v1/deployments/{name}/invocations",
        data=data,
        headers={**auth_headers(token), "Content-Type": content_type},
        timeout=60,
    )


def assert_close(actual, expected, *, what: str, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    if not np.allclose(a, e, rtol=rtol, atol=atol):
        diff = np.abs(a - e)
        i = np.unravel_index(np.argmax(diff), diff.shape)
        raise AssertionError(f"{what}: max |diff| {diff[i]:.3g} at {i}: got {a[i]!r}, onnxruntime {e[i]!r}")


def assert_exact(actual, expected, *, what: str) -> None:
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    bad = np.flatnonzero(a.reshape(-1) != e.reshape(-1))
    assert bad.size == 0, f"{what}: {bad.size} values differ, first at flat index {bad[0]}: {a.reshape(-1)[bad[0]]} != {e.reshape(-1)[bad[0]]}"


def wait_until(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls ``predicate`` until it returns a truthy value (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)

