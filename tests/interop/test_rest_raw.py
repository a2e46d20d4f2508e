"""Raw HTTP tests of the REST layer: malformed input, unknown ids, body limits, path traversal."""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
import uuid
from pathlib import Path

import pytest

from slipway_testlib import (
    ARTIFACTS_API,
    MLFLOW_API,
    artifact_proxy_path,
    assert_mlflow_error,
    files_under,
    is_reference_mlflow,
    raw_request,
    start_server,
    new_admin_token,
    uniq,
)

JSON = {"Content-Type": "application/json"}


def _post(target, path, body: bytes, headers=None):
    return raw_request(target.url, "POST", MLFLOW_API + path, body=body, headers={**JSON, **target.headers(), **(headers or {})})


def _get(target, path):
    return raw_request(target.url, "GET", path, headers=target.headers())


# --------------------------------------------------------------------------------------------
# Malformed and mistyped bodies


@pytest.mark.parametrize(
    "path,body",
    [
        ("/experiments/create", b'{"name": '),
        ("/experiments/create", b"{'name': 'single quotes'}"),
        ("/experiments/create", b"\xff\xfe not utf-8"),
        # MLflow answers 500 (HTML) to this one; Slipway must answer 400.
        pytest.param(
            "/runs/log-batch",
            b'{"run_id": "abc", "metrics": [{"key": "m", "value": 1, ',
            marks=pytest.mark.slipway,
        ),
    ],
    ids=["truncated", "single-quotes", "not-utf8", "truncated-batch"],
)
def test_malformed_json(target, path, body):
    status, _h, resp = _post(target, path, body)
    assert_mlflow_error(status, resp, expect_status=400, expect_code="INVALID_PARAMETER_VALUE", where=path)


@pytest.mark.slipway  # MLflow itself answers 500 with an HTML page here
@pytest.mark.parametrize("body", [b"[1, 2]", b'"a string"', b"null", b"42"], ids=["array", "string", "null", "number"])
def test_json_body_not_an_object(target, body):
    status, _h, resp = _post(target, "/experiments/create", body)
    assert_mlflow_error(status, resp, expect_status=400, expect_code="INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    "path,payload",
    [
        ("/experiments/create", {"name": ["x"]}),
        ("/experiments/create", {"name": {"nested": 1}}),
        ("/experiments/create", {"name": 5}),
        ("/experiments/create", {}),
        ("/runs/log-metric", {"run_id": "0" * 32, "key": "m", "value": "notanumber", "timestamp": 1}),
        ("/runs/log-batch", {"run_id": "0" * 32, "metrics": "x"}),
        ("/runs/create", {"experiment_id": ["0"]}),
        ("/registered-models/create", {"name": 12}),
    ],
    ids=["list", "object", "int", "missing", "metric-value-str", "metrics-str", "run-exp-id-list", "rm-name-int"],
)
def test_wrong_json_types(target, path, payload):
    status, _h, resp = _post(target, path, json.dumps(payload).encode())
    assert_mlflow_error(status, resp, expect_status=400, expect_code="INVALID_PARAMETER_VALUE", where=path)


def test_missing_query_parameter(target):
    status, _h, resp = _get(target, MLFLOW_API + "/runs/get")
    assert_mlflow_error(status, resp, expect_status=400, expect_code="INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------------------------
# Unknown ids


@pytest.mark.parametrize(
    "path",
    [
        MLFLOW_API + "/runs/get?run_id=" + "0" * 31 + "1",
        MLFLOW_API + "/experiments/get?experiment_id=987654321",
        MLFLOW_API + "/experiments/get-by-name?experiment_name=" + "no-such-experiment-" + "7" * 8,
        MLFLOW_API + "/registered-models/get?name=no-such-model-77777777",
        MLFLOW_API + "/model-versions/get?name=no-such-model-77777777&version=1",
        MLFLOW_API + "/registered-models/alias?name=no-such-model-77777777&alias=champion",
        ARTIFACTS_API + "/0/" + "0" * 32 + "/artifacts/no-such-file.txt",
    ],
    ids=["run", "experiment", "experiment-by-name", "registered-model", "model-version", "alias", "artifact"],
)
def test_unknown_ids_are_404(target, path):
    status, _h, resp = _get(target, path)
    assert_mlflow_error(status, resp, expect_status=404, expect_code="RESOURCE_DOES_NOT_EXIST", where=path)


def test_experiment_id_not_a_number(target):
    status, _h, resp = _get(target, MLFLOW_API + "/experiments/get?experiment_id=notanumber")
    assert_mlflow_error(status, resp, expect_status=(400, 404), expect_code=("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"))


def test_update_unknown_run(target):
    body = json.dumps({"run_id": "0" * 31 + "2", "status": "FINISHED", "end_time": 1}).encode()
    status, _h, resp = _post(target, "/runs/update", body)
    assert_mlflow_error(status, resp, expect_status=404, expect_code="RESOURCE_DOES_NOT_EXIST")


# --------------------------------------------------------------------------------------------
# Body size limits (Slipway settings)


def _send_oversize(url: str, path: str, headers: dict[str, str], size: int, chunked: bool, content_type: str):
    """Streams ``size`` bytes at ``path`` and returns (status, body) of the response.

    The server may answer 413 before the body is complete and close the connection; sending
    errors are swallowed so the response can still be read.
    """
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=60)
    try:
        head = [f"PUT {path} HTTP/1.1" if content_type != "application/json" else f"POST {path} HTTP/1.1"]
        head.append(f"Host: {u.hostname}:{u.port}")
        head.append(f"Content-Type: {content_type}")
        for k, v in headers.items():
            head.append(f"{k}: {v}")
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
        head.append("Connection: close")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        chunk = (b'{"pad": "' + b"x" * (1 << 20))[: 1 << 20] if content_type == "application/json" else b"\0" * (1 << 20)
        sent = 0
        try:
            while sent < size:
                piece = chunk[: min(len(chunk), size - sent)]
                if chunked:
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                else:
                    sock.sendall(piece)
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        data = b""
        try:
            while True:
                got = sock.recv(65536)
                if not got:
                    break
                data += got
                if b"\r\n\r\n" in data:
                    head_raw, _, rest = data.partition(b"\r\n\r\n")
                    m = [line for line in head_raw.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                    if m and len(rest) >= int(m[0].split(b":")[1]):
                        break
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        sock.close()
    assert data, "no HTTP response at all (connection reset before the server answered)"
    head_raw, _, body = data.partition(b"\r\n\r\n")
    status = int(head_raw.split(b" ")[1])
    if b"transfer-encoding: chunked" in head_raw.lower():
        body = _dechunk(body)
    return status, body


def _dechunk(b: bytes) -> bytes:
    out = b""
    while b:
        size_line, _, b = b.partition(b"\r\n")
        n = int(size_line.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out += b[:n]
        b = b[n + 2 :]
    return out


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """A Slipway server of our own with small body limits (JSON 64 KiB, artifacts 1 MiB)."""
    if is_reference_mlflow():
        pytest.skip("needs a Slipway binary")
    token = new_admin_token()
    server = start_server(
        tmp_path_factory.mktemp("limited") / "data",
        admin_token=token,
        env={"SLIPWAY_MAX_JSON_BODY_BYTES": str(64 * 1024), "SLIPWAY_MAX_ARTIFACT_BYTES": str(1 << 20)},
    )
    yield server, token
    server.stop()


@pytest.mark.slipway
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_json_body_over_default_limit_is_413(target, chunked):
    limit = int(os.environ.get("SLIPWAY_MAX_JSON_BODY_BYTES", str(16 * 1024 * 1024)))
    status, body = _send_oversize(
        target.url, MLFLOW_API + "/runs/log-batch", target.headers(), limit + 4096, chunked, "application/json"
    )
    assert_mlflow_error(status, body, expect_status=413, where="oversize JSON")


@pytest.mark.slipway
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_configured_limits_are_413(limited_server, chunked):
    server, token = limited_server
    hdr = {"Authorization": f"Bearer {token}"}
    status, body = _send_oversize(server.url, MLFLOW_API + "/experiments/create", hdr, 64 * 1024 + 1, chunked, "application/json")
    assert_mlflow_error(status, body, expect_status=413, where="JSON over SLIPWAY_MAX_JSON_BODY_BYTES")
    # A body under the JSON limit still works.
    name = uniq("lim")
    st, _h, resp = raw_request(
        server.url, "POST", MLFLOW_API + "/experiments/create",
        body=json.dumps({"name": name, "tags": [{"key": "pad", "value": "y" * 5000}]}).encode(), headers={**JSON, **hdr},
    )
    assert st == 200, resp
    exp_id = json.loads(resp)["experiment_id"]
    st, _h, resp = raw_request(
        server.url, "POST", MLFLOW_API + "/runs/create", body=json.dumps({"experiment_id": exp_id}).encode(), headers={**JSON, **hdr}
    )
    assert st == 200, resp
    base = artifact_proxy_path(json.loads(resp)["run"]["info"]["artifact_uri"])

    status, body = _send_oversize(server.url, f"{base}/too-big.bin", hdr, (1 << 20) + 1, chunked, "application/octet-stream")
    assert_mlflow_error(status, body, expect_status=413, where="artifact over SLIPWAY_MAX_ARTIFACT_BYTES")
    # Nothing of the rejected upload is visible.
    st, _h, resp = raw_request(server.url, "GET", f"{base}/too-big.bin", headers=hdr)
    assert_mlflow_error(st, resp, expect_status=404, expect_code="RESOURCE_DOES_NOT_EXIST")
    st, _h, resp = raw_request(server.url, "GET", f"{ARTIFACTS_API}?path={base[len(ARTIFACTS_API) + 1:]}", headers=hdr)
    assert st == 200 and "too-big.bin" not in resp.decode()

    # Exactly at the limit is accepted.
    st, _h, resp = raw_request(server.url, "PUT", f"{base}/at-limit.bin", body=b"a" * (1 << 20), headers=hdr)
    assert st == 200, resp
    st, _h, resp = raw_request(server.url, "GET", f"{base}/at-limit.bin", headers=hdr)
    assert st == 200 and resp == b"a" * (1 << 20)


# --------------------------------------------------------------------------------------------
# Path traversal on the artifact proxy

_DOTS = "../" * 12
_BACKSLASH_DOTS = "..\\" * 12


def _variants(marker: str):
    """(id, raw path suffix after /artifacts/, query value for ?path=, slipway_only)."""
    return [
        ("dotdot", f"{_DOTS}tmp/{marker}", f"{_DOTS}tmp/{marker}", False),
        ("dotdot-inside", f"0/x/{_DOTS}tmp/{marker}", f"0/x/{_DOTS}tmp/{marker}", False),
        ("dotdot-encoded-slash", f"0/x/{'..%2F' * 12}tmp%2F{marker}", f"0/x/{'..%2F' * 12}tmp%2F{marker}", False),
        ("dot-encoded", f"{'%2e%2e/' * 12}tmp/{marker}", f"{'%2e%2e/' * 12}tmp/{marker}", False),
        ("all-encoded", f"{'%2e%2e%2f' * 12}tmp%2f{marker}", f"{'%2e%2e%2f' * 12}tmp%2f{marker}", False),
        ("absolute-double-slash", f"/tmp/{marker}", f"/tmp/{marker}", False),
        ("absolute-encoded", f"%2Ftmp%2F{marker}", f"%2Ftmp%2F{marker}", False),
        ("windows-drive", f"C:%5Ctmp%5C{marker}", f"C:%5Ctmp%5C{marker}", False),
        # MLflow on POSIX stores these as odd file names inside the root; Slipway rejects them.
        ("backslashes", f"{'..%5C' * 12}tmp%5C{marker}", f"{'..%5C' * 12}tmp%5C{marker}", True),
        ("raw-backslashes", f"{_BACKSLASH_DOTS}tmp\\{marker}", f"{'..%5C' * 12}tmp%5C{marker}", True),
        ("encoded-nul", f"0/x/{marker}%00.txt", f"0/x/{marker}%00.txt", True),
        ("encoded-nul-dotdot", f"0/x/..%00/..%00/{marker}", f"0/x/..%00/..%00/{marker}", True),
    ]


def _traversal_params():
    marker = "slw-trav-" + uuid.uuid4().hex[:10]
    out = []
    for vid, path, query, slipway_only in _variants(marker):
        marks = [pytest.mark.slipway] if slipway_only else []
        out.append(pytest.param(marker, path, query, id=vid, marks=marks))
    return out


@pytest.mark.parametrize("marker,path,query", _traversal_params())
def test_artifact_path_traversal_rejected(target, marker, path, query):
    payload_marker = ("payload-" + uuid.uuid4().hex).encode()
    url_path = f"{ARTIFACTS_API}/{path}"
    hdr = target.headers()

    st, _h, resp = raw_request(target.url, "PUT", url_path, body=payload_marker, headers={**hdr, "Content-Type": "application/octet-stream"})
    assert_mlflow_error(st, resp, expect_status=range(400, 500), where=f"PUT {url_path}")

    st, _h, resp = raw_request(target.url, "GET", url_path, headers=hdr)
    assert_mlflow_error(st, resp, expect_status=range(400, 500), where=f"GET {url_path}")
    assert payload_marker not in resp

    st, _h, resp = raw_request(target.url, "GET", f"{ARTIFACTS_API}?path={query}", headers=hdr)
    assert_mlflow_error(st, resp, expect_status=range(400, 500), where=f"LIST ?path={query}")

    # Nothing landed outside the artifact root.
    for p in (Path("/tmp") / marker, Path("/etc") / marker, Path("/") / marker, Path.cwd() / marker):
        assert not p.exists(), f"traversal wrote {p}"
    if target.owns_server:
        base = target.data_dir.parent
        for f in files_under(base):
            assert marker not in f.name, f"a file named after the traversal path exists: {f}"
            if f.stat().st_size <= 8 << 20:
                assert payload_marker not in f.read_bytes(), f"the rejected upload's bytes were stored in {f}"


def test_artifact_get_cannot_read_system_files(target):
    hdr = target.headers()
    for path in [
        f"{ARTIFACTS_API}/{_DOTS}etc/passwd",
        f"{ARTIFACTS_API}/{'..%2F' * 12}etc%2Fpasswd",
        f"{ARTIFACTS_API}//etc/passwd",
        f"{ARTIFACTS_API}/{'%2e%2e%2f' * 12}etc%2fpasswd",
        f"{ARTIFACTS_API}/{'..%5C' * 12}etc%5Cpasswd",
    ]:
        st, _h, resp = raw_request(target.url, "GET", path, headers=hdr)
        assert 400 <= st < 500, (path, st)
        assert b"root:" not in resp, path
