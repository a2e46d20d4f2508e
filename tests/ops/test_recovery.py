"""Recovery from nothing: from an empty machine (no data dir) and a backup on S3, `slipway up
--restore-from` restores and starts, and the demo deployment answers its first prediction in
under 60 s (measured from the process start). Into SQLite + a local directory (a laptop or a
single pod) and into an empty PostgreSQL database + S3 prefix (the Kubernetes topology). Also:
a restart with the same flag starts without restoring again, and stores holding other data are
never overwritten at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from opslib import first_prediction, iris_predict, server, slipway, slipway_json, stores_env
from slipway_testlib import LISTEN_PREFIX, REPO_ROOT, auth_headers, new_admin_token, slipway_bin

LIMIT_S = 60.0


@pytest.mark.parametrize("target", ["sqlite-local", "postgres-s3"])
def test_recovery_from_nothing_under_a_minute(env, tmp_path, target):
    token = new_admin_token()
    src = server(tmp_path / "src", token, demo=True)
    try:
        want = iris_predict(src.url, token)["outputs"]
    finally:
        src.stop()
    backups = env.new_s3_root("recovery")
    slipway_json("backup", "create", "--to", backups, "--data-dir", str(src.data_dir))

    data_dir = tmp_path / "empty-machine"  # does not exist yet
    child = dict(os.environ, SLIPWAY_ADMIN_TOKEN=token)
    if target == "postgres-s3":
        child.update(stores_env(env.new_database(), env.new_s3_root("recovered")))
    cmd = [str(slipway_bin()), "up", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--restore-from", backups]
    elapsed, proc, got = first_prediction(cmd, child, token, LIMIT_S)
    try:
        assert got["output"]["outputs"] == want
        print(f"\nrecovery from nothing ({target}, backup on S3): first prediction after {elapsed:.2f} s")
        results = REPO_ROOT / "target" / "ops-results"
        results.mkdir(parents=True, exist_ok=True)
        (results / f"recovery-{target}.json").write_text(json.dumps({"target": target, "seconds": elapsed}))
        assert elapsed < LIMIT_S
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    # A restart with the same flag starts on the restored stores, without restoring again.
    elapsed2, proc, got = first_prediction(cmd, child, token, LIMIT_S)
    try:
        assert got["output"]["outputs"] == want
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    # A restore that died before its metadata transaction left files but no metadata: the next
    # start restores over them.
    partial = tmp_path / "partial"
    (partial / "artifacts" / "0" / "leftover").mkdir(parents=True)
    (partial / "artifacts" / "0" / "leftover" / "x.bin").write_bytes(b"left by a killed restore")
    cmd_partial = [str(slipway_bin()), "up", "--listen", "127.0.0.1:0", "--data-dir", str(partial), "--restore-from", backups]
    _, proc, got = first_prediction(cmd_partial, dict(os.environ, SLIPWAY_ADMIN_TOKEN=token), token, LIMIT_S)
    try:
        assert got["output"]["outputs"] == want
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    # Stores holding other data are never overwritten at start-up.
    other = tmp_path / "other"
    o = server(other, token)
    o.stop()
    bad = subprocess.run([str(slipway_bin()), "up", "--listen", "127.0.0.1:0", "--data-dir", str(other), "--restore-from",
                          backups], env=dict(os.environ, SLIPWAY_ADMIN_TOKEN=token), capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "already hold data" in bad.stderr, bad.stderr[-2000:]
