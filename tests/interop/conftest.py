"""Fixtures for Slipway's interoperability suite (real mlflow client + raw HTTP).

Target server:
  SLIPWAY_URL     base URL of a running server (e.g. http://127.0.0.1:8080); if unset, the session
                  starts `$SLIPWAY_BIN up --listen 127.0.0.1:0 --data-dir <tmp> --no-demo` itself
                  with SLIPWAY_ADMIN_TOKEN=<random>, reads the URL from the stdout line
                  `SLIPWAY_LISTENING=http://127.0.0.1:PORT`, and polls GET /health/ready.
  SLIPWAY_TOKEN   admin token for SLIPWAY_URL.
  SLIPWAY_BIN     server binary (default <repo>/target/debug/slipway).
  SLIPWAY_REFERENCE_MLFLOW=1
                  the target is MLflow's own `mlflow server` (to validate the tests); tests marked
                  `slipway` are skipped. Never set this against Slipway.
Other SLIPWAY_* variables (SLIPWAY_METADATA_URL, SLIPWAY_ARTIFACT_ROOT, ...) pass through to the
servers the suite starts.
"""

from __future__ import annotations

import os
from pathlib import Path
import time

import pytest

# Before mlflow is imported anywhere: no telemetry, bounded retries so failures surface quickly.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)

import mlflow  # noqa: E402
import requests  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from slipway_testlib import (  # noqa: E402
    auth_headers,
    is_reference_mlflow,
    new_admin_token,
    start_server,
    uniq,
    wait_ready,
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slipway: depends on Slipway-specific behaviour (auth, limits, token API, process control); "
        "skipped only when SLIPWAY_REFERENCE_MLFLOW=1",
    )


def pytest_collection_modifyitems(config, items):
    if not is_reference_mlflow():
        return
    skip = pytest.mark.skip(reason="Slipway-specific; target is reference MLflow (SLIPWAY_REFERENCE_MLFLOW=1)")
    for item in items:
        if "slipway" in item.keywords:
            item.add_marker(skip)


class Target:
    """The server under test."""

    def __init__(self, url: str, token: str, data_dir=None, process=None, reference: bool = False):
        self.url = url.rstrip("/")
        self.token = token
        self.data_dir = data_dir  # a Path when this session started the server, else None
        self.process = process  # slipway_testlib.ServerProcess or None
        self.reference = reference

    @property
    def owns_server(self) -> bool:
        return self.process is not None

    def headers(self, token: str | None = "__admin__") -> dict[str, str]:
        return auth_headers(self.token if token == "__admin__" else token)

    def api(self, path: str) -> str:
        return self.url + path


@pytest.fixture(scope="session")
def target(tmp_path_factory):
    reference = is_reference_mlflow()
    url = os.environ.get("SLIPWAY_URL")
    if url:
        token = os.environ.get("SLIPWAY_TOKEN", "")
        if not token:
            if reference:
                token = "reference-mlflow-ignores-tokens"
            else:
                pytest.fail("SLIPWAY_URL is set but SLIPWAY_TOKEN (an admin token) is not")
        wait_ready(url.rstrip("/"), deadline=time.monotonic() + 60, path="/health" if reference else "/health/ready")
        yield Target(url, token, reference=reference)
        return
    if reference:
        pytest.fail("SLIPWAY_REFERENCE_MLFLOW=1 needs SLIPWAY_URL pointing at `mlflow server`")
    base = tmp_path_factory.mktemp("slipway-session")
    token = new_admin_token()
    try:
        server = start_server(base / "data", admin_token=token, isolate=False)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield Target(server.url, token, data_dir=base / "data", process=server)
    finally:
        died = server.proc.poll()
        code = server.stop()
        _save_server_log(server, died, code)


def _save_server_log(server, died_with, code) -> None:
    """Keeps the session server's output under target/interop-logs/ (scripts/test.sh shows it on failure)."""
    logs = Path(__file__).resolve().parents[2] / "target" / "interop-logs"
    logs.mkdir(parents=True, exist_ok=True)
    name = f"session-server-{os.getpid()}.log"
    header = f"exit code: {code}; died before teardown: {died_with is not None} ({died_with})\n"
    (logs / name).write_text(header + server.output_tail(n=400))


@pytest.fixture(scope="session")
def tracking(target):
    """Points the unmodified mlflow client at the target (tracking URI + MLFLOW_TRACKING_TOKEN)."""
    os.environ["MLFLOW_TRACKING_URI"] = target.url
    os.environ["MLFLOW_TRACKING_TOKEN"] = target.token
    mlflow.set_tracking_uri(target.url)
    mlflow.set_registry_uri(target.url)
    return target


@pytest.fixture
def client(tracking) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url)


@pytest.fixture
def experiment_id(client) -> str:
    """A fresh experiment for one test."""
    return client.create_experiment(uniq("exp"))


@pytest.fixture(autouse=True)
def _no_leaked_active_run():
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def http(target) -> requests.Session:
    """A requests session that sends the admin token."""
    s = requests.Session()
    s.headers.update(target.headers())
    yield s
    s.close()


def pytest_report_header(config):
    url = os.environ.get("SLIPWAY_URL") or "(start own server from SLIPWAY_BIN)"
    mode = "reference MLflow" if is_reference_mlflow() else "Slipway"
    return [f"interop target: {url} [{mode}]"]


# --------------------------------------------------------------------------------------------
# Serving (test_serving_*.py)


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """A private server started WITHOUT ``--no-demo``: the demo ``iris`` deployment (registered
    model ``iris`` version 1, alias ``champion``) exists. Its own stores (``isolate``), its own
    admin token; ``.process.stdout_lines`` holds the banner."""
    if is_reference_mlflow():
        pytest.skip("serving needs Slipway (SLIPWAY_REFERENCE_MLFLOW=1)")
    from serving_models import start_server_with_demo

    base = tmp_path_factory.mktemp("slipway-demo")
    token = new_admin_token()
    try:
        server = start_server_with_demo(base / "data", admin_token=token)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield Target(server.url, token, data_dir=base / "data", process=server)
    finally:
        server.stop()
