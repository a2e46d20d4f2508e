"""Large JSON bodies: eight concurrent maximum-size (16 MiB) V2 JSON requests keep the server's
peak RSS under 3x the bytes in flight above idle, and ``/health/live`` answers within 50 ms
throughout. Two loads: bodies the model refuses for their declared batch (refused before their
data is read), and bodies it accepts (a 64-feature MLP with a large batch limit).

The figures (peak RSS above idle, bytes in flight, worst /health/live latency) are reported with
``record_figures`` (``FIGURES:`` lines in target/test-figures/, printed at the end of scripts/test.sh).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

import serving_models as sm
from slipway_testlib import new_admin_token, record_figures, uniq

MAX_BODY = 16 << 20
CONCURRENT = 8


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


PROBE = r"""
import http.client, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    t = time.perf_counter()
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        c.request("GET", "/health/live")
        ok = c.getresponse().status == 200
        c.close()
    except OSError:
        ok = False
    print(time.perf_counter() - t, int(ok), flush=True)
    time.sleep(0.02)
"""


class Watch:
    """Samples the server's RSS (here) and /health/live latency (in a separate process, so
    this process's threads sending the load cannot delay the probe) while a load runs."""

    def __init__(self, url: str, pid: int, seconds: float = 60.0):
        self.url, self.pid, self.seconds = url, pid, seconds
        self.peak_rss = 0
        self.worst_live = 0.0
        self.live_failures = 0
        self.probes = 0
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._rss, daemon=True)

    def _rss(self):
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, rss_bytes(self.pid))
            time.sleep(0.005)

    def __enter__(self):
        self._probe = subprocess.Popen(
            [sys.executable, "-c", PROBE, self.url, str(self.seconds)], stdout=subprocess.PIPE, text=True
        )
        self._thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        self._probe.kill()
        self._probe.wait(timeout=30)
        self._parse(self._probe.stdout.read())

    def _parse(self, out: str):
        for line in out.splitlines():
            dt, ok = line.split()
            self.worst_live = max(self.worst_live, float(dt))
            self.live_failures += 1 - int(ok)
            self.probes += 1
            self.samples.append(float(dt))


def body_of(name: str, x: np.ndarray) -> bytes:
    doc = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.round(5).ravel().tolist()}]}
    return json.dumps(doc, separators=(",", ":")).encode()


def fill_to(name: str, n_features: int, limit: int) -> tuple[bytes, int]:
    """The largest body of rows of ``n_features`` under ``limit`` bytes, and its row count."""
    rng = np.random.default_rng(7)
    rows = 1024
    while True:
        body = body_of(name, rng.normal(0, 1, (rows * 2, n_features)).astype(np.float32))
        if len(body) > limit:
            break
        rows *= 2
    lo, hi = rows, rows * 2
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if len(body_of(name, rng.normal(0, 1, (mid, n_features)).astype(np.float32))) <= limit:
            lo = mid
        else:
            hi = mid
    x = rng.normal(0, 1, (lo, n_features)).astype(np.float32)
    return body_of(name, x), lo


def run_load(url: str, token: str, model: str, body: bytes, pid: int) -> tuple[list[int], Watch]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def send(_):
        r = requests.post(f"{url}/v2/models/{model}/infer", data=body, headers=headers, timeout=300)
        return r.status_code, r.text[:300]

    with Watch(url, pid) as w:
        with ThreadPoolExecutor(CONCURRENT) as ex:
            results = list(ex.map(send, range(CONCURRENT)))
    return results, w


@pytest.mark.slipway
def test_eight_maximum_size_bodies_keep_memory_and_liveness(tmp_path):
    token = new_admin_token()
    server = sm.start_server_with_demo(tmp_path / "data", admin_token=token, env={"SLIPWAY_LOG_LEVEL": "warn"})
    try:
        url = server.url
        built = sm.mlp(seed=3, n_in=64, hidden=16, n_out=3)
        name = uniq("wide")
        with sm.tracking_at(url, token):
            import mlflow

            exp = mlflow.create_experiment(uniq("exp"))
            version = sm.log_and_register(built, name, exp)
        sm.put_deployment(url, token, name, {"model": name, "version": version, "max_batch_size": 65536})
        # warm both paths once, then take the idle figure
        small = body_of("features", built.x[:2])
        assert requests.post(f"{url}/v2/models/{name}/infer", data=small, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
        time.sleep(0.5)
        idle = rss_bytes(server.proc.pid)

        # 1. bodies whose declared batch the model refuses: no data is materialised
        refused, rows = fill_to("float_input", 4, MAX_BODY)
        results, w = run_load(url, token, "iris", refused, server.proc.pid)
        in_flight = len(refused) * CONCURRENT
        figures = [
            f"refused bodies: {CONCURRENT} x {len(refused) / 2**20:.1f} MiB ({rows} rows of 4, over max_batch_size 64): "
            f"statuses {sorted({s for s, _ in results})}, peak RSS {(w.peak_rss - idle) / 2**20:.0f} MiB above idle "
            f"({idle / 2**20:.0f} MiB) for {in_flight / 2**20:.0f} MiB in flight, worst /health/live {w.worst_live * 1000:.1f} ms of {w.probes} probes"
        ]
        record_figures("eight_maximum_size_bodies", figures)
        assert all(s == 400 and "maximum batch size is 64" in t for s, t in results), results
        first = w, in_flight

        # 2. bodies the model accepts: decoded off the executor, straight into tensors
        accepted, rows = fill_to("features", 64, MAX_BODY)
        results, w = run_load(url, token, name, accepted, server.proc.pid)
        in_flight = len(accepted) * CONCURRENT
        figures.append(
            f"accepted bodies: {CONCURRENT} x {len(accepted) / 2**20:.1f} MiB ({rows} rows of 64): "
            f"statuses {sorted({s for s, _ in results})}, peak RSS {(w.peak_rss - idle) / 2**20:.0f} MiB above idle "
            f"for {in_flight / 2**20:.0f} MiB in flight ({(w.peak_rss - idle) / in_flight:.2f}x), "
            f"worst /health/live {w.worst_live * 1000:.1f} ms of {w.probes} probes"
        )
        record_figures("eight_maximum_size_bodies", figures)
        assert all(s == 200 for s, _ in results), results
        for w, in_flight in [first, (w, in_flight)]:
            assert w.peak_rss - idle < 3 * in_flight, (w.peak_rss - idle) / in_flight
            assert w.probes > 3 and w.live_failures == 0, (w.live_failures, w.probes)
            assert w.worst_live < 0.05, w.samples
    finally:
        server.stop()
