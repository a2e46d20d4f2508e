"""Defects found by testing as a user, an operator and an attacker would (issue 7), each with a
regression test: model-version sources, CSV scoring, artifact path components over 255 bytes, no
local paths in errors, one failed deployment not taking the replica out of service, deployments of
versions without an ONNX flavor, the banner's token line, a missing S3 bucket (at start-up and
after), a missing PostgreSQL database, and the deployment CLI."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import uuid

import pytest
import requests
from mlflow.exceptions import MlflowException

import serving_models as sm
from slipway_testlib import (
    ARTIFACTS_API,
    REPO_ROOT,
    artifact_proxy_path,
    auth_headers,
    new_admin_token,
    slipway_bin,
    start_server,
    uniq,
)

pytestmark = pytest.mark.slipway


# ---- 6. model version sources -------------------------------------------------------------

BAD_SOURCES = [
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
    "../../etc/passwd",
    "/etc/passwd",
    "mlflow-artifacts:/1/../../../etc",
]


@pytest.mark.parametrize("source", BAD_SOURCES)
def test_model_version_sources_outside_the_store_are_refused(client, http, target, source):
    name = uniq("src")
    client.create_registered_model(name)
    with pytest.raises(MlflowException) as e:
        client.create_model_version(name, source)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE", e.value
    assert "Invalid model version source" in str(e.value)
    r = http.post(target.api("/api/2.0/mlflow/model-versions/create"), json={"name": name, "source": source})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    assert "Accepted:" in r.json()["message"]
    assert client.search_model_versions(f"name = '{name}'") == []


def test_sources_inside_the_store_still_work(client, http, target, experiment_id):
    name = uniq("src-ok")
    client.create_registered_model(name)
    run = client.create_run(experiment_id)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    uri = client.get_model_version_download_uri(name, mv.version)
    assert uri == f"{run.info.artifact_uri}/model", uri
    mv2 = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    assert client.get_model_version_download_uri(name, mv2.version) == f"{run.info.artifact_uri}/model"


# ---- 7. CSV scoring ------------------------------------------------------------------------


def test_csv_without_rows_or_with_a_json_body_is_400(demo_server):
    url, token = demo_server.url, demo_server.token
    for body in ['{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', "sepal_length,sepal_width,petal_length,petal_width\n"]:
        r = sm.invocations(url, token, "iris", body, content_type="text/csv")
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "BAD_REQUEST", r.text


# ---- 4. artifact path components over 255 bytes -----------------------------------------------


def _refused_for_length(r: requests.Response, where: str) -> None:
    assert r.status_code == 400, (where, r.status_code, r.text[:300])
    body = r.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE", (where, body)
    assert "each file or directory name may have at most 255 bytes" in body["message"], (where, body)


@pytest.mark.parametrize("name", ["n" * 256, "\u00e9" * 128], ids=["256-ascii", "128-two-byte-chars"])
def test_artifact_path_components_over_255_bytes_are_400_naming_the_limit(client, http, target, experiment_id, name):
    run = client.create_run(experiment_id)
    base = artifact_proxy_path(run.info.artifact_uri)
    for method, path in [("PUT", f"{base}/{name}"), ("PUT", f"{base}/{name}/f.txt"), ("GET", f"{base}/{name}"),
                         ("DELETE", f"{base}/{name}")]:
        r = http.request(method, target.api(path), data=b"x" if method == "PUT" else None)
        _refused_for_length(r, f"{method} {path[:80]}...")
    rel = base[len(ARTIFACTS_API) + 1:]
    _refused_for_length(http.get(target.api(ARTIFACTS_API), params={"path": f"{rel}/{name}"}), "proxy listing")
    _refused_for_length(
        http.get(target.api("/api/2.0/mlflow/artifacts/list"), params={"run_id": run.info.run_id, "path": name}),
        "ListArtifacts",
    )
    # a 255-byte name is a valid one, on every store
    ok = name[: 255 // len(name[0].encode())]
    assert len(ok.encode()) <= 255
    r = http.put(target.api(f"{base}/{ok}"), data=b"kept")
    assert r.status_code == 200, r.text
    assert http.get(target.api(f"{base}/{ok}")).content == b"kept"
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == [ok]


# ---- 5, 9, 10. failing deployments ------------------------------------------------------------


def _local_paths(server) -> list[str]:
    return [str(server.data_dir), str(server.data_dir.resolve()), "/tmp/", "model-cache"]


def test_failed_deployments_say_what_failed_without_paths_and_do_not_unready_the_replica(tmp_path):
    token = new_admin_token()
    server = sm.start_server_with_demo(tmp_path / "data", admin_token=token)
    try:
        url = server.url
        h = sm.auth_headers(token)
        name = uniq("brittle")
        with sm.tracking_at(url, token):
            import mlflow
            from mlflow.tracking import MlflowClient

            exp = mlflow.create_experiment(uniq("exp"))
            good = sm.log_and_register(sm.mlp(seed=1), name, exp)
            # a version whose model file is not ONNX at all
            c = MlflowClient()
            run = c.create_run(exp)
            prefix = run.info.artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
            art = f"{url}/api/2.0/mlflow-artifacts/artifacts/{prefix}/model"
            mlmodel = "flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.17.0\n"
            assert requests.put(f"{art}/MLmodel", data=mlmodel, headers=h, timeout=30).status_code == 200
            assert requests.put(f"{art}/model.onnx", data=b"this is not onnx", headers=h, timeout=30).status_code == 200
            corrupt = c.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
            # and one logged with the sklearn flavor only
            sk = c.create_run(exp)
            skp = sk.info.artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
            sk_mlmodel = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\n"
            requests.put(f"{url}/api/2.0/mlflow-artifacts/artifacts/{skp}/model/MLmodel", data=sk_mlmodel, headers=h, timeout=30)
            requests.put(f"{url}/api/2.0/mlflow-artifacts/artifacts/{skp}/model/model.pkl", data=b"pickle", headers=h, timeout=30)
            sklearn_only = c.create_model_version(name, f"{sk.info.artifact_uri}/model", run_id=sk.info.run_id).version

        # 10: a version without an onnx flavor is refused at deploy time, saying how to convert
        r = requests.put(f"{url}/api/v1/deployments/{name}-sk", json={"model": name, "version": sklearn_only}, headers=h, timeout=60)
        assert r.status_code == 400, r.text
        msg = r.json()["message"]
        assert "has no onnx flavor (its flavors: python_function, sklearn)" in msg and "skl2onnx" in msg, msg
        assert requests.get(f"{url}/api/v1/deployments/{name}-sk", headers=h, timeout=10).status_code == 404

        # 5: a corrupt model is refused; the message names the artifact, not the server's paths
        r = requests.put(f"{url}/api/v1/deployments/{name}-bad", json={"model": name, "version": corrupt}, headers=h, timeout=60)
        assert r.status_code == 400, r.text
        msg = r.json()["message"]
        assert "model.onnx" in msg and prefix in msg, msg
        for p in _local_paths(server):
            assert p not in msg, f"{p!r} leaked: {msg}"

        # a deployment following an alias that moves to the corrupt version: degraded, old
        # version keeps serving, the error carries no path, not retried in a loop
        with sm.tracking_at(url, token):
            from mlflow.tracking import MlflowClient

            MlflowClient().set_registered_model_alias(name, "champion", good)
        sm.put_deployment(url, token, name, {"model": name, "alias": "champion"})
        with sm.tracking_at(url, token):
            MlflowClient().set_registered_model_alias(name, "champion", corrupt)
        st = sm.wait_until(
            lambda: (d := sm.get_deployment(url, token, name)["status"])["state"] == "degraded" and d,
            timeout=20,
            what="degraded",
        )
        assert st["serving_version"] == good and st["error_permanent"] is True, st
        for p in _local_paths(server):
            assert p not in st["error"], f"{p!r} leaked: {st}"

        # 9: restart: the deployment cannot load anything now (failed), the replica is ready
        # anyway and the demo model serves; the failed one reports itself
        server.stop()
        server = sm.start_server_with_demo(tmp_path / "data", admin_token=token)
        url = server.url
        st = sm.get_deployment(url, token, name)["status"]
        assert st["state"] == "failed", st
        assert requests.get(f"{url}/health/ready", timeout=10).status_code == 200
        assert requests.get(f"{url}/v2/health/ready", timeout=10).status_code == 200
        assert requests.get(f"{url}/v2/models/{name}/ready", headers=h, timeout=10).status_code == 503
        body = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
        assert requests.post(f"{url}/v2/models/iris/infer", json=body, headers=h, timeout=10).status_code == 200
        lines = server.stderr_lines
        assert not any("keeps serving" in line and name in line for line in lines), "no 'keeps serving' when nothing serves"
    finally:
        server.stop()


def test_strict_readiness_setting(tmp_path):
    """With strict_readiness, a deployment that serves nothing makes the replica unready."""
    token = new_admin_token()
    data = tmp_path / "data"
    server = sm.start_server_with_demo(data, admin_token=token)
    try:
        h = sm.auth_headers(token)
        # break the demo's only version in the local model cache and the store: a restart
        # cannot load it
        mv = requests.get(
            f"{server.url}/api/2.0/mlflow/model-versions/get-download-uri?name=iris&version=1", headers=h, timeout=10
        ).json()["artifact_uri"]
        prefix = mv.removeprefix("mlflow-artifacts:").lstrip("/")
        r = requests.put(
            f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{prefix}/model.onnx", data=b"broken", headers=h, timeout=10
        )
        assert r.status_code == 200
    finally:
        server.stop()
    cache = data / "model-cache"
    if cache.exists():
        subprocess.run(["rm", "-rf", str(cache)], check=True)
    lax = start_server(data, admin_token=token, demo=True)
    try:
        assert requests.get(f"{lax.url}/health/ready", timeout=10).status_code == 200
        st = sm.get_deployment(lax.url, token, "iris")["status"]
        assert st["state"] == "failed", st
    finally:
        lax.stop()
    # with strict readiness the server never becomes ready: start it by hand and poll
    env = dict(os.environ)
    env.update({"SLIPWAY_ADMIN_TOKEN": token, "SLIPWAY_STRICT_READINESS": "true"})
    proc = subprocess.Popen(
        [str(slipway_bin()), "up", "--listen", "127.0.0.1:0", "--data-dir", str(data), "--no-demo"],
        env=_isolated_env(env, data), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = _listening(proc)
        deadline = time.monotonic() + 10
        statuses = set()
        while time.monotonic() < deadline:
            r = requests.get(f"{url}/health/ready", timeout=5)
            statuses.add(r.status_code)
            if r.status_code == 503 and any(x.get("deployment") == "iris" for x in r.json().get("reasons", [])):
                break
            time.sleep(0.2)
        assert r.status_code == 503, r.text
        assert requests.get(f"{url}/health/live", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _isolated_env(env: dict, data) -> dict:
    """The environment start_server would give a server on ``data`` (same isolated stores)."""
    from slipway_testlib import _isolate_shared_stores

    env = dict(env)
    _isolate_shared_stores(env, data)
    return env


def _listening(proc) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("SLIPWAY_LISTENING="):
            return line.strip().split("=", 1)[1]
        if not line and proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}")
    raise AssertionError("no SLIPWAY_LISTENING line")


# ---- 11. where the admin token comes from ---------------------------------------------------


def test_banner_says_where_a_supplied_token_comes_from(demo_server):
    lines = [l for l in demo_server.process.stdout_lines if l.startswith("  Admin token:")]
    assert lines and "supplied by the operator in SLIPWAY_ADMIN_TOKEN" in lines[0], lines
    assert "initial-admin-token" not in "".join(demo_server.process.stdout_lines)


def test_banner_token_from_a_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(new_admin_token())
    server = start_server(tmp_path / "data", env={"SLIPWAY_ADMIN_TOKEN_FILE": str(token_file)})
    try:
        out = server.stdout_text()
        assert f"supplied by the operator in {token_file}" in out, out
        assert not (tmp_path / "data" / "initial-admin-token").exists()
    finally:
        server.stop()


def _token_line(server) -> str:
    out = server.stdout_text()
    start = out.index("  Admin token:")
    return out[start:out.index("  MLflow:", start)]


def test_banner_says_which_start_generated_the_token(tmp_path):
    """Three starts over one metadata database: the first start of data dir ``a`` generates the
    token; a later start of ``a`` points to its file; a start of another data dir (another replica)
    says it came from ``a``'s first start and points to no file of its own."""
    env = {k: os.environ[k] for k in ("SLIPWAY_METADATA_URL", "SLIPWAY_ARTIFACT_ROOT") if k in os.environ}
    env = _isolated_env(env, tmp_path / "shared")
    env.setdefault("SLIPWAY_METADATA_URL", f"sqlite://{tmp_path / 'shared.db'}")
    env.setdefault("SLIPWAY_ARTIFACT_ROOT", str(tmp_path / "shared-artifacts"))
    a, b = tmp_path / "a", tmp_path / "b"

    first = start_server(a, env=env, isolate=False)
    first.stop()
    token = (a / "initial-admin-token").read_text().strip()
    line = _token_line(first)
    assert token in line and f"shown once; also written to {a / 'initial-admin-token'}" in line, line

    again = start_server(a, env=env, isolate=False)
    try:
        line = _token_line(again)
        assert f"from the first start, in {a / 'initial-admin-token'}" in line, line
        assert token not in again.stdout_text()
    finally:
        again.stop()

    other = start_server(b, env=env, isolate=False)
    try:
        line = _token_line(other)
        assert "from the first start of another process on this database" in line, line
        assert f" in {a}" in line and "wrote it to its own data dir" in line, line
        assert not (b / "initial-admin-token").exists()
        assert str(b) not in line and token not in other.stdout_text()
        r = requests.get(f"{other.url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "Default"},
                         headers=auth_headers(token), timeout=10)
        assert r.status_code == 200, r.text
    finally:
        other.stop()


# ---- 12. a missing S3 bucket ------------------------------------------------------------------


def _run_up(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    clean.update(env)
    return subprocess.run([str(slipway_bin()), "up", "--no-demo", *args], env=clean, capture_output=True, text=True, timeout=timeout)


def test_missing_s3_bucket_fails_start_up_naming_bucket_and_endpoint(tmp_path):
    endpoint = os.environ.get("SLIPWAY_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        pytest.fail("no S3 endpoint in the environment (run under scripts/test.sh, which starts SeaweedFS)")
    bucket = "no-such-bucket-" + uniq("b")
    r = _run_up(
        ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), "--artifact-root", f"s3://{bucket}/x",
         "--s3-endpoint", endpoint],
        {"SLIPWAY_ADMIN_TOKEN": new_admin_token()},
    )
    assert r.returncode != 0, r.stdout + r.stderr
    err = r.stderr
    assert f"bucket '{bucket}'" in err and endpoint in err and "does not create buckets" in err, err


def _s3_admin():
    """The test S3 server as a pyarrow file system that may create and delete buckets."""
    from pyarrow import fs as pafs

    endpoint = os.environ["SLIPWAY_S3_ENDPOINT"]
    return pafs.S3FileSystem(
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=endpoint.split("://", 1)[1],
        scheme=endpoint.split("://", 1)[0],
        region=os.environ.get("AWS_REGION", "us-east-1"),
        allow_bucket_creation=True,
        allow_bucket_deletion=True,
    )


def _readiness_until(url: str, want: int, timeout: float = 30) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(f"{url}/health/ready", timeout=15)
        if r.status_code == want or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_readiness_fails_naming_bucket_and_endpoint_when_the_bucket_disappears(tmp_path):
    endpoint = os.environ.get("SLIPWAY_S3_ENDPOINT")
    if not endpoint or not os.environ.get("AWS_ACCESS_KEY_ID"):
        pytest.fail("no S3 server in the environment (run under scripts/test.sh, which starts SeaweedFS)")
    s3 = _s3_admin()
    bucket = "slw-gone-" + uuid.uuid4().hex[:12]
    s3.create_dir(bucket)
    server = start_server(
        tmp_path / "data", admin_token=new_admin_token(),
        env={"SLIPWAY_ARTIFACT_ROOT": f"s3://{bucket}/x", "SLIPWAY_S3_ENDPOINT": endpoint},
    )
    try:
        assert requests.get(f"{server.url}/health/ready", timeout=15).status_code == 200
        s3.delete_dir(bucket)
        r = _readiness_until(server.url, 503)
        assert r.status_code == 503, r.text
        reasons = [x for x in r.json()["reasons"] if x.get("component") == "artifact store"]
        assert reasons, r.text
        why = reasons[0]["reason"]
        assert f"bucket '{bucket}'" in why and endpoint in why and "does not create buckets" in why, why
        assert requests.get(f"{server.url}/health/live", timeout=5).status_code == 200
        # the bucket comes back: so does readiness
        s3.create_dir(bucket)
        r = _readiness_until(server.url, 200)
        assert r.status_code == 200, r.text
    finally:
        server.stop()
        try:
            s3.delete_dir(bucket)
        except OSError:
            pass


# ---- 13. a missing PostgreSQL database ------------------------------------------------------


def test_missing_postgres_database_names_the_cause(tmp_path):
    base = os.environ.get("SLIPWAY_TEST_POSTGRES_URL")
    if not base:
        pytest.fail("SLIPWAY_TEST_POSTGRES_URL is not set (run under scripts/test.sh)")
    parts = urllib.parse.urlsplit(base)
    missing = "slw_missing_" + uniq("db").replace("-", "_")
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + missing, "", ""))
    r = _run_up(
        ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), "--metadata-url", url],
        {"SLIPWAY_ADMIN_TOKEN": new_admin_token()},
    )
    assert r.returncode != 0
    err = r.stderr
    assert f'database "{missing}" does not exist' in err, err
    assert "creates its tables but not the database" in err, err
    if parts.password is None:
        assert "***" not in err, err


# ---- 16. the deployment CLI --------------------------------------------------------------------


def _cli(args: list[str], url: str, token: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update({"SLIPWAY_URL": url, "SLIPWAY_TOKEN": token})
    return subprocess.run([str(slipway_bin()), *args], env=env, capture_output=True, text=True, timeout=120)


def test_deployment_cli_lists_shows_deploys_and_deletes(demo_server):
    url, token = demo_server.url, demo_server.token
    r = _cli(["deployment", "list"], url, token)
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["NAME", "MODEL", "FOLLOWS", "SERVING", "STATE", "ERROR"], r.stdout
    assert any(row.split()[:5] == ["iris", "iris", "alias", "champion", "1"] for row in rows), r.stdout
    js = json.loads(_cli(["deployment", "list", "--json"], url, token).stdout)
    assert any(d["name"] == "iris" and d["status"]["state"] == "ready" for d in js["deployments"])
    show = _cli(["deployment", "show", "iris"], url, token)
    assert "Deployment iris: ready" in show.stdout and "version 1" in show.stdout, show.stdout

    name = uniq("cli")
    dep = _cli(["deploy", name, "--model", "iris", "--alias", "champion"], url, token)
    assert dep.returncode == 0, dep.stderr
    assert f"Deployment {name}: ready" in dep.stdout and "alias champion" in dep.stdout, dep.stdout
    assert not dep.stdout.lstrip().startswith("{"), "people get a summary, not raw JSON"
    js = json.loads(_cli(["deploy", name, "--model", "iris", "--version", "1", "--json"], url, token).stdout)
    assert js["spec"]["version"] == "1"
    bad = _cli(["deploy", name, "--model", "no-such-model", "--alias", "champion"], url, token)
    assert bad.returncode != 0 and "404" in bad.stderr, bad.stderr
    gone = _cli(["deployment", "delete", name], url, token)
    assert gone.returncode == 0 and f"deleted {name}" in gone.stdout
    assert _cli(["deployment", "show", name], url, token).returncode != 0
