"""A backup taken by `slipway backup create` (what the chart's CronJob runs) shows in the running
servers' /metrics, on every replica alike: every run is recorded in the metadata store and the
servers export the slipway_backup_* metrics from those records when scraped. A failed run shows
too (the last run's result, the failure count) and leaves the last success where it was; `slipway
doctor` names the failure.

On the single profile (SQLite + a local directory, one server) and on the HA profile's stores
(PostgreSQL + S3, a registry and a serving replica, a backup to S3)."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from opslib import server, slipway, slipway_json, stores_env
from slipway_testlib import auth_headers, new_admin_token

_LINE = re.compile(r"^(slipway_backup_[a-z_]+)(\{[^}]*\})?\s+(\S+)$")


def backup_metrics(url: str, token: str) -> dict[str, float]:
    r = requests.get(f"{url}/metrics", headers=auth_headers(token), timeout=30)
    r.raise_for_status()
    out = {}
    for line in r.text.splitlines():
        m = _LINE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


SUCCESS = 'slipway_backup_runs_total{result="success"}'
FAILURE = 'slipway_backup_runs_total{result="failure"}'


@pytest.mark.parametrize("profile", ["sqlite-local", "postgres-s3"])
def test_cli_backups_show_in_every_replicas_metrics(env, tmp_path, profile):
    token = new_admin_token()
    if profile == "sqlite-local":
        stores: dict[str, str] = {}
        replicas = [server(tmp_path / "data", token)]
        cli_stores = ["--data-dir", str(tmp_path / "data")]
        dest = str(tmp_path / "backups")
        inside_artifacts = str(tmp_path / "data" / "artifacts" / "backups")
    else:
        db, root = env.new_database(), env.new_s3_root("metrics")
        stores = stores_env(db, root)
        replicas = [server(tmp_path / "registry", token, metadata_url=db, artifact_root=root,
                           extra_args=["--role", "registry"])]
        replicas.append(server(tmp_path / "serving", token, metadata_url=db, artifact_root=root,
                               extra_args=["--role", "serving"]))
        cli_stores = []
        dest = env.new_s3_root("metrics-backups")
        inside_artifacts = f"{root}/backups"
    try:
        # No run recorded and no schedule: nothing to show, so no alert can fire on a store
        # nobody backs up.
        for srv in replicas:
            assert backup_metrics(srv.url, token) == {}, srv.url

        t0 = time.time()
        done = slipway_json("backup", "create", "--to", dest, "--verify", "--keep-last", "5", *cli_stores,
                            env=stores)
        t1 = time.time()
        seen = []
        for srv in replicas:
            m = backup_metrics(srv.url, token)
            seen.append(m)
            assert m[SUCCESS] == 1 and m[FAILURE] == 0, m
            assert m["slipway_backup_last_run_success"] == 1, m
            assert m["slipway_backup_last_verify_ok"] == 1, m
            assert t0 - 1 <= m["slipway_backup_last_success_timestamp_seconds"] <= t1 + 1, (m, t0, t1)
            assert m["slipway_backup_last_run_timestamp_seconds"] == m["slipway_backup_last_success_timestamp_seconds"]
            assert 0 < m["slipway_backup_last_duration_seconds"] <= t1 - t0 + 1, m
            assert m["slipway_backup_last_size_bytes"] == done["size_bytes"], (m, done)
            assert m["slipway_backup_copied_bytes_total"] == done["artifacts"]["copied_bytes"], (m, done)
        assert all(s == seen[0] for s in seen), f"replicas disagree: {seen}"

        # A run that fails (here: a destination inside the artifact store) is recorded as such.
        bad = slipway("backup", "create", "--to", inside_artifacts, *cli_stores, env=stores, check=False)
        assert bad.returncode != 0 and "inside the artifact store" in bad.stderr, bad.stderr
        for srv, before in zip(replicas, seen):
            m = backup_metrics(srv.url, token)
            assert m[SUCCESS] == 1 and m[FAILURE] == 1, m
            assert m["slipway_backup_last_run_success"] == 0, m
            assert m["slipway_backup_last_run_timestamp_seconds"] >= before["slipway_backup_last_run_timestamp_seconds"]
            assert (m["slipway_backup_last_success_timestamp_seconds"]
                    == before["slipway_backup_last_success_timestamp_seconds"]), (m, before)
            assert m["slipway_backup_last_size_bytes"] == done["size_bytes"], m

        report = json.loads(slipway("doctor", "--json", *cli_stores, env=stores, check=False).stdout)
        line = next(c for c in report["checks"] if c["name"] == "backups")
        assert line["status"] == "WARN" and "failed" in line["detail"] and "inside the artifact store" in line["detail"], line

        # The next good run clears it.
        slipway_json("backup", "create", "--to", dest, *cli_stores, env=stores)
        for srv in replicas:
            m = backup_metrics(srv.url, token)
            assert m[SUCCESS] == 2 and m[FAILURE] == 1 and m["slipway_backup_last_run_success"] == 1, m
    finally:
        for srv in replicas:
            srv.stop()
