"""A store with 1,000 runs, 10,000 metrics, 100 registered models (versions, aliases, tags),
logged models, a 50 MB artifact and two deployments is backed up while its server runs, restored
into PostgreSQL + S3, backed up again from there and restored into a new SQLite data dir: the
mlflow client sees the same entities field by field at every step, and the deployments serve the
same predictions. Along the way: `backup verify` passes, a second backup copies nothing new, a
non-empty target is refused, `slipway migrate` does the same in one command."""

from __future__ import annotations

import json
import os
import time

import pytest

from opslib import assert_same, picture, populate, server, slipway, slipway_json, stores_env
from slipway_testlib import new_admin_token


def test_round_trip_sqlite_to_postgres_s3_and_back(env, tmp_path):
    token = new_admin_token()
    timings = {}
    src = server(tmp_path / "src", token, demo=True)
    try:
        t = time.monotonic()
        names = populate(src, token)
        timings["populate_s"] = time.monotonic() - t
        before = picture(src, token, names)
        assert len(before["runs"]) == 1000 + 1 + 2  # and the runs of the demo and of the logged models
        assert sum(len(r["data"].get("metrics", [])) for r in before["runs"]) >= 10_000
        assert len(before["registered_models"]) == 101

        # ---- backup while the server runs, to S3
        dest = env.new_s3_root("roundtrip")
        t = time.monotonic()
        first = slipway_json("backup", "create", "--to", dest, "--data-dir", str(src.data_dir))
        timings["backup_s"] = time.monotonic() - t
        assert first["artifacts"]["missing_files"] == 0, first
        assert first["counts"]["runs"] == 1003 and first["counts"]["metrics"] >= 10_000, first["counts"]
        again = slipway_json("backup", "create", "--to", dest, "--data-dir", str(src.data_dir))
        assert again["artifacts"]["copied_bytes"] == 0, "the second backup copies no artifact again"
        t = time.monotonic()
        report = slipway_json("backup", "verify", dest)
        timings["verify_s"] = time.monotonic() - t
        assert report["ok"], report["problems"]
        assert report["model_versions"] == 201 and report["deployments"] == 2, report
        listed = slipway_json("backup", "list", dest)
        assert [b["complete"] for b in listed["backups"]] == [True, True]
        assert listed["backups"][1]["verification"]["ok"] is True
    finally:
        src.stop()

    # ---- restore into PostgreSQL + S3 and compare
    pg = env.new_database()
    s3_root = env.new_s3_root("restored-artifacts")
    stores = stores_env(pg, s3_root)
    t = time.monotonic()
    restored = slipway_json("backup", "restore", dest, "--data-dir", str(tmp_path / "pg-data"), env=stores)
    timings["restore_pg_s3_s"] = time.monotonic() - t
    assert restored["backup_id"] == again["backup_id"]
    refused = slipway("backup", "restore", dest, "--data-dir", str(tmp_path / "pg-data"), env=stores, check=False)
    assert refused.returncode != 0 and "not empty" in refused.stderr and "--force" in refused.stderr, refused.stderr
    a = server(tmp_path / "pg-data", token, metadata_url=pg, artifact_root=s3_root)
    try:
        after_pg = picture(a, token, names)
        assert_same(before, after_pg)
        # ---- the reverse direction: PostgreSQL + S3 (server running) to a new SQLite data dir
        local_dest = tmp_path / "local-backups"
        t = time.monotonic()
        slipway_json("backup", "create", "--to", str(local_dest), "--data-dir", str(tmp_path / "pg-data"), env=stores)
        timings["backup_pg_s3_s"] = time.monotonic() - t
    finally:
        a.stop()
    t = time.monotonic()
    slipway_json("backup", "restore", str(local_dest), "--data-dir", str(tmp_path / "sqlite-data"))
    timings["restore_sqlite_s"] = time.monotonic() - t
    b = server(tmp_path / "sqlite-data", token)
    try:
        assert_same(before, picture(b, token, names))
    finally:
        b.stop()
    print("\nround-trip timings:", json.dumps({k: round(v, 1) for k, v in timings.items()}))


def test_migrate_between_store_configurations(env, tmp_path):
    """`slipway migrate --from A.toml --to B.toml`: SQLite + local directory to PostgreSQL + S3
    and back, through the backup format; the target refuses data unless --force."""
    token = new_admin_token()
    src = server(tmp_path / "src", token, demo=True)
    try:
        from opslib import iris_predict

        want = iris_predict(src.url, token)["outputs"]
    finally:
        src.stop()
    pg, s3_root = env.new_database(), env.new_s3_root("migrate")
    a_toml = tmp_path / "a.toml"
    a_toml.write_text(f'data_dir = "{tmp_path / "src"}"\n')
    b_toml = tmp_path / "b.toml"
    b_toml.write_text(
        f'data_dir = "{tmp_path / "b"}"\nmetadata_url = "{pg}"\nartifact_root = "{s3_root}"\n'
        f's3_endpoint = "{os.environ["SLIPWAY_S3_ENDPOINT"]}"\n'
    )
    out = slipway_json("migrate", "--from", str(a_toml), "--to", str(b_toml))
    assert out["restore"]["artifacts"] == 7, out
    again = slipway("migrate", "--from", str(a_toml), "--to", str(b_toml), check=False)
    assert again.returncode != 0 and "not empty" in again.stderr, again.stderr
    c_toml = tmp_path / "c.toml"
    c_toml.write_text(f'data_dir = "{tmp_path / "c"}"\n')
    slipway_json("migrate", "--from", str(b_toml), "--to", str(c_toml))
    c = server(tmp_path / "c", token)
    try:
        from opslib import iris_predict

        assert iris_predict(c.url, token)["outputs"] == want
    finally:
        c.stop()
