"""Crash safety: kill -9 during a big upload, restart on the same data dir, nothing is lost or half-visible."""

from __future__ import annotations

import os
import re
import stat
import threading
import time

import pytest
import requests
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from slipway_testlib import artifact_proxy_path, start_server, uniq

pytestmark = pytest.mark.slipway

TOKEN_FILE = "initial-admin-token"
NEW_TOKEN_LINE = re.compile(r"(?i)\b(generated|created|minted|new)\b.*\btoken\b")


def _slow_body(total: int, chunk: int, started: threading.Event, after: int, stop: threading.Event):
    sent = 0
    block = os.urandom(chunk)
    while sent < total and not stop.is_set():
        n = min(chunk, total - sent)
        yield block[:n]
        sent += n
        if sent >= after:
            started.set()
            time.sleep(0.05)  # slow: ~20 MiB/s, so the kill lands mid-upload


def test_kill_9_mid_upload_then_restart(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    # First start WITHOUT SLIPWAY_ADMIN_TOKEN: the server mints one and stores it.
    server = start_server(data_dir, admin_token=None)
    restarted = None
    try:
        token_path = data_dir / TOKEN_FILE
        assert token_path.is_file(), f"{token_path} not created; stdout:\n{server.output_tail()}"
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600, oct(token_path.stat().st_mode)
        token_bytes = token_path.read_bytes()
        token = token_bytes.decode().strip()
        assert token
        h = {"Authorization": f"Bearer {token}"}
        assert requests.post(server.url + "/api/2.0/mlflow/experiments/search", json={"max_results": 10}, headers=h, timeout=30).status_code == 200

        # Earlier, completed work.
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        client = MlflowClient(server.url, registry_uri=server.url)
        exp_name = uniq("crash")
        exp_id = client.create_experiment(exp_name, tags={"k": "v"})
        run = client.create_run(exp_id, run_name="before-crash")
        rid = run.info.run_id
        metrics = [Metric("loss", 1.0 / (s + 1), 1_700_000_000_000 + s, s) for s in range(20)]
        client.log_batch(rid, metrics=metrics)
        client.log_param(rid, "p", "kept")
        small = tmp_path / "small.txt"
        small.write_bytes(b"finished before the crash\n" * 100)
        client.log_artifact(rid, str(small))
        client.set_terminated(rid)
        art = artifact_proxy_path(run.info.artifact_uri)

        # A ~200 MB upload, streamed slowly; kill -9 once ~24 MiB are through.
        started, stop = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def upload():
            try:
                requests.put(
                    server.url + art + "/partial/big.bin",
                    data=_slow_body(200 * 1024 * 1024, 1 << 20, started, 24 << 20, stop),
                    headers=h,
                    timeout=120,
                )
            except BaseException as e:  # the connection dies with the server
                errors.append(e)

        t = threading.Thread(target=upload, daemon=True)
        t.start()
        assert started.wait(60), "upload never got going"
        time.sleep(0.5)
        assert t.is_alive(), f"upload finished before the kill: {errors}"
        server.kill9()
        stop.set()
        t.join(60)
        assert not t.is_alive()

        # Restart with the same command (still no SLIPWAY_ADMIN_TOKEN).
        restarted = start_server(data_dir, admin_token=None)
        url = restarted.url

        # No new admin token.
        assert token_path.read_bytes() == token_bytes
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        out = restarted.stdout_text() + "".join(restarted.stderr_lines)
        assert token not in out, "the admin token was printed again after restart"
        assert not [line for line in restarted.stdout_lines if NEW_TOKEN_LINE.search(line)], restarted.stdout_text()
        search = url + "/api/2.0/mlflow/experiments/search?max_results=10"
        assert requests.get(search, headers=h, timeout=30).status_code == 200
        assert requests.get(search, timeout=30).status_code == 401

        # The partial upload is invisible.
        r = requests.get(url + art + "/partial/big.bin", headers=h, timeout=30)
        assert r.status_code == 404, (r.status_code, r.content[:200])
        client = MlflowClient(url, registry_uri=url)
        root = sorted(a.path for a in client.list_artifacts(rid))
        assert root == ["small.txt"], root
        assert client.list_artifacts(rid, "partial") == []

        # Earlier data is intact.
        exp = client.get_experiment(exp_id)
        assert exp.name == exp_name and exp.tags.get("k") == "v"
        got = client.get_run(rid)
        assert got.info.status == "FINISHED" and got.info.run_name == "before-crash"
        assert got.data.params == {"p": "kept"}
        hist = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(rid, "loss"))
        assert hist == [(m.step, m.timestamp, m.value) for m in metrics]
        r = requests.get(url + art + "/small.txt", headers=h, timeout=30)
        assert r.status_code == 200 and r.content == small.read_bytes()

        # The interrupted path can be written again.
        r = requests.put(url + art + "/partial/big.bin", data=b"complete now", headers=h, timeout=30)
        assert r.status_code == 200, r.text
        assert requests.get(url + art + "/partial/big.bin", headers=h, timeout=30).content == b"complete now"
    finally:
        server.kill9()
        if restarted is not None:
            restarted.stop()
