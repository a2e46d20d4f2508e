"""Authentication and scopes (Slipway-specific: reference MLflow has no auth by default)."""

from __future__ import annotations

import json

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from slipway_testlib import (
    ARTIFACTS_API,
    MLFLOW_API,
    artifact_proxy_path,
    assert_mlflow_error,
    create_token,
    uniq,
)

pytestmark = pytest.mark.slipway

RUN0 = "0" * 32

# (method, path, json body or None); a sample across tracking, registry, logged models,
# artifacts, the token API and model serving.
PROTECTED = [
    ("GET", MLFLOW_API + "/experiments/search?max_results=1", None),
    ("POST", MLFLOW_API + "/experiments/search", {"max_results": 1}),
    ("GET", MLFLOW_API + "/experiments/get?experiment_id=0", None),
    ("GET", MLFLOW_API + "/experiments/get-by-name?experiment_name=Default", None),
    ("POST", MLFLOW_API + "/experiments/create", {"name": "unauth-should-not-exist"}),
    ("POST", MLFLOW_API + "/runs/create", {"experiment_id": "0"}),
    ("GET", MLFLOW_API + f"/runs/get?run_id={RUN0}", None),
    ("POST", MLFLOW_API + "/runs/search", {"experiment_ids": ["0"]}),
    ("POST", MLFLOW_API + "/runs/log-batch", {"run_id": RUN0, "metrics": []}),
    ("GET", MLFLOW_API + f"/metrics/get-history?run_id={RUN0}&metric_key=m", None),
    ("GET", MLFLOW_API + "/registered-models/search", None),
    ("POST", MLFLOW_API + "/registered-models/create", {"name": "unauth-should-not-exist"}),
    ("GET", MLFLOW_API + "/model-versions/search", None),
    ("GET", MLFLOW_API + "/registered-models/alias?name=x&alias=y", None),
    ("POST", MLFLOW_API + "/logged-models", {"experiment_id": "0"}),
    ("GET", ARTIFACTS_API + "?path=0", None),
    ("GET", ARTIFACTS_API + f"/0/{RUN0}/artifacts/x.txt", None),
    ("PUT", ARTIFACTS_API + f"/0/{RUN0}/artifacts/x.txt", b"data"),
    ("POST", "/api/v1/tokens", {"name": "unauth", "scopes": ["admin"]}),
    ("GET", "/v2/models", None),
    ("GET", "/v2/models/does-not-exist", None),
    ("POST", "/v2/models/does-not-exist/infer", {"inputs": []}),
]


def _send(target, method, path, body, headers=None, auth=None):
    kw = {"headers": dict(headers or {}), "auth": auth, "timeout": 30}
    if isinstance(body, bytes):
        kw["data"] = body
    elif body is not None:
        kw["json"] = body
    return requests.request(method, target.url + path, **kw)


@pytest.mark.parametrize("method,path,body", PROTECTED, ids=[f"{m} {p.split('?')[0]}" for m, p, _ in PROTECTED])
def test_no_token_is_401(target, method, path, body):
    r = _send(target, method, path, body)
    assert r.status_code == 401, f"{method} {path}: HTTP {r.status_code} {r.text[:200]}"
    if path.startswith("/api/2.0/"):
        assert_mlflow_error(r.status_code, r.content, expect_code="UNAUTHENTICATED", where=path)


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-real-token", "Bearer ", "Token abc", "Basic " + "eDp3cm9uZw==", "bearer"],
    ids=["wrong-token", "empty-bearer", "other-scheme", "basic-wrong-password", "scheme-only"],
)
def test_bad_credentials_are_401(target, header):
    r = requests.post(target.url + MLFLOW_API + "/experiments/search", json={"max_results": 1}, headers={"Authorization": header}, timeout=30)
    assert r.status_code == 401, r.text[:200]
    assert_mlflow_error(r.status_code, r.content, expect_code="UNAUTHENTICATED")


def test_health_needs_no_token(target):
    for path in ("/health/live", "/health/ready"):
        r = requests.get(target.url + path, timeout=30)
        assert r.status_code == 200, (path, r.status_code)


def test_unauthenticated_write_had_no_effect(target, http):
    for m, p, b in PROTECTED:
        if m == "POST" and p.endswith("/experiments/create"):
            _send(target, m, p, b)
    r = http.get(target.url + MLFLOW_API + "/experiments/get-by-name", params={"experiment_name": "unauth-should-not-exist"})
    assert r.status_code == 404


@pytest.fixture(scope="module")
def read_token(target):
    return create_token(target.url, target.token, ["read"], name=uniq("reader"))


@pytest.fixture(scope="module")
def write_token(target):
    return create_token(target.url, target.token, ["read", "write"], name=uniq("writer"))


@pytest.fixture(scope="module")
def seeded_run(target):
    """An experiment and run with an artifact, made with the admin token."""
    h = target.headers()
    exp_id = requests.post(target.url + MLFLOW_API + "/experiments/create", json={"name": uniq("auth")}, headers=h, timeout=30).json()[
        "experiment_id"
    ]
    run = requests.post(target.url + MLFLOW_API + "/runs/create", json={"experiment_id": exp_id}, headers=h, timeout=30).json()["run"]
    art = artifact_proxy_path(run["info"]["artifact_uri"])
    r = requests.put(target.url + art + "/hello.txt", data=b"hello", headers=h, timeout=30)
    assert r.status_code == 200, r.text
    return exp_id, run["info"]["run_id"], art


def test_read_token_can_read(target, read_token, seeded_run):
    exp_id, run_id, art = seeded_run
    h = {"Authorization": f"Bearer {read_token}"}
    for method, path, body in [
        ("GET", MLFLOW_API + f"/experiments/get?experiment_id={exp_id}", None),
        ("GET", MLFLOW_API + f"/runs/get?run_id={run_id}", None),
        # Searches are POSTs in the mlflow client but they are reads.
        ("POST", MLFLOW_API + "/experiments/search", {"max_results": 5}),
        ("POST", MLFLOW_API + "/runs/search", {"experiment_ids": [exp_id]}),
        ("GET", MLFLOW_API + "/registered-models/search", None),
        ("GET", art + "/hello.txt", None),
        ("GET", ARTIFACTS_API + "?path=" + art[len(ARTIFACTS_API) + 1 :], None),
    ]:
        r = _send(target, method, path, body, headers=h)
        assert r.status_code == 200, f"{method} {path}: HTTP {r.status_code} {r.text[:200]}"
    assert requests.get(target.url + art + "/hello.txt", headers=h, timeout=30).content == b"hello"


def test_read_token_cannot_write(target, read_token, seeded_run):
    exp_id, run_id, art = seeded_run
    h = {"Authorization": f"Bearer {read_token}"}
    for method, path, body in [
        ("POST", MLFLOW_API + "/experiments/create", {"name": uniq("ro")}),
        ("POST", MLFLOW_API + "/runs/create", {"experiment_id": exp_id}),
        ("POST", MLFLOW_API + "/runs/log-batch", {"run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": 0}]}),
        ("POST", MLFLOW_API + "/runs/delete", {"run_id": run_id}),
        ("POST", MLFLOW_API + "/registered-models/create", {"name": uniq("ro")}),
        ("PUT", art + "/ro.txt", b"nope"),
        ("DELETE", art + "/hello.txt", None),
        ("POST", "/api/v1/tokens", {"name": uniq("ro"), "scopes": ["read"]}),
    ]:
        r = _send(target, method, path, body, headers=h)
        assert r.status_code == 403, f"{method} {path}: HTTP {r.status_code} {r.text[:200]}"
        if path.startswith("/api/2.0/"):
            assert_mlflow_error(r.status_code, r.content, expect_code="PERMISSION_DENIED", where=path)
    # Nothing changed.
    admin = target.headers()
    run = requests.get(target.url + MLFLOW_API + "/runs/get", params={"run_id": run_id}, headers=admin, timeout=30).json()["run"]
    assert run["info"]["lifecycle_stage"] == "active"
    assert not run["data"].get("metrics")
    assert requests.get(target.url + art + "/ro.txt", headers=admin, timeout=30).status_code == 404
    assert requests.get(target.url + art + "/hello.txt", headers=admin, timeout=30).content == b"hello"


def test_read_token_with_mlflow_client(target, read_token, seeded_run, monkeypatch):
    exp_id, run_id, _art = seeded_run
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", read_token)
    client = MlflowClient(target.url, registry_uri=target.url)
    assert client.get_run(run_id).info.experiment_id == exp_id
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [run_id]
    client.search_experiments(max_results=5)
    with pytest.raises(MlflowException) as ei:
        client.create_experiment(uniq("ro"))
    assert ei.value.error_code == "PERMISSION_DENIED"


def test_write_token_cannot_mint_tokens(target, write_token):
    h = {"Authorization": f"Bearer {write_token}"}
    r = requests.post(target.url + MLFLOW_API + "/experiments/create", json={"name": uniq("w")}, headers=h, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(target.url + "/api/v1/tokens", json={"name": uniq("w"), "scopes": ["admin"]}, headers=h, timeout=30)
    assert r.status_code == 403


def test_created_token_secret_is_usable_and_distinct(target):
    t1 = create_token(target.url, target.token, ["read"])
    t2 = create_token(target.url, target.token, ["read"])
    assert t1 != t2 and target.token not in (t1, t2)


def test_basic_auth_with_token_as_password(tracking, target, monkeypatch, tmp_path):
    r = requests.post(target.url + MLFLOW_API + "/experiments/search", json={"max_results": 1}, auth=("anyone", target.token), timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(target.url + MLFLOW_API + "/experiments/search", json={"max_results": 1}, auth=("anyone", "wrong"), timeout=30)
    assert r.status_code == 401

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "x")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", target.token)
    client = MlflowClient(target.url, registry_uri=target.url)
    exp_id = client.create_experiment(uniq("basic"))
    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "m", 1.0)
    f = tmp_path / "a.txt"
    f.write_text("basic auth artifact")
    client.log_artifact(run.info.run_id, str(f))
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["a.txt"]
    (tmp_path / "dl").mkdir()
    local = client.download_artifacts(run.info.run_id, "a.txt", dst_path=str(tmp_path / "dl"))
    assert open(local).read() == "basic auth artifact"

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
    with pytest.raises(MlflowException):
        MlflowClient(target.url, registry_uri=target.url).get_experiment(exp_id)


def test_token_api_validation(target):
    h = target.headers()
    r = requests.post(target.url + "/api/v1/tokens", json={"name": uniq("bad"), "scopes": ["superuser"]}, headers=h, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    r = requests.post(target.url + "/api/v1/tokens", data=b"{not json", headers={**h, "Content-Type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    body = json.loads(requests.post(target.url + "/api/v1/tokens", json={"name": uniq("ok"), "scopes": ["predict"]}, headers=h, timeout=30).text)
    assert body["scopes"] == ["predict"] and body["token"] and body["id"]
