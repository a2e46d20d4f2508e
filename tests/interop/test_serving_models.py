"""Models built here, logged with ``mlflow.onnx.log_model``, aliased and deployed by alias, then
served over V2 (JSON and the binary tensor extension) and the MLflow scoring protocol.

Models (``serving_models``): sklearn pipeline StandardScaler + LogisticRegression (skl2onnx
defaults, ZipMap), RandomForestClassifier (ZipMap), RandomForestRegressor, and an MLP built with
onnx.helper (dynamic batch dimension, opset 17, IR 8).

References: onnxruntime's Python API on the same ONNX bytes (V2), and MLflow's own scoring server
code (``mlflow.pyfunc.scoring_server.invocations`` on the pyfunc model, i.e. what
``mlflow models serve`` answers) for the scoring protocol. Labels must be equal, floats within
1e-6 (relative or absolute).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import requests

import serving_models as sm
from slipway_testlib import uniq

pytestmark = pytest.mark.slipway

MODEL_KEYS = ["pipeline", "rf_classifier", "rf_regressor", "mlp"]
BATCH = 50


def _build(key: str) -> sm.BuiltModel:
    return {
        "pipeline": sm.iris_pipeline,
        "rf_classifier": sm.rf_classifier,
        "rf_regressor": lambda: sm.rf_regressor(0),
        "mlp": lambda: sm.mlp(0),
    }[key]()


class Deployed:
    def __init__(self, key: str, built: sm.BuiltModel, registered: str, deployment: str, version: str):
        self.key = key
        self.built = built
        self.registered = registered
        self.deployment = deployment
        self.version = version


@pytest.fixture(scope="module")
def deployed(tracking):
    """Every model logged, registered (version 1), aliased ``champion`` and deployed by alias."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url)
    exp = client.create_experiment(uniq("serving-models"))
    out: dict[str, Deployed] = {}
    for key in MODEL_KEYS:
        built = _build(key)
        registered = uniq(f"srv-{key}")
        version = sm.log_and_register(built, registered, exp)
        assert version == "1"
        client.set_registered_model_alias(registered, "champion", version)
        dep = uniq(key.replace("_", "-"))
        body = sm.put_deployment(tracking.url, tracking.token, dep, {"model": registered, "alias": "champion"})
        assert body["spec"]["alias"] == "champion" and body["spec"]["model"] == registered, body
        assert body["status"]["serving_version"] == "1", body
        out[key] = Deployed(key, built, registered, dep, version)
    yield out
    for d in out.values():
        sm.delete_deployment(tracking.url, tracking.token, d.deployment)


@pytest.fixture(params=MODEL_KEYS)
def model(request, deployed) -> Deployed:
    return deployed[request.param]


def _batches(x: np.ndarray):
    for i in range(0, len(x), BATCH):
        yield i, x[i: i + BATCH]


def _check_v2_outputs(d: Deployed, res: sm.V2Result, xb: np.ndarray, what: str) -> None:
    assert res.status == 200, f"{what}: HTTP {res.status} {res.body}"
    assert res.version == d.version, f"{what}: x-slipway-model-version {res.version!r}"
    assert res.body.get("model_name") == d.deployment and res.body.get("model_version") == d.version, res.body
    expected = d.built.predict(xb)
    assert set(res.arrays) == set(expected), f"{what}: outputs {sorted(res.arrays)} != {sorted(expected)}"
    for name, exp in expected.items():
        got = res.arrays[name]
        if np.issubdtype(exp.dtype, np.integer):
            assert got.dtype == np.int64, f"{what}: {name} dtype {got.dtype}"
            sm.assert_exact(got, exp, what=f"{what} {name}")
        else:
            assert got.dtype == np.float32, f"{what}: {name} dtype {got.dtype}"
            sm.assert_close(got, exp, what=f"{what} {name}")
        labels = d.built.class_labels(name)
        if labels is not None:
            assert res.params[name].get("class_labels") == labels, f"{what}: {name} parameters {res.params[name]}"


def test_deployment_status_and_metadata(tracking, model):
    d = model
    body = sm.get_deployment(tracking.url, tracking.token, d.deployment)
    assert body["status"]["state"] == "ready", body
    assert body["status"]["serving_version"] == "1" and body["status"]["target_version"] == "1", body
    assert body["status"]["error"] is None, body
    listed = requests.get(tracking.api("/api/v1/deployments"), headers=tracking.headers(), timeout=30).json()
    assert d.deployment in [x["name"] for x in listed["deployments"]]

    r = requests.get(tracking.api(f"/v2/models/{d.deployment}"), headers=tracking.headers(), timeout=30)
    assert r.status_code == 200, r.text
    md = r.json()
    assert md["versions"] == ["1"]
    assert md["inputs"] == [{"name": d.built.input_name, "datatype": "FP32", "shape": [-1, d.built.n_features]}]
    assert {o["name"] for o in md["outputs"]} == set(d.built.output_names)
    r = requests.get(tracking.api(f"/v2/models/{d.deployment}/ready"), headers=tracking.headers(), timeout=30)
    assert r.status_code == 200 and r.json()["ready"] is True, r.text


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_v2_predictions_equal_onnxruntime(tracking, model, binary):
    d = model
    s = requests.Session()
    s.headers.update(tracking.headers())
    try:
        for i, xb in _batches(d.built.x):
            res = sm.v2_infer(s, tracking.url, d.deployment, [(d.built.input_name, xb)], binary=binary)
            _check_v2_outputs(d, res, xb, f"{d.built.key} {'binary' if binary else 'json'} rows {i}..")
            if binary:
                assert res.headers.get("inference-header-content-length"), res.headers
        # A single row, an explicit version path, and a requested subset of outputs.
        xb = d.built.x[3:4]
        res = sm.v2_infer(s, tracking.url, d.deployment, [(d.built.input_name, xb)], binary=binary, version="1")
        _check_v2_outputs(d, res, xb, f"{d.built.key} versions/1")
        first = d.built.output_names[0]
        res = sm.v2_infer(s, tracking.url, d.deployment, [(d.built.input_name, xb)], binary=binary, outputs=[first])
        assert res.status == 200, res.body
        assert list(res.arrays) == [first], res.body
        res = sm.v2_infer(s, tracking.url, d.deployment, [(d.built.input_name, xb)], binary=binary, version="2")
        assert res.status == 404, res.body
        assert "error" in res.body, res.body
    finally:
        s.close()


# --------------------------------------------------------------------------------------------
# MLflow scoring protocol


@pytest.fixture(scope="module")
def mlflow_pyfunc(deployed, tmp_path_factory):
    """MLflow's own pyfunc model for each built model (what ``mlflow models serve`` would load)."""
    import mlflow.onnx
    import mlflow.pyfunc

    out = {}
    base = tmp_path_factory.mktemp("pyfunc")
    for key, d in deployed.items():
        path = base / key
        mlflow.onnx.save_model(
            d.built.onnx_model, str(path), signature=d.built.signature(), pip_requirements=sm.PIP_REQUIREMENTS
        )
        out[key] = mlflow.pyfunc.load_model(str(path))
    return out


def _mlflow_reference(pyfunc_model, payload: dict) -> dict:
    """The JSON MLflow's scoring server answers for ``payload``."""
    import mlflow.pyfunc.scoring_server as ss

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    r = ss.invocations(json.dumps(payload), "application/json", pyfunc_model, pyfunc_model.metadata.get_input_schema())
    assert r.status == 200, f"MLflow itself rejects {payload}: {r.response}"
    return json.loads(r.response)


def _assert_json_close(got, exp, path="$"):
    """Same structure; ints/bools/strings equal; floats within 1e-6 (absolute or relative)."""
    if isinstance(exp, dict):
        assert isinstance(got, dict), f"{path}: {type(got).__name__} where MLflow has an object"
        assert set(got) == set(exp), f"{path}: keys {sorted(got)} != MLflow's {sorted(exp)}"
        for k in exp:
            _assert_json_close(got[k], exp[k], f"{path}.{k}")
    elif isinstance(exp, list):
        assert isinstance(got, list), f"{path}: {type(got).__name__} where MLflow has a list"
        assert len(got) == len(exp), f"{path}: length {len(got)} != MLflow's {len(exp)}"
        for i, (g, e) in enumerate(zip(got, exp)):
            _assert_json_close(g, e, f"{path}[{i}]")
    elif isinstance(exp, bool) or isinstance(exp, str) or exp is None:
        assert got == exp, f"{path}: {got!r} != MLflow's {exp!r}"
    elif isinstance(exp, int):
        assert isinstance(got, int) and not isinstance(got, bool) and got == exp, f"{path}: {got!r} != MLflow's {exp!r}"
    else:
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{path}: {got!r} is not a number"
        assert abs(got - exp) <= 1e-6 * max(1.0, abs(exp)), f"{path}: {got!r} vs MLflow's {exp!r}"


def _payloads(built: sm.BuiltModel, rows: np.ndarray) -> dict[str, dict]:
    x = rows.tolist()
    return {
        "inputs-list": {"inputs": x},
        "inputs-named": {"inputs": {built.input_name: x}},
        "instances": {"instances": x},
    }


def test_scoring_protocol_equals_mlflow(tracking, model, mlflow_pyfunc):
    """`inputs` (list and named) and `instances` answer exactly what MLflow's scoring server does."""
    d = model
    pyfunc_model = mlflow_pyfunc[d.key]
    for i, xb in _batches(d.built.x):
        for fmt, payload in _payloads(d.built, xb).items():
            r = sm.invocations(tracking.url, tracking.token, d.deployment, payload)
            assert r.status_code == 200, f"{fmt}: HTTP {r.status_code} {r.text[:300]}"
            assert r.headers.get("x-slipway-model-version") == "1"
            _assert_json_close(r.json(), _mlflow_reference(pyfunc_model, payload), f"{d.built.key} {fmt} rows {i}..")


def test_scoring_dataframe_and_csv_equal_onnxruntime(tracking, model):
    """Column-per-feature dataframe_split / dataframe_records / CSV (a Slipway convenience for
    single-tensor models): one record per row with every output, equal to onnxruntime's."""
    d = model
    xb = d.built.x[:20]
    cols = [f"f{i}" for i in range(d.built.n_features)]
    expected = d.built.predict(xb)
    raw = d.built.predict_raw(xb)
    csv = ",".join(cols) + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in xb) + "\n"
    requests_ = {
        "dataframe_split": ({"dataframe_split": {"columns": cols, "data": xb.tolist()}}, "application/json"),
        "dataframe_records": ({"dataframe_records": [dict(zip(cols, map(float, row))) for row in xb]}, "application/json"),
        "csv": (csv, "text/csv"),
    }
    for fmt, (payload, ctype) in requests_.items():
        r = sm.invocations(tracking.url, tracking.token, d.deployment, payload, ctype)
        assert r.status_code == 200, f"{fmt}: HTTP {r.status_code} {r.text[:300]}"
        preds = r.json()["predictions"]
        assert isinstance(preds, list) and len(preds) == len(xb), f"{fmt}: {str(preds)[:300]}"
        for name, exp in expected.items():
            col = [rec[name] for rec in preds]
            if sm.is_zipmap(raw[name]):
                labels = d.built.class_labels(name)
                assert all(set(c) == {str(k) for k in labels} for c in col), f"{fmt}: {name} keys {col[0]}"
                got = np.array([[c[str(k)] for k in labels] for c in col])
                sm.assert_close(got, exp, what=f"{d.built.key} {fmt} {name}")
            elif np.issubdtype(exp.dtype, np.integer):
                sm.assert_exact(np.array(col), exp, what=f"{d.built.key} {fmt} {name}")
            else:
                sm.assert_close(np.array(col, dtype=np.float64).reshape(exp.shape), exp, what=f"{d.built.key} {fmt} {name}")


def test_scoring_dataframe_split_tensor_column_like_mlflow(tracking, deployed, mlflow_pyfunc):
    """MLflow accepts a dataframe_split whose single column is named after the tensor input and
    holds one array per row (``{"columns": ["float_input"], "data": [[[5.1, ...]], ...]}``)."""
    d = deployed["pipeline"]
    xb = d.built.x[:5]
    payload = {"dataframe_split": {"columns": [d.built.input_name], "data": [[row] for row in xb.tolist()]}}
    r = sm.invocations(tracking.url, tracking.token, d.deployment, payload)
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]} (MLflow answers 200)"
    _assert_json_close(r.json(), _mlflow_reference(mlflow_pyfunc["pipeline"], payload))


def test_scoring_errors_are_mlflow_shaped(tracking, deployed):
    d = deployed["mlp"]
    r = sm.invocations(tracking.url, tracking.token, d.deployment, {"inputs": [[1.0, 2.0]]})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body.get("error_code") == "BAD_REQUEST" and body.get("message"), body
    r = sm.invocations(tracking.url, tracking.token, "no-such-deployment-" + uniq(), {"inputs": [[1.0] * 6]})
    assert r.status_code == 404, r.text
    assert r.json().get("error_code") == "RESOURCE_DOES_NOT_EXIST", r.text
    r = sm.invocations(tracking.url, tracking.token, d.deployment, {"inputs": d.built.x[:2].tolist()})
    assert r.status_code == 200, r.text
