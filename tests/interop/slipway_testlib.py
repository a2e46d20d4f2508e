"""Helpers shared by the interop tests: starting Slipway servers, raw HTTP, reference checks.

Nothing here talks to pytest fixtures directly, so tests that start their own server (crash
safety, configured limits) and the session fixture in conftest.py use the same code.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "slipway"
LISTEN_PREFIX = "SLIPWAY_LISTENING="
READY_PATH = "/health/ready"
START_TIMEOUT_S = float(os.environ.get("SLIPWAY_START_TIMEOUT", "60"))

ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
MLFLOW_API = "/api/2.0/mlflow"


def is_reference_mlflow() -> bool:
    """True when the suite runs against MLflow's own server to validate the tests themselves."""
    return os.environ.get("SLIPWAY_REFERENCE_MLFLOW", "") not in ("", "0", "false", "no")


def uniq(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def slipway_bin() -> Path:
    return Path(os.environ.get("SLIPWAY_BIN", str(DEFAULT_BIN)))


def new_admin_token() -> str:
    return "slw-test-" + secrets.token_urlsafe(24)


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ServerProcess:
    """A `slipway up` child process, its URL and everything it printed on stdout/stderr."""

    url: str
    proc: subprocess.Popen
    data_dir: Path
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def stdout_text(self) -> str:
        return "".join(self.stdout_lines)

    def output_tail(self, n: int = 60) -> str:
        return "".join(self.stdout_lines[-n:]) + "\n--- stderr ---\n" + "".join(self.stderr_lines[-n:])

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._join_readers()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._join_readers()

    def _join_readers(self) -> None:
        for t in self._threads:
            t.join(timeout=5)


def _pump(stream, sink: list[str], on_line=None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        sink.append(line)
        if on_line is not None:
            on_line(line)
    stream.close()


def _isolate_shared_stores(child_env: dict[str, str], data_dir: Path) -> None:
    """Points shared stores in ``child_env`` at a database and prefix owned by ``data_dir``."""
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    url = child_env.get("SLIPWAY_METADATA_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urllib.parse.urlsplit(url)
        db = f"slw_t_{key}"
        exists = subprocess.run(
            ["psql", url, "-qAtc", f"SELECT 1 FROM pg_database WHERE datname = '{db}'"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(["psql", url, "-qAtc", f"CREATE DATABASE {db}"], capture_output=True, check=True)
        child_env["SLIPWAY_METADATA_URL"] = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment)
        )
    root = child_env.get("SLIPWAY_ARTIFACT_ROOT", "")
    if root.startswith("s3://"):
        child_env["SLIPWAY_ARTIFACT_ROOT"] = root.rstrip("/") + f"/isolated-{key}"


def start_server(
    data_dir: Path | str,
    *,
    admin_token: str | None = None,
    env: dict[str, str] | None = None,
    extra_args: list[str] | tuple[str, ...] = (),
    timeout: float = START_TIMEOUT_S,
    isolate: bool = True,
    demo: bool = False,
) -> ServerProcess:
    """Starts `slipway up` on a free port with the given data dir and waits until it is ready.

    The process inherits the test environment (so SLIPWAY_METADATA_URL, SLIPWAY_ARTIFACT_ROOT, ...
    pass through), plus ``env``. SLIPWAY_ADMIN_TOKEN is set to ``admin_token`` when given and
    removed from the environment otherwise (then the server uses/creates its stored token).
    The URL comes from the ``SLIPWAY_LISTENING=http://host:port`` line the server prints on stdout.

    With ``isolate`` (the default) and shared stores in the environment (a PostgreSQL
    SLIPWAY_METADATA_URL, an s3:// SLIPWAY_ARTIFACT_ROOT), the server gets its own database and
    S3 prefix, both derived from ``data_dir`` so a restart on the same data dir finds its data
    again; a server started for one test then never disturbs the session's server.
    With ``demo`` the server registers and deploys the demo model (no ``--no-demo``).
    """
    binary = slipway_bin()
    if not binary.is_file():
        raise RuntimeError(
            f"Slipway binary not found at {binary} (build it with `cargo build`, or set SLIPWAY_BIN, "
            "or point SLIPWAY_URL at a running server)"
        )
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ)
    child_env.pop("SLIPWAY_URL", None)
    child_env.pop("SLIPWAY_TOKEN", None)
    child_env.pop("SLIPWAY_ADMIN_TOKEN", None)
    child_env.pop("SLIPWAY_NO_DEMO", None)
    if admin_token is not None:
        child_env["SLIPWAY_ADMIN_TOKEN"] = admin_token
    child_env.update(env or {})
    if isolate:
        _isolate_shared_stores(child_env, data_dir)
    cmd = [
        str(binary),
        "up",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        *([] if demo else ["--no-demo"]),
        *extra_args,
    ]
    proc = subprocess.Popen(
        cmd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C of pytest does not hit the server first
    )
    server = ServerProcess(url="", proc=proc, data_dir=data_dir)
    found = threading.Event()
    url_box: list[str] = []

    def on_line(line: str) -> None:
        s = line.strip()
        if not found.is_set() and s.startswith(LISTEN_PREFIX):
            url_box.append(s[len(LISTEN_PREFIX):].strip())
            found.set()

    t_out = threading.Thread(target=_pump, args=(proc.stdout, server.stdout_lines, on_line), daemon=True)
    t_err = threading.Thread(target=_pump, args=(proc.stderr, server.stderr_lines), daemon=True)
    t_out.start()
    t_err.start()
    server._threads = [t_out, t_err]

    deadline = time.monotonic() + timeout
    while not found.wait(timeout=0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.kill9()
            raise RuntimeError(
                f"server did not print {LISTEN_PREFIX}... (exit code {proc.returncode}); cmd={cmd}\n"
                + server.output_tail()
            )
    server.url = url_box[0].rstrip("/")
    try:
        wait_ready(server.url, deadline=deadline, proc=proc)
    except Exception:
        server.kill9()
        raise RuntimeError(f"server at {server.url} never became ready\n" + server.output_tail())
    return server


def wait_ready(url: str, *, deadline: float, proc: subprocess.Popen | None = None, path: str = READY_PATH) -> None:
    """Polls GET url+path until it answers 200, the process dies, or the deadline passes."""
    last = None
    delay = 0.05
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming ready")
        try:
            r = requests.get(url + path, timeout=5)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as e:  # not listening yet
            last = repr(e)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}{path} not ready: {last}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


# --------------------------------------------------------------------------------------------
# Raw HTTP


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def raw_request(
    base_url: str,
    method: str,
    raw_path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """Sends ``raw_path`` byte-for-byte (no dot-segment normalisation, no re-quoting).

    requests/urllib3 normalise ``/a/../b`` to ``/b`` before sending, which would hide exactly
    the path traversal attempts the tests want the server to see.
    """
    u = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.putrequest(method, raw_path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        elif method in ("PUT", "POST"):
            hdrs.setdefault("Content-Length", "0")
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def json_error(body: bytes) -> dict | None:
    """The MLflow error object ``{"error_code": ..., "message": ...}`` in ``body``, or None."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("error_code"), str) and "message" in obj:
        return obj
    return None


def assert_mlflow_error(status: int, body: bytes, *, expect_status=None, expect_code=None, where: str = ""):
    """Asserts an MLflow-style JSON error response and returns the parsed error."""
    if expect_status is not None:
        ok = status in expect_status if isinstance(expect_status, (tuple, list, set, range)) else status == expect_status
        assert ok, f"{where}: HTTP {status} (wanted {expect_status}); body={body[:300]!r}"
    err = json_error(body)
    assert err is not None, f"{where}: HTTP {status} body is not an MLflow error JSON: {body[:300]!r}"
    if expect_code is not None:
        codes = expect_code if isinstance(expect_code, (tuple, list, set)) else (expect_code,)
        assert err["error_code"] in codes, f"{where}: error_code {err['error_code']} not in {codes}: {err}"
    return err


def create_token(base_url: str, admin_token: str, scopes: list[str], name: str | None = None) -> str:
    """POST /api/v1/tokens (admin) -> the new token's secret."""
    r = requests.post(
        base_url + "/api/v1/tokens",
        json={"name": name or uniq("tok"), "scopes": scopes},
        headers=auth_headers(admin_token),
        timeout=30,
    )
    assert r.status_code in (200, 201), f"token creation failed: HTTP {r.status_code} {r.text[:300]}"
    body = r.json()
    assert isinstance(body.get("token"), str) and body["token"], body
    assert sorted(body.get("scopes", [])) == sorted(scopes), body
    return body["token"]


def artifact_proxy_path(artifact_uri: str) -> str:
    """``mlflow-artifacts:/1/abc/artifacts`` -> ``/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts``."""
    parsed = urllib.parse.urlsplit(artifact_uri)
    assert parsed.scheme == "mlflow-artifacts", f"artifact URI is not proxied: {artifact_uri}"
    return ARTIFACTS_API + "/" + parsed.path.lstrip("/")


def files_under(root: Path) -> list[Path]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            out.append(Path(dirpath) / f)
    return out


FIGURES_DIR = Path(os.environ.get("SLIPWAY_TEST_FIGURES_DIR") or REPO_ROOT / "target" / "test-figures")


def store_pair() -> str:
    """The store pair the servers of this run use, as in ``sqlite+local``, ``postgres+s3``."""
    metadata = "postgres" if os.environ.get("SLIPWAY_METADATA_URL", "").startswith("postgres") else "sqlite"
    artifacts = "s3" if os.environ.get("SLIPWAY_ARTIFACT_ROOT", "").startswith("s3://") else "local"
    return f"{metadata}+{artifacts}"


def record_figures(test: str, lines: list[str]) -> None:
    """Reports the figures of a passing test: printed, and written as ``FIGURES:`` lines to
    ``target/test-figures/interop-<test>-<store pair>.txt``, which scripts/test.sh prints at the
    end of a run (pytest hides the output of passing tests)."""
    pair = store_pair()
    text = "".join(f"FIGURES: interop::{test} ({pair}): {line}\n" for line in lines)
    print("\n" + text, end="")
    try:
        FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        (FIGURES_DIR / f"interop-{test}-{pair}.txt").write_text(text)
    except OSError as e:  # the figures are still on stdout
        print(f"could not write figures of {test} to {FIGURES_DIR}: {e}")
