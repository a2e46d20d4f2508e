"""Timings of bench/recovery: populate a store (SQLite + local directory, demo included), back it
up to S3 while the server runs, back it up again (incremental), verify, restore into PostgreSQL +
S3, and recover from nothing (`slipway up --restore-from s3://...` on an empty data dir, and on an
empty PostgreSQL database + S3 prefix) up to the demo deployment's first prediction."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "interop"))
sys.path.insert(0, str(ROOT / "tests" / "ops"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
for k in ("SLIPWAY_METADATA_URL", "SLIPWAY_ARTIFACT_ROOT", "SLIPWAY_DATA_DIR", "SLIPWAY_ADMIN_TOKEN"):
    os.environ.pop(k, None)

import logging  # noqa: E402

from opslib import first_prediction, populate, server, slipway_json, stores_env  # noqa: E402
from slipway_testlib import new_admin_token, slipway_bin  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)


def new_database() -> str:
    admin = os.environ["SLIPWAY_TEST_POSTGRES_URL"]
    name = f"slw_o_bench_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", admin, "-qAtc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    u = urllib.parse.urlsplit(admin)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment)), name


def drop_database(name: str) -> None:
    subprocess.run(["psql", os.environ["SLIPWAY_TEST_POSTGRES_URL"], "-qAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                   capture_output=True)


def timed(f):
    t = time.monotonic()
    out = f()
    return time.monotonic() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--metrics-per-run", type=int, default=10)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--artifact-mb", type=int, default=50)
    a = ap.parse_args()
    bucket = os.environ["SLIPWAY_TEST_S3_BUCKET"]
    token = new_admin_token()
    work = Path(tempfile.mkdtemp(prefix="slipway-bench-recovery-"))
    dbs = []
    r: dict = {"runs": a.runs, "metrics": a.runs * a.metrics_per_run, "models": a.models, "artifact_mb": a.artifact_mb,
               "binary": str(slipway_bin()), "cpus": os.cpu_count(), "machine": platform.machine()}
    try:
        src = server(work / "src", token, demo=True)
        try:
            r["populate_s"], names = timed(lambda: populate(src, token, runs=a.runs, metrics_per_run=a.metrics_per_run,
                                                           models=a.models, big_file_mb=a.artifact_mb))
            dest = f"s3://{bucket}/bench-{uuid.uuid4().hex[:8]}"
            r["backup_s"], first = timed(lambda: slipway_json("backup", "create", "--to", dest, "--data-dir", str(src.data_dir)))
            r["backup_bytes"] = first["size_bytes"]
            r["backup_incremental_s"], second = timed(
                lambda: slipway_json("backup", "create", "--to", dest, "--data-dir", str(src.data_dir)))
            r["incremental_copied_bytes"] = second["artifacts"]["copied_bytes"]
        finally:
            src.stop()
        r["verify_s"], rep = timed(lambda: slipway_json("backup", "verify", dest))
        assert rep["ok"], rep
        pg, name = new_database()
        dbs.append(name)
        r["restore_pg_s3_s"], _ = timed(lambda: slipway_json(
            "backup", "restore", dest, "--data-dir", str(work / "pg"),
            env=stores_env(pg, f"s3://{bucket}/bench-restored-{uuid.uuid4().hex[:8]}")))
        for target in ("sqlite-local", "postgres-s3"):
            child = dict(os.environ, SLIPWAY_ADMIN_TOKEN=token)
            if target == "postgres-s3":
                pg2, name2 = new_database()
                dbs.append(name2)
                child.update(stores_env(pg2, f"s3://{bucket}/bench-recovered-{uuid.uuid4().hex[:8]}"))
            cmd = [str(slipway_bin()), "up", "--listen", "127.0.0.1:0", "--data-dir", str(work / f"empty-{target}"),
                   "--restore-from", dest]
            secs, proc, _ = first_prediction(cmd, child, token, 600)
            proc.terminate()
            proc.wait(timeout=30)
            r[f"recovery_{target}_s"] = secs
    finally:
        for d in dbs:
            drop_database(d)
        shutil.rmtree(work, ignore_errors=True)
    (ROOT / "target").mkdir(exist_ok=True)
    (ROOT / "target" / "bench-recovery.json").write_text(json.dumps(r, indent=2))
    mb = r["backup_bytes"] / (1 << 20)
    lines = [f"### {r['runs']:,} runs, {r['metrics']:,} metrics, {r['models']} registered models, "
             f"a {r['artifact_mb']} MB artifact ({mb:.0f} MiB per backup; measured {time.strftime('%Y-%m-%d')}, "
             f"release build, {r['cpus']} cores, SeaweedFS on localhost)", "",
             "| step | seconds |", "|---|---:|"]
    for k, label in [("backup_s", "backup to S3, server running (first)"),
                     ("backup_incremental_s", f"backup again (incremental: {r['incremental_copied_bytes']} artifact bytes copied)"),
                     ("verify_s", "verify (scratch restore, every blob re-hashed)"),
                     ("restore_pg_s3_s", "restore into PostgreSQL + S3"),
                     ("recovery_sqlite-local_s", "recovery from nothing to the first prediction: SQLite + directory"),
                     ("recovery_postgres-s3_s", "recovery from nothing to the first prediction: PostgreSQL + S3")]:
        lines.append(f"| {label} | {r[k]:.2f} |")
    lines += ["", f"Reproduce: `bench/recovery --runs {a.runs} --metrics-per-run {a.metrics_per_run} "
                  f"--models {a.models} --artifact-mb {a.artifact_mb}`."]
    text = "\n".join(lines) + "\n"
    # one file per store size; bench/report.py puts them under "Backup and recovery"
    out = ROOT / "docs" / "bench" / f"recovery-{a.runs}runs-{a.artifact_mb}mb.md"
    out.write_text(text)
    print("\n" + text + f"\n(written to {out.relative_to(ROOT)}; bench/run's report includes it)")


if __name__ == "__main__":
    main()
