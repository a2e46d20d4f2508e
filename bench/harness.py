#!/usr/bin/env python3
"""Slipway benchmark harness (run it through bench/run, which installs what it needs).

Starts every contestant on 127.0.0.1 pinned to core 1, drives each with the same load
generator (wrk + bench/post.lua, pinned to core 0), measures throughput, latency, CPU and
memory, then Slipway-only figures (cold start, memory with 1 and 20 models, alias swap
under load) and the tracking comparison against `mlflow server`, and writes
docs/BENCHMARKS.md, docs/bench/*.svg and docs/bench/results.json.

Every process it starts is started in its own session and stopped by its process group
id at the end (also on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".bench-venv" / "bin"
SLIPWAY = ROOT / "target" / "release" / "slipway"
FLOOR = ROOT / "target" / "release" / "slipway-bench-floor"
TOKEN = "bench-admin-token-0123456789abcdef"
SERVER_CORE = "1"
LOAD_CORE = "0"
CLK_TCK = os.sysconf("SC_CLK_TCK")

STARTED: list[subprocess.Popen] = []
WORK = Path(tempfile.mkdtemp(prefix="slipway-bench-"))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(name: str, cmd: list[str], env: dict | None = None, cwd: Path | None = None,
          pin: str | None = SERVER_CORE, stdout=None) -> subprocess.Popen:
    full_env = dict(os.environ)
    full_env.update(env or {})
    if pin is not None:
        cmd = ["taskset", "-c", pin, *cmd]
    logf = open(WORK / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, env=full_env, cwd=cwd or ROOT, stdout=stdout or logf,
                            stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True)
    proc.bench_name = name  # type: ignore[attr-defined]
    STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """Stops one process we started, and its process group (its own children)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    else:
        try:  # leftover children of an exited leader
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all() -> None:
    for proc in list(reversed(STARTED)):
        try:
            stop(proc)
        except Exception as err:  # noqa: BLE001 - best effort at exit
            print(f"could not stop {proc.pid}: {err}", file=sys.stderr)


atexit.register(stop_all)


def _on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def proc_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def status_kb(pids: list[int], field: str) -> int:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def core_busy(core: str) -> float:
    """Busy seconds of one CPU core so far (from /proc/stat)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            f = [int(x) for x in line.split()[1:]]
            return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK
    return 0.0


def settle(limit: float = 20.0, quiet: float = 0.10) -> float:
    """Waits (up to `limit` s) until the server core is quiet: a contestant
    that wrk left with a backlog (a Python server still answering requests
    whose clients timed out) keeps the core busy after its cell, and the
    next cell would share the core with it. Returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        b0, s0 = core_busy(SERVER_CORE), time.monotonic()
        time.sleep(0.25)
        if (core_busy(SERVER_CORE) - b0) / (time.monotonic() - s0) < quiet:
            break
    return time.monotonic() - t0


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None,
              method: str = "GET", **kw) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{getattr(proc, 'bench_name', proc.pid)} exited "
                               f"with {proc.returncode}; see {WORK}")
        try:
            r = requests.request(method, url, timeout=2, **kw)
            if r.status_code == 200:
                return time.monotonic() - start
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


# --------------------------------------------------------------------------- Slipway


def start_slipway(name: str, demo: bool, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    data = WORK / f"{name}-data"
    data.mkdir(exist_ok=True)
    cmd = [str(SLIPWAY), "up", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)]
    if not demo:
        cmd.append("--no-demo")
    e = {"SLIPWAY_ADMIN_TOKEN": TOKEN, "SLIPWAY_LOG_LEVEL": "warn"}
    e.update(env or {})
    proc = spawn(name, cmd, env=e)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health/ready", 60, proc)
    return proc, base


def auth() -> dict:
    return {"Authorization": f"Bearer {TOKEN}"}


def register_onnx(base: str, name: str, onnx_path: Path, n_features: int,
                  alias: str | None = "champion") -> str:
    """Logs an ONNX file to Slipway with the mlflow client; returns the version."""
    import mlflow
    import numpy as np
    import onnx
    import onnxruntime as ort
    from mlflow.models import infer_signature

    os.environ["MLFLOW_TRACKING_TOKEN"] = TOKEN
    mlflow.set_tracking_uri(base)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, n_features)).astype(np.float32)
    outs = sess.run(None, {"float_input": x})
    sig = infer_signature({"float_input": x},
                          {o.name: v for o, v in zip(sess.get_outputs(), outs)})
    mlflow.set_experiment("bench-models")
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="model",
                                     registered_model_name=name, signature=sig)
    version = str(info.registered_model_version)
    if alias:
        mlflow.MlflowClient(base).set_registered_model_alias(name, alias, version)
    return version


def deploy(base: str, dep: str, model: str, max_batch: int = 256) -> float:
    t0 = time.monotonic()
    r = requests.put(f"{base}/api/v1/deployments/{dep}", headers=auth(), timeout=120,
                     json={"model": model, "alias": "champion", "max_batch_size": max_batch})
    if r.status_code >= 300:
        raise RuntimeError(f"deploy {dep}: {r.status_code} {r.text[:300]}")
    return time.monotonic() - t0


# --------------------------------------------------------------------------- load generation


def run_wrk(url: str, body: Path, headers: dict, conns: int, seconds: int,
            pids: list[int] | None = None, sticky: str = "") -> dict:
    hdr = "\n".join(f"{k}: {v}" for k, v in headers.items())
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_HEADERS=hdr, BENCH_STICKY=sticky)
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
           "--timeout", "10s", "-s", str(BENCH / "post.lua"), url]
    cpu0 = cpu_seconds(pids) if pids else 0.0
    core0, t0 = core_busy(SERVER_CORE), time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 30)
    cpu1 = cpu_seconds(pids) if pids else 0.0
    core1, t1 = core_busy(SERVER_CORE), time.monotonic()
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    res = json.loads(line.split(" ", 1)[1])
    secs = res["duration_us"] / 1e6
    res["rps"] = res["requests"] / secs if secs else 0.0
    res["errors"] = sum(res[k] for k in ("err_connect", "err_read", "err_write",
                                         "err_status", "err_timeout"))
    ok = max(res["requests"] - res["err_status"], 1)
    res["cpu_s"] = cpu1 - cpu0
    res["cpu_per_1k"] = (cpu1 - cpu0) / ok * 1000 if pids else None
    # Share of the server core used by anything other than the server (other tenants).
    res["foreign_core_share"] = max(0.0, (core1 - core0) - (cpu1 - cpu0)) / (t1 - t0)
    return res


# --------------------------------------------------------------------------- bodies


def rows_for(workload: dict) -> list[list[float]]:
    n, batch = workload["n_features"], workload["batch"]
    if workload["model"] == "iris":
        from sklearn.datasets import load_iris
        data = load_iris().data
        return [[float(v) for v in data[(i * 37) % len(data)]] for i in range(batch)]
    rng = random.Random(42)
    return [[round(rng.gauss(0, 1), 5) for _ in range(n)] for _ in range(batch)]


def write_bodies(workload: dict, d: Path) -> dict[str, Path]:
    rows = rows_for(workload)
    flat = [v for r in rows for v in r]
    shape = [len(rows), len(rows[0])]
    d.mkdir(parents=True, exist_ok=True)
    bodies = {}

    def put(key: str, data: bytes) -> None:
        (d / key).write_bytes(data)
        bodies[key] = d / key

    v2 = {"inputs": [{"name": "float_input", "shape": shape, "datatype": "FP32", "data": flat}]}
    put("v2.json", json.dumps(v2).encode())
    header = {"inputs": [{"name": "float_input", "shape": shape, "datatype": "FP32",
                          "parameters": {"binary_data_size": 4 * len(flat)}}],
              "parameters": {"binary_data_output": True}}
    hbytes = json.dumps(header).encode()
    put("v2.bin", hbytes + struct.pack(f"<{len(flat)}f", *flat))
    bodies["v2.bin.header_len"] = len(hbytes)  # type: ignore[assignment]
    put("scoring.json", json.dumps({"inputs": rows}).encode())
    ms = {"inputs": [{"name": "predict", "shape": shape, "datatype": "FP32", "data": flat}]}
    if workload["model"] == "iris":
        ms["outputs"] = [{"name": "predict"}, {"name": "predict_proba"}]
    put("mlserver.json", json.dumps(ms).encode())
    return bodies


# --------------------------------------------------------------------------- contestants

CONTESTANTS = [
    ("slipway-json", "Slipway, V2 JSON"),
    ("slipway-binary", "Slipway, V2 binary"),
    ("slipway-scoring", "Slipway, MLflow scoring"),
    ("mlserver", "MLServer 1.7 + sklearn"),
    ("mlserver-batched", "MLServer 1.7 + sklearn, adaptive batching"),
    ("mlflow", "mlflow models serve (sklearn)"),
    ("fastapi", "FastAPI + uvicorn + onnxruntime"),
    ("floor", "floor (axum, parse + fixed response)"),
]
LABEL = dict(CONTESTANTS)


def start_contestants(workload: dict, models: Path, bodies: dict) -> tuple[dict, dict]:
    """Starts every contestant for one workload. Returns (targets, not_measured)."""
    m = workload["model"]
    mdir = models / m
    procs: dict[str, subprocess.Popen] = {}
    targets: dict[str, dict] = {}
    failed: dict[str, str] = {}
    py = str(VENV_BIN / "python")

    # Python servers first (they take longest to start), then Slipway.
    ports = {k: free_port() for k, _ in CONTESTANTS}
    for key, repo in (("mlserver", "mlserver-plain"), ("mlserver-batched", "mlserver-batched")):
        env = {"MLSERVER_HOST": "127.0.0.1", "MLSERVER_HTTP_PORT": str(ports[key]),
               "MLSERVER_GRPC_PORT": str(free_port()), "MLSERVER_METRICS_PORT": str(free_port()),
               "MLSERVER_PARALLEL_WORKERS": os.environ.get("BENCH_MLSERVER_WORKERS", "1"),
               "MLSERVER_LOAD_MODELS_AT_STARTUP": "true"}
        procs[key] = spawn(f"{m}-{key}", [str(VENV_BIN / "mlserver"), "start", str(mdir / repo)],
                           env=env)
    procs["mlflow"] = spawn(f"{m}-mlflow", [str(VENV_BIN / "mlflow"), "models", "serve", "-m",
                                           str(mdir / "mlflow-sklearn"), "--env-manager", "local",
                                           "-h", "127.0.0.1", "-p", str(ports["mlflow"]), "-w", "1"],
                            env={"PATH": f"{VENV_BIN}:{os.environ['PATH']}"})
    procs["fastapi"] = spawn(f"{m}-fastapi", [py, "-m", "uvicorn", "bench.fastapi_app:app",
                                             "--host", "127.0.0.1", "--port", str(ports["fastapi"]),
                                             "--workers", "1", "--no-access-log"],
                             env={"BENCH_ONNX": str(mdir / "model.onnx")})
    sw, base = start_slipway(f"{m}-slipway", demo=False)
    version = register_onnx(base, m, mdir / "model.onnx", workload["n_features"])
    deploy(base, m, m)
    log(f"slipway: {m} v{version} deployed")
    # Slipway's own response to the V2 JSON body is the floor's fixed response.
    r = requests.post(f"{base}/v2/models/{m}/infer", data=bodies["v2.json"].read_bytes(),
                      headers={**auth(), "Content-Type": "application/json"}, timeout=10)
    r.raise_for_status()
    resp = WORK / f"{workload['key']}-floor-response.json"
    resp.write_bytes(r.content)
    procs["floor"] = spawn(f"{m}-floor", [str(FLOOR), f"127.0.0.1:{ports['floor']}", str(resp)])

    bin_headers = {**auth(), "Content-Type": "application/octet-stream",
                   "Inference-Header-Content-Length": str(bodies["v2.bin.header_len"])}
    json_headers = {**auth(), "Content-Type": "application/json"}
    targets["slipway-json"] = dict(url=f"{base}/v2/models/{m}/infer", body=bodies["v2.json"],
                                   headers=json_headers, proc=sw)
    targets["slipway-binary"] = dict(url=f"{base}/v2/models/{m}/infer", body=bodies["v2.bin"],
                                     headers=bin_headers, proc=sw)
    targets["slipway-scoring"] = dict(url=f"{base}/api/v1/deployments/{m}/invocations",
                                      body=bodies["scoring.json"], headers=json_headers, proc=sw)
    for key in ("mlserver", "mlserver-batched"):
        targets[key] = dict(url=f"http://127.0.0.1:{ports[key]}/v2/models/{m}/infer",
                            body=bodies["mlserver.json"], headers={}, proc=procs[key],
                            ready=f"http://127.0.0.1:{ports[key]}/v2/models/{m}/ready")
    targets["mlflow"] = dict(url=f"http://127.0.0.1:{ports['mlflow']}/invocations",
                             body=bodies["scoring.json"], headers={}, proc=procs["mlflow"],
                             ready=f"http://127.0.0.1:{ports['mlflow']}/ping")
    targets["fastapi"] = dict(url=f"http://127.0.0.1:{ports['fastapi']}/v2/models/{m}/infer",
                              body=bodies["v2.json"], headers={}, proc=procs["fastapi"],
                              ready=f"http://127.0.0.1:{ports['fastapi']}/health/ready")
    targets["floor"] = dict(url=f"http://127.0.0.1:{ports['floor']}/v2/models/{m}/infer",
                            body=bodies["v2.json"], headers={}, proc=procs["floor"],
                            ready=f"http://127.0.0.1:{ports['floor']}/health/ready")
    for key, t in list(targets.items()):
        try:
            if "ready" in t:
                wait_http(t["ready"], 120, t["proc"])
            ct = t["headers"].get("Content-Type", "application/json")
            r = requests.post(t["url"], data=t["body"].read_bytes(),
                              headers={**t["headers"], "Content-Type": ct}, timeout=30)
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
            t["response_bytes"] = len(r.content)
            t["sample"] = r.content[:160].decode("utf-8", "replace")
        except Exception as err:  # noqa: BLE001 - record and go on
            failed[key] = str(err)[:400]
            log(f"{key}: NOT MEASURED: {failed[key]}")
            targets.pop(key)
    return targets, failed


def run_workload(workload: dict, models: Path, cfg: dict) -> dict:
    log(f"workload {workload['key']}: starting contestants")
    bodies = write_bodies(workload, WORK / "bodies" / workload["key"])
    targets, failed = start_contestants(workload, models, bodies)
    cells: dict[str, dict[int, list[dict]]] = {k: {c: [] for c in cfg["conc"]} for k in targets}
    order = [k for k, _ in CONTESTANTS if k in targets]
    try:
        for rep in range(cfg["reps"]):
            rot = order[rep % len(order):] + order[:rep % len(order)]
            for c in cfg["conc"]:
                for key in rot:
                    t = targets[key]
                    pids = proc_tree(t["proc"].pid)
                    if rep == 0:  # server-side warm state persists across repetitions
                        run_wrk(t["url"], t["body"], t["headers"], c, cfg["warmup"])
                    settle()
                    res = run_wrk(t["url"], t["body"], t["headers"], c, cfg["duration"], pids)
                    res["rows_per_s"] = res["rps"] * workload["batch"]
                    cells[key][c].append(res)
                    log(f"  rep {rep + 1} c={c:<3} {key:<17} {res['rps']:>9.0f} req/s "
                        f"p99 {res['p99_us'] / 1000:7.2f} ms  cpu/1k {res['cpu_per_1k']:.3f} s"
                        f"  other load on core {res['foreign_core_share']:.0%}"
                        + (f"  ERRORS {res['errors']}" if res["errors"] else ""))
        peak = {k: status_kb(proc_tree(t["proc"].pid), "VmHWM") for k, t in targets.items()}
        procs = {k: len(proc_tree(t["proc"].pid)) for k, t in targets.items()}
    finally:
        for t in {id(t["proc"]): t["proc"] for t in targets.values()}.values():
            stop(t)
        for p in list(STARTED):
            if getattr(p, "bench_name", "").startswith(workload["model"] + "-"):
                stop(p)
    return {"workload": workload, "cells": cells, "peak_rss_kb": peak, "processes": procs,
            "not_measured": failed,
            "response_bytes": {k: t.get("response_bytes") for k, t in targets.items()},
            "samples": {k: t.get("sample") for k, t in targets.items()}}


# --------------------------------------------------------------------------- Slipway extras


def slipway_extras(models: Path, cfg: dict) -> dict:
    out: dict = {}
    iris_body = json.dumps({"inputs": [{"name": "float_input", "shape": [1, 4],
                                        "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]})
    hdrs = {**auth(), "Content-Type": "application/json"}

    def first_prediction(base: str, proc, dep: str = "iris", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"slipway exited {proc.returncode}")
            try:
                r = requests.post(f"{base}/v2/models/{dep}/infer", data=iris_body, headers=hdrs,
                                  timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.002)
        raise RuntimeError("no prediction")

    # Cold start: process start -> first successful prediction of the demo model.
    cold, warm = [], []
    for i in range(cfg["cold_reps"]):
        data = WORK / f"cold-{i}"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        for kind in ("fresh", "restart"):
            t0 = time.monotonic()
            proc = spawn(f"cold-{i}-{kind}", [str(SLIPWAY), "up", "--listen",
                                              f"127.0.0.1:{port}", "--data-dir", str(data)],
                         env={"SLIPWAY_ADMIN_TOKEN": TOKEN, "SLIPWAY_LOG_LEVEL": "warn"})
            first_prediction(base, proc)
            (cold if kind == "fresh" else warm).append(time.monotonic() - t0)
            stop(proc)
    out["cold_start_s"] = cold
    out["restart_s"] = warm
    log(f"cold start (fresh data dir) {[round(x, 3) for x in cold]} s; restart {[round(x, 3) for x in warm]} s")

    # Memory with the demo model, then with 20 deployed models.
    proc, base = start_slipway("mem", demo=True)
    first_prediction(base, proc)
    pids = [proc.pid]
    body = WORK / "iris-b1.json"
    body.write_text(iris_body)
    out["rss_idle_demo_kb"] = status_kb(pids, "VmRSS")
    run_wrk(f"{base}/v2/models/iris/infer", body, hdrs, 64, cfg["mem_load_s"], pids)
    out["rss_demo_kb"] = status_kb(pids, "VmRSS")
    out["hwm_demo_kb"] = status_kb(pids, "VmHWM")
    fleet = sorted((models / "fleet").glob("*.onnx"))[: cfg["fleet"] - 1]
    for f in fleet:
        name = f"fleet-{f.stem}"
        register_onnx(base, name, f, 4)
        deploy(base, name, name)
    for f in fleet:
        first_prediction(base, proc, f"fleet-{f.stem}")
    run_wrk(f"{base}/v2/models/iris/infer", body, hdrs, 64, cfg["mem_load_s"], pids)
    out["fleet_models"] = len(fleet) + 1
    out["rss_fleet_kb"] = status_kb(pids, "VmRSS")
    out["hwm_fleet_kb"] = status_kb(pids, "VmHWM")
    log(f"memory: demo RSS {out['rss_demo_kb'] / 1024:.1f} MB (peak {out['hwm_demo_kb'] / 1024:.1f}); "
        f"{out['fleet_models']} models RSS {out['rss_fleet_kb'] / 1024:.1f} MB "
        f"(peak {out['hwm_fleet_kb'] / 1024:.1f})")

    # Alias swap under load: wrk at c=8 on a deployment following `champion`; move the
    # alias between two versions and time alias-set -> first response from the new version.
    import mlflow
    client = mlflow.MlflowClient(base)
    v1 = register_onnx(base, "swap", models / "swap" / "v1.onnx", 4)
    v2 = register_onnx(base, "swap", models / "swap" / "v2.onnx", 4, alias=None)
    deploy(base, "swap", "swap")
    swap_url = f"{base}/v2/models/swap/infer"
    swaps = []
    load_s = cfg["swap_reps"] * 3 + 3
    hdr = "\n".join(f"{k}: {v}" for k, v in hdrs.items())
    wrk = subprocess.Popen(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c8", f"-d{load_s}s",
                            "--timeout", "10s", "-s", str(BENCH / "post.lua"), swap_url],
                           env=dict(os.environ, BENCH_BODY=str(body), BENCH_HEADERS=hdr),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    STARTED.append(wrk)
    time.sleep(1.5)
    sess = requests.Session()
    target = v2
    for _ in range(cfg["swap_reps"]):
        t0 = time.monotonic()
        client.set_registered_model_alias("swap", "champion", target)
        seen = None
        while time.monotonic() - t0 < 30:
            r = sess.post(swap_url, data=iris_body, headers=hdrs, timeout=5)
            if r.status_code == 200 and str(r.json().get("model_version")) == target:
                seen = time.monotonic() - t0
                break
            time.sleep(0.002)
        swaps.append(seen)
        log(f"alias swap -> v{target}: {seen if seen is None else round(seen, 3)} s")
        target = v1 if target == v2 else v2
        time.sleep(1.0)
    stdout, _ = wrk.communicate(timeout=load_s + 30)
    STARTED.remove(wrk)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH_RESULT ")), "{}")
    res = json.loads(line.split(" ", 1)[1]) if " " in line else {}
    out["swap_s"] = swaps
    out["swap_load"] = res
    out["poll_ms"] = 1000
    stop(proc)
    return out


# --------------------------------------------------------------------------- rollouts

STICKY = "x-user-id"
ROLLOUT_CELLS = [
    # (key, deployment, concurrency, what)
    ("plain-64", "iris-plain", 64, "plain deployment (one version)"),
    ("split-64", "iris-split", 64, "fixed 90/10 split, sticky on x-user-id"),
    ("canary-64", "iris-canary", 64, "canary rollout at its 10% step (split, sticky, step "
                                     "statistics, paired runs of 25% of candidate requests)"),
    ("plain-8", "iris-plain", 8, "plain deployment (one version)"),
    ("shadow-8", "iris-shadow", 8, "shadow of the other version at fraction 1.0"),
]


def rollouts(models: Path, cfg: dict) -> dict:
    """The rollout budgets: the same Slipway serving the same iris body through a plain
    deployment, a sticky 90/10 split, a canary at 10% and a 100% shadow, cells interleaved.
    Every cell sends the sticky header (cycling keys), the plain one ignores it."""
    proc, base = start_slipway("rollouts", demo=False)
    v1 = register_onnx(base, "iris", models / "iris" / "model.onnx", 4)
    v2 = register_onnx(base, "iris", models / "fleet" / "iris-00.onnx", 4, alias=None)

    def put(dep: str, extra: dict) -> None:
        r = requests.put(f"{base}/api/v1/deployments/{dep}", headers=auth(), timeout=120,
                         json={"model": "iris", "alias": "champion", "max_batch_size": 256,
                               **extra})
        if r.status_code >= 300:
            raise RuntimeError(f"deploy {dep}: {r.status_code} {r.text[:300]}")

    put("iris-plain", {})
    put("iris-split", {"traffic": [{"version": v1, "weight": 90}, {"version": v2, "weight": 10}],
                       "sticky_header": STICKY})
    put("iris-canary", {"sticky_header": STICKY})
    put("iris-shadow", {"shadow": {"version": v2, "fraction": 1.0}})
    r = requests.post(f"{base}/api/v1/deployments/iris-canary/rollouts", headers=auth(),
                      timeout=30, json={"candidate": {"version": v2}, "strategy": "canary",
                                        "steps": [10, 100], "step_seconds": 86400,
                                        "min_requests": 100_000_000})
    if r.status_code >= 300:
        raise RuntimeError(f"rollout: {r.status_code} {r.text[:300]}")
    rollout_id = r.json()["id"]
    body = WORK / "iris-b1-rollouts.json"
    body.write_text(json.dumps({"inputs": [{"name": "float_input", "shape": [1, 4],
                                            "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}))
    hdrs = {**auth(), "Content-Type": "application/json"}
    for dep in ("iris-plain", "iris-split", "iris-canary", "iris-shadow"):
        wait_http(f"{base}/v2/models/{dep}/ready", 60, proc, headers=auth())
    pids = proc_tree(proc.pid)
    cells: dict[str, list[dict]] = {k: [] for k, *_ in ROLLOUT_CELLS}
    # Short cells, many repetitions: this machine's speed drifts by tens of percent over
    # tens of seconds, so a ratio is only fair between cells run seconds apart.
    reps = 3 * max(cfg["reps"], 5) if not cfg.get("quick") else 1
    seconds = max(2, round(cfg["duration"] / 3))
    try:
        for key, dep, c, _ in ROLLOUT_CELLS:
            run_wrk(f"{base}/v2/models/{dep}/infer", body, hdrs, c, cfg["warmup"], sticky=STICKY)
        for rep in range(reps):
            order = ROLLOUT_CELLS if rep % 2 == 0 else ROLLOUT_CELLS[::-1]
            for key, dep, c, _ in order:
                res = run_wrk(f"{base}/v2/models/{dep}/infer", body, hdrs, c, seconds,
                              pids, sticky=STICKY)
                cells[key].append(res)
                log(f"  rollouts rep {rep + 1} {key:<10} {res['rps']:>9.0f} req/s "
                    f"p99 {res['p99_us'] / 1000:7.3f} ms  cpu/1k {res['cpu_per_1k']:.3f} s"
                    f"  other load on core {res['foreign_core_share']:.0%}"
                    + (f"  ERRORS {res['errors']}" if res["errors"] else ""))
        shadow = requests.get(f"{base}/api/v1/deployments/iris-shadow", headers=auth(),
                              timeout=10).json().get("shadow")
        ro = requests.get(f"{base}/api/v1/deployments/iris-canary/rollouts/{rollout_id}",
                          headers=auth(), timeout=10).json()
    finally:
        stop(proc)
    return {"cells": cells, "reps": reps, "duration": seconds, "shadow": shadow,
            "rollout": {"state": ro.get("state"), "weights": ro.get("weights")},
            "labels": {k: what for k, _, _, what in ROLLOUT_CELLS},
            "versions": {"stable": v1, "other": v2}}


# --------------------------------------------------------------------------- monitoring


def metric_sum(base: str, name: str, **labels) -> float:
    text = requests.get(f"{base}/metrics", headers=auth(), timeout=30).text
    total = 0.0
    for ln in text.splitlines():
        if not ln.startswith(name + "{") and not ln.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in ln for k, v in labels.items()):
            total += float(ln.rsplit(" ", 1)[1])
    return total


def monitoring(models: Path, cfg: dict) -> dict:
    """The monitoring budget: the same iris batch-1 body through a deployment logging every
    request (drift gauges refreshed every 10 s) and one with the log off, cells interleaved;
    then 10 million rows logged (batch 256) with memory sampled, and the drift query timed."""
    interval = 10
    proc, base = start_slipway("monitoring", demo=False, env={
        "SLIPWAY_MONITORING_INTERVAL_SECONDS": str(interval)})
    register_onnx(base, "iris", models / "iris" / "model.onnx", 4)
    for dep, fraction in (("iris-logged", 1.0), ("iris-unlogged", 0.0)):
        r = requests.put(f"{base}/api/v1/deployments/{dep}", headers=auth(), timeout=120,
                         json={"model": "iris", "alias": "champion", "max_batch_size": 256,
                               "monitoring": {"log_fraction": fraction}})
        if r.status_code >= 300:
            raise RuntimeError(f"deploy {dep}: {r.status_code} {r.text[:300]}")
    body = WORK / "iris-b1-monitoring.json"
    body.write_text(json.dumps({"inputs": [{"name": "float_input", "shape": [1, 4],
                                            "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}))
    hdrs = {**auth(), "Content-Type": "application/json"}
    pids = proc_tree(proc.pid)
    cells: dict[str, list[dict]] = {"logged": [], "unlogged": []}
    reps = 1 if cfg.get("quick") else max(cfg["reps"], 5)
    out: dict = {"interval_s": interval, "reps": reps, "duration": cfg["duration"]}
    try:
        for dep in ("iris-logged", "iris-unlogged"):
            run_wrk(f"{base}/v2/models/{dep}/infer", body, hdrs, 64, cfg["warmup"])
        for rep in range(reps):
            order = ["logged", "unlogged"] if rep % 2 == 0 else ["unlogged", "logged"]
            for key in order:
                res = run_wrk(f"{base}/v2/models/iris-{key}/infer", body, hdrs, 64,
                              cfg["duration"], pids)
                cells[key].append(res)
                log(f"  monitoring rep {rep + 1} {key:<9} {res['rps']:>9.0f} req/s "
                    f"p99 {res['p99_us'] / 1000:7.3f} ms  cpu/1k {res['cpu_per_1k']:.3f} s"
                    + (f"  ERRORS {res['errors']}" if res["errors"] else ""))
        out["cells"] = cells
        # volume: rows logged at batch 256 until the target, memory sampled
        target = 200_000 if cfg.get("quick") else 10_000_000
        rows = [[5.1 + (i % 7) * 0.1, 3.5, 1.4 + (i % 5) * 0.2, 0.2] for i in range(256)]
        big = WORK / "iris-b256-monitoring.json"
        big.write_text(json.dumps({"inputs": [{"name": "float_input", "shape": [256, 4],
                                               "datatype": "FP32",
                                               "data": [v for r in rows for v in r]}]}))
        t0 = time.monotonic()
        hwm, samples = 0, []
        while True:
            logged = metric_sum(base, "slipway_prediction_log_rows_total", deployment="iris-logged")
            rss = status_kb(proc_tree(proc.pid), "VmRSS")
            samples.append((round(time.monotonic() - t0, 1), int(logged), rss))
            if logged >= target:
                break
            res = run_wrk(f"{base}/v2/models/iris-logged/infer", big, hdrs, 16, 10)
            log(f"  monitoring volume: {logged:,.0f} rows logged, RSS {rss / 1024:.0f} MB, "
                f"{res['rps'] * 256:,.0f} rows/s")
            if time.monotonic() - t0 > 3600:
                break
        out["volume"] = {"target_rows": target, "rows": samples[-1][1],
                         "seconds": round(time.monotonic() - t0, 1), "samples": samples,
                         "peak_rss_kb": status_kb(proc_tree(proc.pid), "VmHWM"),
                         "dropped": metric_sum(base, "slipway_prediction_log_dropped_rows_total"),
                         "files": metric_sum(base, "slipway_prediction_log_files_total",
                                             deployment="iris-logged")}
        q0 = time.monotonic()
        d = requests.get(f"{base}/api/v1/deployments/iris-logged/drift", headers=auth(),
                         timeout=600)
        out["drift_query_s"] = round(time.monotonic() - q0, 2)
        out["drift_rows"] = d.json().get("current_count") if d.ok else None
        out["peak_rss_after_drift_kb"] = status_kb(proc_tree(proc.pid), "VmHWM")
        log(f"  drift over {out['drift_rows']} rows in {out['drift_query_s']} s; "
            f"peak RSS {out['peak_rss_after_drift_kb'] / 1024:.0f} MB")
    finally:
        stop(proc)
    return out


# --------------------------------------------------------------------------- tracking


def tracking(cfg: dict) -> dict:
    servers = {}
    data = WORK / "mlflow-server"
    data.mkdir()
    port = free_port()
    p = spawn("track-mlflow", [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri",
                               f"sqlite:///{data}/mlflow.db", "--artifacts-destination",
                               str(data / "artifacts"), "--host", "127.0.0.1",
                               "--port", str(port)],
              env={"PATH": f"{VENV_BIN}:{os.environ['PATH']}"})
    wait_http(f"http://127.0.0.1:{port}/health", 180, p)
    servers["mlflow"] = (p, f"http://127.0.0.1:{port}")
    sp, sbase = start_slipway("track-slipway", demo=False)
    servers["slipway"] = (sp, sbase)
    res: dict = {k: {"log": [], "create": [], "search_all": [], "search_filter": []}
                 for k in servers}
    order = ["slipway", "mlflow"]

    def client(task: str, base: str, exp: str) -> dict:
        cmd = ["taskset", "-c", LOAD_CORE, str(VENV_BIN / "python"),
               str(BENCH / "tracking_client.py"), task, base, exp,
               str(cfg["track_metrics"]), str(cfg["track_runs"])]
        out = subprocess.run(cmd, env=dict(os.environ, MLFLOW_TRACKING_TOKEN=TOKEN),
                             capture_output=True, text=True, timeout=900)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("TRACK ")), None)
        if line is None:
            raise RuntimeError(f"tracking client {task} failed: {out.stderr[-1500:]}")
        return json.loads(line[6:])

    for k in order:  # first requests (lazy imports, connection pools) are not timed
        client("warm", servers[k][1], "warm")
    for rep in range(cfg["reps"]):
        for k in order[rep % 2:] + order[:rep % 2]:
            r = client("log", servers[k][1], f"log-{rep}")
            res[k]["log"].append(r["seconds"])
            log(f"tracking {k}: log {cfg['track_metrics']} metrics / 20 runs: {r['seconds']:.2f} s")
    for k in order:
        r = client("create", servers[k][1], "search")
        res[k]["create"].append(r["seconds"])
        log(f"tracking {k}: create {cfg['track_runs']} runs: {r['seconds']:.2f} s")
    for rep in range(cfg["reps"]):
        for k in order[rep % 2:] + order[:rep % 2]:
            r = client("search", servers[k][1], "search")
            res[k]["search_all"].append(r["all_seconds"])
            res[k]["search_filter"].append(r["filter_seconds"])
            res[k]["found"] = r["found"]
            log(f"tracking {k}: search all {r['all_seconds']:.3f} s ({r['found']} runs), "
                f"filtered {r['filter_seconds']:.3f} s")
    for k, (proc, _) in servers.items():
        res[k]["peak_rss_kb"] = status_kb(proc_tree(proc.pid), "VmHWM")
        stop(proc)
    return res


# --------------------------------------------------------------------------- main


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
               "unknown")
    mem = next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
               if ln.startswith("MemTotal"))
    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return "?"
    import importlib.metadata as md
    pk = {p: md.version(p) for p in ("mlserver", "mlserver-sklearn", "mlflow", "fastapi",
                                     "uvicorn", "onnxruntime", "scikit-learn", "pydantic")}
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": os.uname().release, "python": sys.version.split()[0],
            "rustc": ver(["rustc", "--version"]), "wrk": ver(["wrk", "--version"]) or "wrk",
            "packages": pk, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


WORKLOADS = [
    {"key": "iris-b1", "model": "iris", "batch": 1, "n_features": 4,
     "title": "iris (StandardScaler + LogisticRegression, 4 features), batch 1"},
    {"key": "iris-b256", "model": "iris", "batch": 256, "n_features": 4,
     "title": "iris, batch 256"},
    {"key": "rf-b1", "model": "rf", "batch": 1, "n_features": 16,
     "title": "RandomForestRegressor (200 trees, depth 10, 16 features), batch 1"},
    {"key": "mlp-b64", "model": "mlp", "batch": 64, "n_features": 64,
     "title": "MLPRegressor (64 -> 256 -> 256 -> 256 -> 1), batch 64"},
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smoke run: a couple of cells")
    ap.add_argument("--only", default="",
                    help="comma list of parts: serving,extras,rollouts,monitoring,tracking (the parts not "
                         "run keep their figures from the last docs/bench/results.json)")
    ap.add_argument("--workloads", default="", help="comma list of workload keys")
    ap.add_argument("--command", default="bench/run")
    args = ap.parse_args()
    if args.quick:
        cfg = dict(reps=1, conc=[1, 64], warmup=1, duration=2, cold_reps=1, fleet=3,
                   mem_load_s=1, swap_reps=1, track_metrics=1000, track_runs=200, quick=True)
        wl = [WORKLOADS[0]]
    else:
        cfg = dict(reps=3, conc=[1, 8, 64], warmup=1, duration=int(os.environ.get("BENCH_SECONDS", 3)),
                   cold_reps=3, fleet=20, mem_load_s=3, swap_reps=3, track_metrics=10000,
                   track_runs=5000)
        wl = WORKLOADS
    if args.workloads:
        wl = [w for w in WORKLOADS if w["key"] in args.workloads.split(",")]
    parts = set(args.only.split(",")) if args.only else {"serving", "extras", "rollouts",
                                                         "monitoring", "tracking"}
    models = ROOT / ".bench-venv" / "models"
    subprocess.run([str(VENV_BIN / "python"), str(BENCH / "make_models.py"), str(models)],
                   check=True)
    t_start = time.monotonic()
    results: dict = {"machine": machine(), "config": cfg, "command": args.command,
                     "quick": args.quick, "workloads": [], "extras": None, "rollouts": None,
               "monitoring": None, "tracking": None}
    results["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    log(f"work dir {WORK}")
    if "serving" in parts:
        for w in wl:
            results["workloads"].append(run_workload(w, models, cfg))
    if "extras" in parts:
        try:
            results["extras"] = slipway_extras(models, cfg)
        except Exception as err:  # noqa: BLE001
            results["extras"] = {"error": str(err)}
            log(f"extras failed: {err}")
    if "rollouts" in parts:
        try:
            results["rollouts"] = rollouts(models, cfg)
        except Exception as err:  # noqa: BLE001
            results["rollouts"] = {"error": str(err)}
            log(f"rollouts failed: {err}")
    if "monitoring" in parts:
        try:
            results["monitoring"] = monitoring(models, cfg)
        except Exception as err:  # noqa: BLE001
            results["monitoring"] = {"error": str(err)}
            log(f"monitoring failed: {err}")
    if "tracking" in parts:
        try:
            results["tracking"] = tracking(cfg)
        except Exception as err:  # noqa: BLE001
            results["tracking"] = {"error": str(err)}
            log(f"tracking failed: {err}")
    results["elapsed_s"] = time.monotonic() - t_start
    results["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    stop_all()
    out_dir = ROOT / "docs" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    prev_path = out_dir / "results.json"
    if args.only and prev_path.exists() and not args.quick:
        # a partial run: the other parts keep their last figures, each with its own run
        prev = json.loads(prev_path.read_text())
        # earlier partial runs whose parts this one measured again no longer show anywhere
        results["partial_runs"] = [r for r in prev.get("partial_runs", [])
                                   if not set(r["parts"]) <= set(parts)]
        results["partial_runs"].append({"parts": sorted(parts), "command": args.command,
                                        "date": results["machine"]["date"],
                                        "elapsed_s": results["elapsed_s"],
                                        "loadavg_start": results["loadavg_start"],
                                        "loadavg_end": results["loadavg_end"]})
        for key, part in (("workloads", "serving"), ("extras", "extras"),
                          ("rollouts", "rollouts"), ("monitoring", "monitoring"),
                          ("tracking", "tracking")):
            if part not in parts and key in prev:
                results[key] = prev[key]
        if "serving" in parts and args.workloads and prev.get("workloads"):
            # workloads not measured again keep their last figures
            ran = {w["workload"]["key"] for w in results["workloads"]}
            kept = {w["workload"]["key"]: w for w in prev["workloads"]
                    if w["workload"]["key"] not in ran}
            kept.update({w["workload"]["key"]: w for w in results["workloads"]})
            results["workloads"] = [kept[w["key"]] for w in WORKLOADS if w["key"] in kept]
        for key in ("machine", "config", "command", "elapsed_s", "loadavg_start",
                    "loadavg_end"):
            results[key] = prev.get(key, results[key])
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    subprocess.run([str(VENV_BIN / "python"), str(BENCH / "report.py"),
                    str(out_dir / "results.json")], check=True)
    log(f"done in {results['elapsed_s'] / 60:.1f} min; logs in {WORK}")
    if not os.environ.get("BENCH_KEEP_WORK"):
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
