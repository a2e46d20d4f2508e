"""Bad V2 / scoring requests get the documented 4xx with an ``{"error": ...}`` body, and the
deployment keeps serving: a good request after each bad one must succeed with onnxruntime's
answer.

The model is the onnx.helper MLP (input ``features`` FP32 [N, 6], output ``scores``), deployed
with ``max_batch_size=8``. Oversize bodies use a private server with a small
SLIPWAY_MAX_JSON_BODY_BYTES (and its demo ``iris`` deployment).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

import serving_models as sm
from slipway_testlib import new_admin_token, uniq

pytestmark = pytest.mark.slipway

N_FEATURES = 6
MAX_BATCH = 8


@pytest.fixture(scope="module")
def mlp_deployment(tracking):
    """(deployment name, BuiltModel): the MLP as version 1 of a new registered model, alias
    champion, deployed by alias with max_batch_size=8."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url)
    built = sm.mlp(seed=3, n_in=N_FEATURES)
    exp = client.create_experiment(uniq("serving-bad"))
    registered = uniq("srv-bad-mlp")
    version = sm.log_and_register(built, registered, exp)
    client.set_registered_model_alias(registered, "champion", version)
    name = uniq("bad-inputs")
    body = sm.put_deployment(
        tracking.url, tracking.token, name, {"model": registered, "alias": "champion", "max_batch_size": MAX_BATCH}
    )
    assert body["spec"]["max_batch_size"] == MAX_BATCH, body
    yield name, built
    sm.delete_deployment(tracking.url, tracking.token, name)


def _row(n: int = 1) -> np.ndarray:
    return np.arange(n * N_FEATURES, dtype=np.float32).reshape(n, N_FEATURES) / 10.0


def _json_case(inputs: list[dict], outputs=None) -> tuple[bytes, dict]:
    body = {"inputs": inputs}
    if outputs is not None:
        body["outputs"] = outputs
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def _inp(name="features", shape=(1, N_FEATURES), datatype="FP32", data=None):
    if data is None:
        data = _row().reshape(-1).tolist()
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": data}


def _binary_case(raw: bytes, *, shape=(1, N_FEATURES), declared: int | None = None, header_len_delta: int = 0):
    header = {
        "inputs": [
            {
                "name": "features",
                "shape": list(shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw) if declared is None else declared},
            }
        ]
    }
    hb = json.dumps(header).encode()
    return hb + raw, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(hb) + header_len_delta),
    }


def _f32(values) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


ROW = _row().reshape(-1)
NAN_ROW = ROW.copy()
NAN_ROW[2] = np.nan
INF_ROW = ROW.copy()
INF_ROW[4] = np.inf
NEG_INF_ROW = ROW.copy()
NEG_INF_ROW[0] = -np.inf

CASES = {
    # name: (body, headers, expected status)
    "unknown-input-name": (*_json_case([_inp(name="nope")]), 400),
    "extra-unknown-input": (*_json_case([_inp(), _inp(name="extra")]), 400),
    "no-inputs": (*_json_case([]), 400),
    "dtype-bytes": (*_json_case([_inp(datatype="BYTES", data=[str(v) for v in ROW])]), 400),
    "dtype-bool": (*_json_case([_inp(datatype="BOOL", data=[True, False, True, False, True, False])]), 400),
    "shape-too-few-features": (*_json_case([_inp(shape=(1, 5), data=ROW[:5].tolist())]), 400),
    "shape-too-many-features": (*_json_case([_inp(shape=(1, 7), data=ROW.tolist() + [0.5])]), 400),
    "shape-wrong-rank": (*_json_case([_inp(shape=(N_FEATURES,))]), 400),
    "shape-same-count-wrong-dims": (*_json_case([_inp(shape=(2, 3))]), 400),
    "shape-disagrees-with-data": (*_json_case([_inp(data=ROW[:5].tolist())]), 400),
    "nan-binary": (*_binary_case(_f32(NAN_ROW)), 400),
    "nan-json-literal": (
        b'{"inputs":[{"name":"features","shape":[1,6],"datatype":"FP32","data":[0.0,0.1,NaN,0.3,0.4,0.5]}]}',
        {"Content-Type": "application/json"},
        400,
    ),
    "pos-inf-binary": (*_binary_case(_f32(INF_ROW)), 400),
    "neg-inf-binary": (*_binary_case(_f32(NEG_INF_ROW)), 400),
    "pos-inf-json-overflow": (
        b'{"inputs":[{"name":"features","shape":[1,6],"datatype":"FP32","data":[0.0,0.1,0.2,0.3,1e39,0.5]}]}',
        {"Content-Type": "application/json"},
        400,
    ),
    "string-in-numeric-tensor": (*_json_case([_inp(data=[0.0, "abc", 0.2, 0.3, 0.4, 0.5])]), 400),
    "null-in-numeric-tensor": (*_json_case([_inp(data=[0.0, None, 0.2, 0.3, 0.4, 0.5])]), 400),
    "batch-over-max-batch-size": (
        *_json_case([_inp(shape=(MAX_BATCH + 1, N_FEATURES), data=_row(MAX_BATCH + 1).reshape(-1).tolist())]),
        400,
    ),
    "binary-batch-over-max-batch-size": (*_binary_case(_f32(_row(MAX_BATCH + 1)), shape=(MAX_BATCH + 1, N_FEATURES)), 400),
    "truncated-binary": (*_binary_case(_f32(ROW)[:-4], declared=24), 400),
    "binary-size-disagrees-with-shape": (*_binary_case(_f32(ROW)[:-4], declared=20), 400),
    "binary-size-smaller-than-body": (*_binary_case(_f32(ROW) + b"\0\0\0\0", declared=24), 400),
    "binary-size-larger-than-body": (*_binary_case(_f32(ROW), declared=28), 400),
    "header-length-beyond-body": (*_binary_case(_f32(ROW), header_len_delta=10_000), 400),
    "header-length-not-a-number": (
        _binary_case(_f32(ROW))[0],
        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "twelve"},
        400,
    ),
    "malformed-json": (b'{"inputs": [', {"Content-Type": "application/json"}, 400),
    "unknown-requested-output": (*_json_case([_inp()], outputs=[{"name": "nope"}]), 400),
}


def _good_request(url: str, token: str, name: str, built: sm.BuiltModel) -> None:
    x = _row(2)
    res = sm.v2_infer(None, url, name, [("features", x)], token=token)
    assert res.status == 200, f"good request after a bad one failed: HTTP {res.status} {res.body}"
    sm.assert_close(res.arrays["scores"], built.predict(x)["scores"], what="good request")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_v2_request_is_4xx_and_server_keeps_serving(tracking, mlp_deployment, case):
    name, built = mlp_deployment
    body, headers, expected = CASES[case]
    r = requests.post(
        tracking.api(f"/v2/models/{name}/infer"), data=body, headers={**tracking.headers(), **headers}, timeout=30
    )
    assert r.status_code == expected, f"{case}: HTTP {r.status_code} (wanted {expected}): {r.text[:300]}"
    err = r.json()
    assert isinstance(err.get("error"), str) and err["error"], f"{case}: error body {err}"
    _good_request(tracking.url, tracking.token, name, built)


def test_batch_at_the_limit_is_served(tracking, mlp_deployment):
    name, built = mlp_deployment
    x = _row(MAX_BATCH)
    for binary in (False, True):
        res = sm.v2_infer(None, tracking.url, name, [("features", x)], token=tracking.token, binary=binary)
        assert res.status == 200, res.body
        sm.assert_close(res.arrays["scores"], built.predict(x)["scores"], what=f"batch of {MAX_BATCH}")
    r = sm.invocations(tracking.url, tracking.token, name, {"inputs": _row(MAX_BATCH + 1).tolist()})
    assert r.status_code == 400, r.text
    assert r.json().get("error_code") == "BAD_REQUEST", r.text


def test_unknown_model_and_version_are_404(tracking, mlp_deployment):
    name, built = mlp_deployment
    body, headers = _json_case([_inp()])
    for path in (f"/v2/models/no-such-{uniq()}/infer", f"/v2/models/{name}/versions/99/infer"):
        r = requests.post(tracking.api(path), data=body, headers={**tracking.headers(), **headers}, timeout=30)
        assert r.status_code == 404, f"{path}: HTTP {r.status_code} {r.text[:200]}"
        assert "error" in r.json()
    r = requests.get(tracking.api(f"/v2/models/no-such-{uniq()}"), headers=tracking.headers(), timeout=30)
    assert r.status_code == 404, r.text
    _good_request(tracking.url, tracking.token, name, built)


def test_bad_scoring_requests(tracking, mlp_deployment):
    name, built = mlp_deployment
    cases = [
        ({"inputs": [[1.0, 2.0]]}, "application/json"),
        ({"inputs": [[1.0, "x", 2.0, 3.0, 4.0, 5.0]]}, "application/json"),
        ({"no_such_format": [[1.0] * 6]}, "application/json"),
        ("{not json", "application/json"),
        ("a,b\n1,2\n", "text/csv"),
    ]
    for payload, ctype in cases:
        r = sm.invocations(tracking.url, tracking.token, name, payload, ctype)
        assert 400 <= r.status_code < 500, f"{payload!r}: HTTP {r.status_code} {r.text[:200]}"
        body = r.json()
        assert body.get("error_code") and body.get("message"), body
        _good_request(tracking.url, tracking.token, name, built)


def test_nan_and_inf_allowed_by_version_tags(tracking):
    """Versions tagged slipway.allow_nan / slipway.allow_inf = true accept them (and answer what
    onnxruntime answers, NaN included)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url)
    built = sm.mlp(seed=4, n_in=N_FEATURES)
    exp = client.create_experiment(uniq("serving-nan"))
    registered = uniq("srv-nan-mlp")
    version = sm.log_and_register(
        built, registered, exp, tags={"slipway.allow_nan": "true", "slipway.allow_inf": "true"}
    )
    name = uniq("nan-ok")
    sm.put_deployment(tracking.url, tracking.token, name, {"model": registered, "version": version})
    try:
        x = np.stack([NAN_ROW, INF_ROW, ROW]).astype(np.float32)
        expected = built.predict(x)["scores"]
        for binary in (False, True):
            if not binary:
                # JSON cannot carry NaN/inf in standard syntax; send the finite row only.
                res = sm.v2_infer(None, tracking.url, name, [("features", x[2:])], token=tracking.token)
                assert res.status == 200, res.body
                sm.assert_close(res.arrays["scores"], expected[2:], what="finite row")
                continue
            res = sm.v2_infer(None, tracking.url, name, [("features", x)], token=tracking.token, binary=True)
            assert res.status == 200, f"NaN/inf with allow tags: HTTP {res.status} {res.body}"
            got = res.arrays["scores"]
            assert np.array_equal(np.isnan(got), np.isnan(expected)), (got, expected)
            assert np.allclose(got, expected, rtol=1e-6, atol=1e-6, equal_nan=True), (got, expected)
    finally:
        sm.delete_deployment(tracking.url, tracking.token, name)


def test_oversize_body_is_413(tmp_path):
    limit = 1024  # the smallest allowed
    token = new_admin_token()
    server = sm.start_server_with_demo(tmp_path / "data", admin_token=token, env={"SLIPWAY_MAX_JSON_BODY_BYTES": str(limit)})
    try:
        url = server.url
        h = {"Authorization": f"Bearer {token}"}
        x, _ = sm.iris_data()
        big = x[:60]
        small = x[:1]
        json_body = json.dumps(sm.v2_json_body([("float_input", big)])).encode()
        bin_body, bin_headers = sm.v2_binary_body([("float_input", big)])  # 960 bytes of tensor + header
        assert len(json_body) > limit and len(bin_body) > limit
        for what, body, headers in (
            ("json", json_body, {"Content-Type": "application/json"}),
            ("binary", bin_body, bin_headers),
        ):
            r = requests.post(f"{url}/v2/models/iris/infer", data=body, headers={**h, **headers}, timeout=30)
            assert r.status_code == 413, f"{what}: HTTP {r.status_code} {r.text[:200]}"
            assert "error" in r.json(), r.text
            ok = sm.v2_infer(None, url, "iris", [("float_input", small)], token=token)
            assert ok.status == 200 and ok.arrays["output_label"].tolist() == [0], ok.body
        r = sm.invocations(url, token, "iris", {"inputs": big.tolist()})
        assert r.status_code == 413, r.text
        assert r.json().get("error_code") == "REQUEST_LIMIT_EXCEEDED", r.text
        # Chunked upload (no Content-Length) is limited too.
        r = requests.post(
            f"{url}/v2/models/iris/infer",
            data=iter([json_body[:1000], json_body[1000:]]),
            headers={**h, "Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 413, f"chunked: HTTP {r.status_code} {r.text[:200]}"
        ok = sm.v2_infer(None, url, "iris", [("float_input", small)], token=token, binary=True)
        assert ok.status == 200 and ok.arrays["output_label"].tolist() == [0], ok.body
    finally:
        server.stop()
