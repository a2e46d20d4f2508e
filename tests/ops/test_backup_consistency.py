"""A backup taken while 8 clients keep writing restores to a state in which every write
acknowledged before the snapshot point is present and nothing is half-written: each client's
log_batch (five metrics) is all there or not at all, and every artifact upload acknowledged before
the snapshot is restored with its content. On SQLite (VACUUM INTO) and on PostgreSQL
(REPEATABLE READ)."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from opslib import client, server, slipway, slipway_json, stores_env
from slipway_testlib import ARTIFACTS_API, auth_headers, new_admin_token, slipway_bin

WRITERS = 8
BATCH = 5


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_backup_under_concurrent_writes(env, tmp_path, engine):
    token = new_admin_token()
    metadata_url = env.new_database() if engine == "postgres" else None
    artifact_root = env.new_s3_root("consistency") if engine == "postgres" else None
    src = server(tmp_path / "src", token, metadata_url=metadata_url, artifact_root=artifact_root)
    stores = stores_env(metadata_url, artifact_root)
    try:
        c = client(src, token)
        exp = c.create_experiment("writers")
        run_ids = [c.create_run(exp).info.run_id for _ in range(WRITERS)]
        acked: list[list[tuple[int, int, int]]] = [[] for _ in range(WRITERS)]  # (seq, sent_ms, acked_ms)
        uploads: list[list[tuple[str, int, bytes]]] = [[] for _ in range(WRITERS)]  # (path, acked_ms, body)
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer(w: int) -> None:
            cl = MlflowClient(tracking_uri=src.url)
            http = requests.Session()
            http.headers.update(auth_headers(token))
            run = cl.get_run(run_ids[w])
            base = run.info.artifact_uri.split("mlflow-artifacts:", 1)[1].strip("/")
            seq = 0
            try:
                while not stop.is_set():
                    sent = now_ms()
                    cl.log_batch(run_ids[w], metrics=[Metric(f"k{j}", float(seq), sent, seq) for j in range(BATCH)])
                    acked[w].append((seq, sent, now_ms()))
                    if seq % 7 == 0:
                        body = f"writer {w} upload {seq}".encode()
                        path = f"{base}/up/{seq}.txt"
                        r = http.put(f"{src.url}{ARTIFACTS_API}/{path}", data=body, timeout=30)
                        r.raise_for_status()
                        uploads[w].append((path, now_ms(), body))
                    seq += 1
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        dest = tmp_path / "backups"
        summary = slipway_json("backup", "create", "--to", str(dest), "--data-dir", str(src.data_dir), env=stores)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
    finally:
        src.stop()
    started, taken = summary["snapshot"]["started_at_ms"], summary["snapshot"]["taken_at_ms"]
    total = sum(len(a) for a in acked)
    before = sum(1 for a in acked for (_, _, ack) in a if ack < started)
    after = sum(1 for a in acked for (_, sent, _) in a if sent > taken)
    assert before > 50 and after > 50, f"writes must straddle the snapshot: {before} before, {after} after, {total} in all"

    slipway_json("backup", "restore", str(dest), "--data-dir", str(tmp_path / "restored"))
    db = sqlite3.connect(tmp_path / "restored" / "slipway.db")
    rows: dict[tuple[str, int], int] = {}
    for run_uuid, step, n in db.execute("SELECT run_uuid, step, COUNT(*) FROM metrics GROUP BY run_uuid, step"):
        rows[(run_uuid, step)] = n
    for w in range(WRITERS):
        for seq, sent, ack in acked[w]:
            n = rows.get((run_ids[w], seq), 0)
            assert n in (0, BATCH), f"writer {w} batch {seq}: {n} of {BATCH} metrics restored (half-written)"
            if ack < started:
                assert n == BATCH, f"writer {w} batch {seq} acknowledged before the snapshot is missing"
            if sent > taken:
                assert n == 0, f"writer {w} batch {seq} sent after the snapshot was restored"
    digests = dict(db.execute("SELECT path, sha256 FROM artifact_digests"))
    root = tmp_path / "restored" / "artifacts"
    for w in range(WRITERS):
        for path, ack, body in uploads[w]:
            f = root / path
            if ack < started:
                assert f.is_file() and f.read_bytes() == body, f"upload {path} acknowledged before the snapshot is missing"
            if f.exists():
                import hashlib

                assert digests.get(path) == hashlib.sha256(f.read_bytes()).hexdigest(), f"{path}: content and digest disagree"
    report = slipway_json("backup", "verify", str(dest))
    assert report["ok"], report["problems"]
