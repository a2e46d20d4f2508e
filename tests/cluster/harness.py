"""Slipway's Kubernetes topology as local processes: N `slipway up` members with given roles
over ONE PostgreSQL database and ONE S3 prefix, each started with the environment the Helm chart
(deploy/helm/slipway) gives its pods.

    from harness import Cluster, LoadClient

    with Cluster("rollout", roles=["registry", "registry", "serving", "serving", "serving"]) as c:
        c.registry().url            # a registry member's base URL
        c.member("serving-1").stop()     # SIGTERM, as the kubelet does (returns the exit code)
        c.member("serving-1").start()    # same data dir, a new port (a new pod IP, as it were)
        c.member("serving-1").wait_ready()
        c.member("serving-2").kill9()
        with LoadClient(c.admin_token, [m.url for m in c.servings()]) as load: ...

What a member gets (see `chart_pod_env`; deploy/check asserts that the names match the chart's):
the SLIPWAY_* variables of the chart's registry/serving Deployments, with the values that must be
local here: SLIPWAY_LISTEN=127.0.0.1:0 (or a given port), a data dir and model cache of its own, the
cluster's database URL and S3 prefix as values instead of secretKeyRefs, and the admin token as a
mounted-style file (SLIPWAY_ADMIN_TOKEN_FILE) shared by every member (``token_via="env"`` passes
SLIPWAY_ADMIN_TOKEN instead). SLIPWAY_ORT_LIB points at the project's onnxruntime wheel, as the
image's ENV points at its copy. Nothing else of the test's environment is inherited (a pod's
environment is only what its spec says). The command is ``slipway up``: settings are never flags.

Stores come from the environment scripts/test.sh prepares, and their absence is an error (never a
skip): SLIPWAY_TEST_POSTGRES_URL (a server where the harness may CREATE DATABASE; each Cluster gets
a fresh database, dropped on close) and SeaweedFS from scripts/start-s3.sh (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, SLIPWAY_S3_ENDPOINT, SLIPWAY_TEST_S3_BUCKET; each Cluster gets its own
prefix). The binary is $SLIPWAY_BIN or target/debug/slipway.

Each member's stdout and stderr (JSON logs) go to target/cluster-logs/<cluster>/<member>.log,
appended across restarts with a header per start. The URL comes from the stdout line
``SLIPWAY_LISTENING=http://127.0.0.1:PORT``; readiness is ``GET /health/ready`` polled with a
deadline (no sleeps). Every wait is bounded.

Helpers shared with the interop suite come from tests/interop/slipway_testlib.py (imported).
"""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

_INTEROP = Path(__file__).resolve().parents[1] / "interop"
if str(_INTEROP) not in sys.path:
    sys.path.insert(0, str(_INTEROP))

from slipway_testlib import (  # noqa: E402
    LISTEN_PREFIX,
    READY_PATH,
    REPO_ROOT,
    auth_headers,
    new_admin_token,
    slipway_bin,
    uniq,
)

LOG_ROOT = REPO_ROOT / "target" / "cluster-logs"
START_TIMEOUT_S = float(os.environ.get("SLIPWAY_START_TIMEOUT", "60"))
IRIS_BODY = {
    "inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
}
ROLES = ("all", "registry", "serving")


class ClusterEnvironmentError(RuntimeError):
    """PostgreSQL or S3 is not configured: the cluster tests fail (they never skip)."""


# --------------------------------------------------------------------------------------------
# The chart's pod environment


def chart_pod_env(
    role: str,
    *,
    metadata_url: str,
    artifact_root: str,
    s3_endpoint: str | None,
    s3_region: str,
    aws_access_key_id: str,
    aws_secret_access_key: str,
    admin_token_file: str | None,
    data_dir: str,
    model_cache_dir: str,
    listen: str = "127.0.0.1:0",
    deployment_poll_ms: int = 1000,
    drain_seconds: int = 25,
    token_cache_seconds: int = 5,
    metrics_require_token: bool = True,
    intra_op_threads: int = 1,
    log_level: str = "info,ort=warn",
    demo: bool = False,
) -> dict[str, str]:
    """The environment of deploy/helm/slipway's containers for ``role`` (templates/_helpers.tpl,
    "slipway.env") with PostgreSQL + S3, secrets as values. Keep in step with the chart:
    deploy/check fails when the variable names differ."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    env = {
        "SLIPWAY_ROLE": role,
        "SLIPWAY_LISTEN": listen,
        "SLIPWAY_DATA_DIR": data_dir,
        "SLIPWAY_MODEL_CACHE_DIR": model_cache_dir,
        "SLIPWAY_LOG_FORMAT": "json",
        "SLIPWAY_LOG_LEVEL": log_level,
        "SLIPWAY_SHUTDOWN_GRACE_SECONDS": str(drain_seconds),
        "SLIPWAY_DEPLOYMENT_POLL_MS": str(deployment_poll_ms),
        "SLIPWAY_TOKEN_CACHE_SECONDS": str(token_cache_seconds),
        "SLIPWAY_METRICS_REQUIRE_TOKEN": "true" if metrics_require_token else "false",
        "SLIPWAY_INTRA_OP_THREADS": str(intra_op_threads),
        "SLIPWAY_METADATA_URL": metadata_url,
        "SLIPWAY_ARTIFACT_ROOT": artifact_root,
        "SLIPWAY_S3_REGION": s3_region,
        "AWS_ACCESS_KEY_ID": aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": aws_secret_access_key,
    }
    if role == "serving" or not demo:
        env["SLIPWAY_NO_DEMO"] = "true"
    if s3_endpoint:
        env["SLIPWAY_S3_ENDPOINT"] = s3_endpoint
    if admin_token_file:
        env["SLIPWAY_ADMIN_TOKEN_FILE"] = admin_token_file
    return env


def ort_lib() -> str | None:
    """libonnxruntime.so from the project's .venv (the image sets SLIPWAY_ORT_LIB to its copy)."""
    for p in sorted((REPO_ROOT / ".venv" / "lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so*")):
        return str(p)
    return None


# --------------------------------------------------------------------------------------------
# Stores


@dataclass
class Stores:
    """The shared stores of one cluster: a fresh database and an S3 prefix."""

    base_postgres_url: str
    database: str
    metadata_url: str
    bucket: str
    prefix: str
    s3_endpoint: str
    s3_region: str
    aws_access_key_id: str
    aws_secret_access_key: str

    @property
    def artifact_root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @classmethod
    def from_environment(cls, name: str) -> "Stores":
        env = os.environ
        missing = [k for k in ("SLIPWAY_TEST_POSTGRES_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                               "SLIPWAY_S3_ENDPOINT", "SLIPWAY_TEST_S3_BUCKET") if not env.get(k)]
        if missing:
            raise ClusterEnvironmentError(
                "the cluster tests need PostgreSQL and S3: missing " + ", ".join(missing)
                + ' (run: eval "$(scripts/ensure-postgres.sh)"; eval "$(scripts/start-s3.sh)")'
            )
        if shutil.which("psql") is None:
            raise ClusterEnvironmentError("psql is not installed (scripts/ensure-postgres.sh installs it)")
        base = env["SLIPWAY_TEST_POSTGRES_URL"]
        key = f"{name}_{uuid.uuid4().hex[:10]}".lower().replace("-", "_")
        database = "slw_c_" + "".join(ch for ch in key if ch.isalnum() or ch == "_")[:50]
        r = subprocess.run(["psql", base, "-qAtc", f"CREATE DATABASE {database}"], capture_output=True, text=True)
        if r.returncode != 0:
            raise ClusterEnvironmentError(f"cannot create database {database}: {r.stderr.strip()}")
        u = urllib.parse.urlsplit(base)
        url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + database, u.query, u.fragment))
        return cls(
            base_postgres_url=base,
            database=database,
            metadata_url=url,
            bucket=env["SLIPWAY_TEST_S3_BUCKET"],
            prefix=f"cluster-{key}",
            s3_endpoint=env["SLIPWAY_S3_ENDPOINT"],
            s3_region=env.get("AWS_REGION", "us-east-1"),
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def drop(self) -> None:
        subprocess.run(["psql", self.base_postgres_url, "-qAtc", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
                       capture_output=True, text=True)


# --------------------------------------------------------------------------------------------
# Members


def free_port() -> int:
    """A currently free loopback port (for members that must be probed before they print their URL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Member:
    """One `slipway up` process of a cluster: a pod, as it were. Restartable on the same data dir."""

    name: str
    role: str
    env: dict[str, str]
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    url: str = ""
    starts: int = 0
    started_at: float = 0.0  # time.monotonic() of the latest start
    listening_at: float | None = None  # when the URL line was printed
    ready_at: float | None = None  # when /health/ready first answered 200 after the latest start
    exit_codes: list[int | None] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _url_event: threading.Event = field(default_factory=threading.Event, repr=False)
    _log_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, *, port: int | None = None) -> "Member":
        """Starts the process (SLIPWAY_LISTEN=127.0.0.1:<port or 0>); does not wait for readiness."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        binary = slipway_bin()
        if not binary.is_file():
            raise RuntimeError(f"Slipway binary not found at {binary} (cargo build, or set SLIPWAY_BIN)")
        env = dict(self.env)
        env["SLIPWAY_LISTEN"] = f"127.0.0.1:{port or 0}"
        child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.url = f"http://127.0.0.1:{port}" if port else ""
        self.listening_at = None
        self.ready_at = None
        self._url_event = threading.Event()
        with self._log_lock, open(self.log_path, "a") as f:
            shown = {k: ("<redacted>" if k.startswith("AWS_SECRET") or k == "SLIPWAY_METADATA_URL" else v)
                     for k, v in sorted(env.items())}
            f.write(f"\n===== start #{self.starts} of {self.name} ({self.role}) at {time.strftime('%H:%M:%S')}: "
                    f"{binary} up\n===== env: {json.dumps(shown)}\n")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [str(binary), "up"],
            env=child_env,
            cwd=str(self.data_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, "out"), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, "err"), daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def _pump(self, stream, tag: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            if tag == "out" and line.startswith(LISTEN_PREFIX) and not self._url_event.is_set():
                self.url = line[len(LISTEN_PREFIX):].strip().rstrip("/")
                self.listening_at = time.monotonic()
                self._url_event.set()
            with self._log_lock, open(self.log_path, "a") as f:
                f.write(line if tag == "err" else "[stdout] " + line)
        stream.close()

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> str:
        """Waits for the SLIPWAY_LISTENING line; returns the URL."""
        deadline = time.monotonic() + timeout
        while not self._url_event.wait(0.05):
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc and self.proc.returncode} before listening\n"
                                   + self.log_tail())
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} printed no {LISTEN_PREFIX} line in {timeout}s\n" + self.log_tail())
        return self.url

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        """Waits until GET /health/ready answers 200; returns seconds since the start."""
        deadline = time.monotonic() + timeout
        if not self.url:
            self.wait_listening(timeout)
        delay = 0.02
        last = ""
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc and self.proc.returncode} "
                                   f"before it was ready\n" + self.log_tail())
            try:
                status, _ = http_get(self.url + READY_PATH, timeout=2)
                if status == 200:
                    self.ready_at = time.monotonic()
                    return self.ready_at - self.started_at
                last = f"HTTP {status}"
            except OSError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} at {self.url} not ready after {timeout}s: {last}\n" + self.log_tail())
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM (the kubelet's stop) and wait; SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._join()
        self.exit_codes.append(self.proc.returncode)
        return self.proc.returncode

    def kill9(self) -> None:
        """SIGKILL: a node loss or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._join()
        if self.proc is not None:
            self.exit_codes.append(self.proc.returncode)

    def restart(self, *, timeout: float = START_TIMEOUT_S) -> float:
        """stop() then start() then wait_ready(); returns the seconds to ready."""
        self.stop()
        self.start()
        return self.wait_ready(timeout)

    def _join(self) -> None:
        for t in self._threads:
            t.join(timeout=5)

    # -- inspection --------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return f"--- last {n} lines of {self.log_path} ---\n" + "\n".join(lines[-n:])


# --------------------------------------------------------------------------------------------
# The cluster


class Cluster:
    """Members over one database and one S3 prefix; a context manager that cleans up after itself.

    ``roles`` lists the members in start order, e.g. ["registry", "registry", "serving"]; members are
    named <role>-<index within the role>. ``start()`` starts the first registry (or all) member
    alone, so that the admin token, migrations and (with ``demo``) the demo model are set up once, then
    the others (``concurrently=True``: all at once, as a Deployment's pods start; add
    ``first_alone=False`` to race the first one too). ``env`` adds or
    overrides variables of every member; ``settings`` are chart_pod_env keywords (deployment_poll_ms,
    drain_seconds, ...).
    """

    def __init__(
        self,
        name: str,
        roles: Iterable[str] = ("registry", "registry", "serving", "serving", "serving"),
        *,
        demo: bool = True,
        env: dict[str, str] | None = None,
        token_via: str = "file",
        log_dir: Path | None = None,
        **settings,
    ):
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.roles = list(roles)
        for r in self.roles:
            if r not in ROLES:
                raise ValueError(f"unknown role {r!r}")
        self.demo = demo
        self.extra_env = dict(env or {})
        if token_via not in ("file", "env"):
            raise ValueError("token_via must be 'file' or 'env'")
        self.token_via = token_via
        self.settings = settings
        self.admin_token = new_admin_token()
        self.log_dir = log_dir or LOG_ROOT / self.name
        self.base_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"slipway-cluster-{self.name}"
        self.stores: Stores | None = None
        self.members: list[Member] = []
        self.closed = False

    # -- setup -------------------------------------------------------------------------------
    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, *, concurrently: bool = False, first_alone: bool = True, timeout: float = START_TIMEOUT_S) -> None:
        """Creates the stores and starts every member of ``roles``; waits until all are ready.

        ``first_alone=False`` with ``concurrently=True`` starts every member at the same instant,
        first registry included (a fresh install's pods racing for migrations and the admin token)."""
        self.stores = Stores.from_environment(self.name)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.base_dir / "admin-token"
        token_file.write_text(self.admin_token + "\n")
        token_file.chmod(0o600)
        counts: dict[str, int] = {}
        for role in self.roles:
            i = counts.get(role, 0)
            counts[role] = i + 1
            self.members.append(self._new_member(role, f"{role}-{i}"))
        if not self.members:
            return
        first = next((m for m in self.members if m.role in ("registry", "all")), self.members[0])
        if first_alone or not concurrently:
            first.start()
            first.wait_ready(timeout)
            rest = [m for m in self.members if m is not first]
        else:
            rest = list(self.members)
        if concurrently:
            for m in rest:
                m.start()
            for m in rest:
                m.wait_ready(timeout)
        else:
            for m in rest:
                m.start()
                m.wait_ready(timeout)

    def _new_member(self, role: str, name: str) -> Member:
        assert self.stores is not None
        data_dir = self.base_dir / name
        env = chart_pod_env(
            role,
            metadata_url=self.stores.metadata_url,
            artifact_root=self.stores.artifact_root,
            s3_endpoint=self.stores.s3_endpoint,
            s3_region=self.stores.s3_region,
            aws_access_key_id=self.stores.aws_access_key_id,
            aws_secret_access_key=self.stores.aws_secret_access_key,
            admin_token_file=str(self.base_dir / "admin-token") if self.token_via == "file" else None,
            data_dir=str(data_dir),
            model_cache_dir=str(data_dir / "model-cache"),
            demo=self.demo,
            **self.settings,
        )
        if self.token_via == "env":
            env["SLIPWAY_ADMIN_TOKEN"] = self.admin_token
        lib = ort_lib()
        if lib:
            env["SLIPWAY_ORT_LIB"] = lib
        env.update(self.extra_env)
        return Member(name=name, role=role, env=env, data_dir=data_dir, log_path=self.log_dir / f"{name}.log")

    def add_member(self, role: str, *, start: bool = True, timeout: float = START_TIMEOUT_S) -> Member:
        """A new member (scale-up); started and waited for unless ``start=False``."""
        n = sum(1 for m in self.members if m.role == role)
        m = self._new_member(role, f"{role}-{n}")
        self.members.append(m)
        if start:
            m.start()
            m.wait_ready(timeout)
        return m

    # -- access ------------------------------------------------------------------------------
    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def registries(self, *, alive: bool = True) -> list[Member]:
        return [m for m in self.members if m.role in ("registry", "all") and (m.alive or not alive)]

    def servings(self, *, alive: bool = True) -> list[Member]:
        return [m for m in self.members if m.role in ("serving", "all") and (m.alive or not alive)]

    def registry(self) -> Member:
        """The first live registry member."""
        regs = self.registries()
        if not regs:
            raise RuntimeError("no registry member is running")
        return regs[0]

    def headers(self) -> dict[str, str]:
        return auth_headers(self.admin_token)

    # -- teardown ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stops every member (SIGTERM, then SIGKILL), drops the database, removes the data dirs.
        Logs stay under target/cluster-logs/<cluster>/."""
        if self.closed:
            return
        self.closed = True
        threads = [threading.Thread(target=m.stop, daemon=True) for m in self.members if m.alive]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        if self.stores is not None:
            self.stores.drop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def describe(self) -> str:
        rows = [f"cluster {self.name}: db {self.stores.database if self.stores else '-'}, "
                f"artifacts {self.stores.artifact_root if self.stores else '-'}, logs {self.log_dir}"]
        for m in self.members:
            rows.append(f"  {m.name:<11} {m.role:<8} {'up  ' if m.alive else 'down'} {m.url or '-':<24} "
                        f"starts={m.starts} exits={m.exit_codes}")
        return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# HTTP


def http_get(url: str, *, headers: dict | None = None, timeout: float = 5) -> tuple[int, bytes]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + (f"?{u.query}" if u.query else ""), headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def api(member_or_url, method: str, path: str, token: str, *, json_body=None, params=None, timeout: float = 30):
    """One request with the admin (or another) token; returns the requests.Response."""
    import requests

    base = member_or_url.url if isinstance(member_or_url, Member) else member_or_url
    return requests.request(method, base + path, json=json_body, params=params, headers=auth_headers(token),
                            timeout=timeout)


# --------------------------------------------------------------------------------------------
# Load


@dataclass
class Result:
    """One request sent by LoadClient."""

    member: str  # the member that accepted the connection (after any refused ones)
    sent: float
    received: float
    status: int | None  # None: no HTTP answer (connection refused/reset, timeout)
    version: str | None
    error: str | None
    refused: tuple[str, ...] = ()  # members that refused the connection first (retry_refused)

    @property
    def ok(self) -> bool:
        return self.status == 200


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept-alive connection was closed by the server while idle (readable before a
    request means EOF or junk): what a pooling client (urllib3) checks before reusing one."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class LoadClient:
    """Closed-loop inference load spread round-robin over a rotation of members, as a Service spreads
    requests over its ready endpoints. ``remove(name)`` takes a member out of the rotation (the
    endpoint removal Kubernetes does before SIGTERM); requests already sent to it still complete.
    Each of ``threads`` workers keeps its own keep-alive connections. Bounded by ``max_seconds``
    and ``max_requests``; stops on ``stop()`` or leaving the ``with`` block.

    ``retry_refused`` makes it behave like a client behind a Service while a member stops: a
    kept-alive connection the server closed while idle is not reused (as urllib3 checks), and a
    *connection* that is refused is tried on the next member of the rotation (the request never
    reached anyone); the members that refused are in ``Result.refused``. A request whose
    connection was accepted and that then got no good answer is a failure, whatever happened.
    ``path`` and ``method`` send another request than V2 inference (e.g. a registry read, GET).
    """

    def __init__(
        self,
        token: str,
        members: Iterable[Member],
        *,
        model: str = "iris",
        body: dict | None = None,
        bodies: list[dict] | None = None,
        threads: int = 4,
        timeout: float = 10.0,
        max_seconds: float = 300.0,
        max_requests: int = 2_000_000,
        check: Callable[[dict], str | None] | None = None,
        retry_refused: bool = False,
        path: str | None = None,
        method: str = "POST",
    ):
        self.token = token
        self.model = model
        self.retry_refused = retry_refused
        self.path = path or f"/v2/models/{model}/infer"
        self.method = method
        # ``bodies`` cycles through several requests (varied traffic); ``body`` repeats one
        self.bodies = [json.dumps(b).encode() for b in (bodies or [body or IRIS_BODY])]
        self.body = self.bodies[0]
        self.timeout = timeout
        self.check = check
        self._rotation: list[Member] = list(members)
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._budget = max_requests
        self.results: list[Result] = []
        self._threads = [threading.Thread(target=self._run, daemon=True, name=f"load-{i}") for i in range(threads)]

    def __enter__(self) -> "LoadClient":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)

    def remove(self, name: str) -> Member:
        with self._lock:
            for i, m in enumerate(self._rotation):
                if m.name == name:
                    return self._rotation.pop(i)
        raise KeyError(name)

    def add(self, member: Member) -> None:
        with self._lock:
            if all(m.name != member.name for m in self._rotation):
                self._rotation.append(member)

    def rotation(self) -> list[str]:
        with self._lock:
            return [m.name for m in self._rotation]

    def _pick(self) -> tuple[str, str] | None:
        with self._lock:
            if not self._rotation or self._budget <= 0:
                return None
            self._budget -= 1
            m = self._rotation[self._next % len(self._rotation)]
            self._next += 1
            return m.name, m.url

    def _run(self) -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        sent = 0

        def drop(key: str) -> None:
            bad = conns.pop(key, None)
            if bad is not None:
                bad.close()

        try:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                picked = self._pick()
                if picked is None:
                    time.sleep(0.01)
                    continue
                name, url = picked
                refused: list[str] = []
                t0 = time.monotonic()
                status = version = error = None
                key = ""
                try:
                    while True:
                        u = urllib.parse.urlsplit(url)
                        key = f"{u.hostname}:{u.port}"
                        conn = conns.get(key)
                        if conn is not None and self.retry_refused and _dropped(conn):
                            drop(key)
                            conn = None
                        if conn is None:
                            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=self.timeout)
                            if self.retry_refused:
                                try:
                                    conn.connect()
                                except ConnectionRefusedError:
                                    # Nothing was sent: a Service would pick another endpoint.
                                    conn.close()
                                    refused.append(name)
                                    nxt = self._pick() if len(refused) < 10 else None
                                    if nxt is None:
                                        raise
                                    name, url = nxt
                                    t0 = time.monotonic()
                                    continue
                            conns[key] = conn
                        break
                    body = self.bodies[sent % len(self.bodies)] if self.method == "POST" else None
                    conn.request(self.method, self.path, body=body, headers=headers)
                    sent += 1
                    r = conn.getresponse()
                    data = r.read()
                    status = r.status
                    if status == 200:
                        doc = json.loads(data)
                        version = doc.get("model_version") if isinstance(doc, dict) else None
                        if self.check is not None:
                            error = self.check(doc)
                            if error:
                                status = -1
                    else:
                        error = data[:300].decode("utf-8", "replace")
                    if r.getheader("connection", "").lower() == "close":
                        drop(key)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    error = repr(e)
                    drop(key)
                self.results.append(Result(name, t0, time.monotonic(), status, version, error, tuple(refused)))
        finally:
            for c in conns.values():
                c.close()

    # -- figures -----------------------------------------------------------------------------
    def failures(self, since: float = 0.0) -> list[Result]:
        return [r for r in list(self.results) if r.sent >= since and not r.ok]

    def count(self, since: float = 0.0) -> int:
        return sum(1 for r in list(self.results) if r.sent >= since)

    def wait_for(self, n: int, *, since: float = 0.0, timeout: float = 30.0) -> None:
        """Waits until ``n`` requests were sent after ``since``."""
        deadline = time.monotonic() + timeout
        while self.count(since) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.count(since)} of {n} requests after {timeout}s")
            time.sleep(0.02)

    def summary(self, since: float = 0.0) -> str:
        rs = [r for r in list(self.results) if r.sent >= since]
        if not rs:
            return "requests=0"
        lat = sorted((r.received - r.sent) * 1000 for r in rs if r.ok)
        per = {}
        for r in rs:
            per[r.member] = per.get(r.member, 0) + 1
        p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
        refused = sum(len(r.refused) for r in rs)
        return (f"requests={len(rs)} failures={sum(1 for r in rs if not r.ok)} refused_connections_retried={refused} "
                f"p50={p(0.5):.1f}ms p99={p(0.99):.1f}ms max={(lat[-1] if lat else float('nan')):.1f}ms "
                f"per_member={json.dumps(dict(sorted(per.items())))}")


def wait_until(pred: Callable[[], object], *, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls ``pred`` until it returns something truthy; returns it. Raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


__all__ = [
    "Cluster",
    "ClusterEnvironmentError",
    "IRIS_BODY",
    "LoadClient",
    "Member",
    "Result",
    "Stores",
    "api",
    "chart_pod_env",
    "free_port",
    "http_get",
    "uniq",
    "wait_until",
]
