"""Helpers of the operations suite: the CLI, servers over chosen stores, populating a store fast
(REST through the mlflow client, eight threads), and a field-by-field picture of everything the
mlflow client and the deployments show, to compare a store with its restored copy."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import requests
from google.protobuf.json_format import MessageToDict
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking import MlflowClient

from slipway_testlib import REPO_ROOT, ServerProcess, auth_headers, sha256_file, slipway_bin, start_server

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


@dataclass
class Env:
    new_database: Callable[[], str]
    new_s3_root: Callable[[str], str]


def stores_env(metadata_url: str | None = None, artifact_root: str | None = None) -> dict[str, str]:
    e = {}
    if metadata_url:
        e["SLIPWAY_METADATA_URL"] = metadata_url
    if artifact_root:
        e["SLIPWAY_ARTIFACT_ROOT"] = artifact_root
    return e


def slipway(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the CLI; the stores come only from ``env`` and the arguments."""
    child = dict(os.environ)
    child.update(env or {})
    p = subprocess.run([str(slipway_bin()), *args], env=child, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"slipway {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr[-4000:]}")
    return p


def slipway_json(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> dict:
    p = slipway(*args, "--json", env=env, timeout=timeout)
    return json.loads(p.stdout)


def server(data_dir: Path, token: str, *, metadata_url: str | None = None, artifact_root: str | None = None,
           demo: bool = False, extra_args=()) -> ServerProcess:
    return start_server(data_dir, admin_token=token, env=stores_env(metadata_url, artifact_root), isolate=False,
                        demo=demo, extra_args=list(extra_args))


def client(srv: ServerProcess, token: str) -> MlflowClient:
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    return MlflowClient(tracking_uri=srv.url, registry_uri=srv.url)


def iris_predict(url: str, token: str, deployment: str = "iris", rows=None) -> dict:
    rows = rows or [IRIS_ROW]
    body = {"inputs": [{"name": "float_input", "shape": [len(rows), 4], "datatype": "FP32",
                        "data": [v for r in rows for v in r]}]}
    r = requests.post(f"{url}/v2/models/{deployment}/infer", json=body, headers=auth_headers(token), timeout=30)
    r.raise_for_status()
    return r.json()


# --------------------------------------------------------------------------------------------
# Populating


def populate(srv: ServerProcess, token: str, *, runs: int = 1000, metrics_per_run: int = 10, models: int = 100,
             big_file_mb: int = 50) -> dict:
    """Fills the server: experiments, `runs` runs with `metrics_per_run` metrics each (one log_batch
    per run, params and tags too), logged ONNX models, `models` registered models with two versions
    each, aliases and tags, a `big_file_mb` MB artifact, and a second deployment. Returns names."""
    import mlflow
    import mlflow.onnx
    from serving_models import PIP_REQUIREMENTS, put_deployment, rf_classifier, tracking_at

    c = client(srv, token)
    exps = [c.create_experiment(f"ops-exp-{i}", tags={"team": f"t{i % 3}"}) for i in range(10)]
    ts = 1_764_547_200_000

    def one_run(i: int) -> str:
        cl = MlflowClient(tracking_uri=srv.url)
        run = cl.create_run(exps[i % len(exps)], start_time=ts + i, tags={"mlflow.runName": f"run-{i:04d}", "i": str(i)},
                            run_name=f"run-{i:04d}")
        rid = run.info.run_id
        metrics = [Metric(f"m{k}", float(i * 0.5 + k) if (i + k) % 97 else float("nan"), ts + k, k) for k in range(metrics_per_run)]
        cl.log_batch(rid, metrics=metrics, params=[Param("lr", str(i / 1000)), Param("depth", str(i % 7))],
                     tags=[RunTag("group", f"g{i % 5}")])
        if i % 10 == 0:
            cl.set_terminated(rid, "FINISHED", end_time=ts + 10_000 + i)
        return rid

    with ThreadPoolExecutor(max_workers=8) as pool:
        run_ids = list(pool.map(one_run, range(runs)))
    c.delete_run(run_ids[-1])

    # Logged ONNX models (MLflow 3 logged models) and 100 registered models over them.
    built = rf_classifier()
    logged = []
    with tracking_at(srv.url, token):
        for j in range(2):
            with mlflow.start_run(experiment_id=exps[0]) as r:
                info = mlflow.onnx.log_model(built.onnx_model, name="model", signature=built.signature(),
                                             pip_requirements=PIP_REQUIREMENTS)
                logged.append((info.model_id, r.info.run_id))

    def one_model(k: int) -> str:
        cl = MlflowClient(tracking_uri=srv.url, registry_uri=srv.url)
        name = f"ops-model-{k:03d}"
        cl.create_registered_model(name, tags={"owner": f"o{k % 4}"}, description=f"model {k}")
        for v in range(2):
            model_id, run_id = logged[(k + v) % len(logged)]
            cl.create_model_version(name, f"models:/{model_id}", run_id=run_id, tags={"v": str(v)}, model_id=model_id)
        cl.set_registered_model_alias(name, "champion", "2")
        cl.set_registered_model_alias(name, "previous", "1")
        cl.set_model_version_tag(name, "1", "validated", "true")
        return name

    with ThreadPoolExecutor(max_workers=8) as pool:
        model_names = list(pool.map(one_model, range(models)))

    # A big artifact in a run.
    big_run = run_ids[1]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "big.bin"
        rng = np.random.default_rng(7)
        with open(p, "wb") as f:
            for _ in range(big_file_mb):
                f.write(rng.integers(0, 256, size=1 << 20, dtype=np.uint8).tobytes())
        big_sha = sha256_file(p)
        c.log_artifact(big_run, str(p), artifact_path="data")
        (Path(d) / "notes.txt").write_text("notes\n")
        c.log_artifact(big_run, str(Path(d) / "notes.txt"))
    put_deployment(srv.url, token, "rf", {"model": model_names[0], "alias": "champion"})
    return {"experiments": exps, "runs": run_ids, "models": model_names, "big_run": big_run, "big_sha": big_sha,
            "rf_rows": built.x[:5].tolist(), "rf_input": built.input_name}


# --------------------------------------------------------------------------------------------
# Pictures of a store, for comparison


def _norm(v):
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        items = [_norm(x) for x in v]
        return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
    return v


def _d(entity) -> dict:
    return _norm(MessageToDict(entity.to_proto(), preserving_proto_field_name=True))


def picture(srv: ServerProcess, token: str, names: dict) -> dict:
    """Every entity the mlflow client sees, as normalized dicts, plus artifacts, deployments and
    their predictions."""
    c = client(srv, token)
    exps = c.search_experiments(view_type=ViewType.ALL, max_results=1000)
    out: dict = {"experiments": sorted((_d(e) for e in exps), key=lambda e: e["experiment_id"])}
    runs = []
    token_ = None
    while True:
        page = c.search_runs([e.experiment_id for e in exps], run_view_type=ViewType.ALL, max_results=5000,
                             page_token=token_)
        runs.extend(_d(r) for r in page)
        token_ = page.token
        if not token_:
            break
    out["runs"] = sorted(runs, key=lambda r: r["info"]["run_id"])
    out["metric_history"] = {
        rid: [_d(m) for m in c.get_metric_history(rid, "m3")] for rid in names["runs"][:25]
    }
    out["registered_models"] = sorted((_d(m) for m in c.search_registered_models(max_results=1000)),
                                      key=lambda m: m["name"])
    versions = []
    for name in names["models"]:
        versions.extend(_d(v) for v in c.search_model_versions(f"name = '{name}'", max_results=100))
    versions.extend(_d(v) for v in c.search_model_versions("name = 'iris'", max_results=100))
    out["model_versions"] = sorted(versions, key=lambda v: (v["name"], int(v["version"])))
    out["aliases"] = {n: c.get_model_version_by_alias(n, "champion").version for n in names["models"][:10]}
    logged = c.search_logged_models(experiment_ids=[e.experiment_id for e in exps], max_results=1000)
    out["logged_models"] = sorted((_d(m) for m in logged), key=lambda m: m["info"]["model_id"])
    arts = c.list_artifacts(names["big_run"], "data")
    out["artifacts"] = sorted((a.path, a.file_size) for a in arts)
    with tempfile.TemporaryDirectory() as d:
        local = c.download_artifacts(names["big_run"], "data/big.bin", d)
        out["big_sha"] = sha256_file(local)
    r = requests.get(f"{srv.url}/api/v1/deployments", headers=auth_headers(token), timeout=30)
    r.raise_for_status()
    deps = r.json()["deployments"]
    out["deployments"] = sorted(({"name": d["name"], "spec": d["spec"]} for d in deps), key=lambda d: d["name"])
    out["predictions"] = {
        "iris": iris_predict(srv.url, token, "iris", [IRIS_ROW, [6.7, 3.0, 5.2, 2.3]])["outputs"],
        "rf": _rf_predict(srv.url, token, names),
    }
    return out


def _rf_predict(url: str, token: str, names: dict) -> list:
    rows = names["rf_rows"]
    body = {"inputs": [{"name": names["rf_input"], "shape": [len(rows), len(rows[0])], "datatype": "FP32",
                        "data": [v for r in rows for v in r]}]}
    r = requests.post(f"{url}/v2/models/rf/infer", json=body, headers=auth_headers(token), timeout=30)
    r.raise_for_status()
    return r.json()["outputs"]


def assert_same(a: dict, b: dict) -> None:
    """Field by field, naming the first difference of each section."""
    assert a.keys() == b.keys()
    for section in a:
        x, y = a[section], b[section]
        if x == y:
            continue
        if isinstance(x, list) and isinstance(y, list):
            assert len(x) == len(y), f"{section}: {len(x)} vs {len(y)} entries"
            for i, (p, q) in enumerate(zip(x, y)):
                assert p == q, f"{section}[{i}] differs:\n  {json.dumps(p, sort_keys=True)[:1500]}\n  {json.dumps(q, sort_keys=True)[:1500]}"
        raise AssertionError(f"{section} differs:\n  {str(x)[:1500]}\n  {str(y)[:1500]}")


def first_prediction(cmd: list[str], env: dict[str, str], token: str, limit_s: float) -> tuple[float, subprocess.Popen, dict]:
    """Starts ``cmd`` (a `slipway up`), waits for its URL and for the demo deployment's first
    prediction; returns the seconds from the process start, the process and what it answered."""
    from slipway_testlib import LISTEN_PREFIX

    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = None
    lines: list[str] = []
    while url is None:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"server exited {proc.wait()} before listening:\n{''.join(lines[-40:])}")
        lines.append(line)
        if line.startswith(LISTEN_PREFIX):
            url = line.strip()[len(LISTEN_PREFIX):]
        assert time.monotonic() - t0 < limit_s, "not listening within the limit"
    # Keep draining its output so it never blocks on a full pipe.
    import threading

    threading.Thread(target=lambda: [None for _ in iter(proc.stdout.readline, "")], daemon=True).start()
    while True:
        try:
            out = iris_predict(url, token)
            return time.monotonic() - t0, proc, {"url": url, "output": out, "log": lines}
        except requests.RequestException:
            pass
        assert time.monotonic() - t0 < limit_s, f"no prediction within {limit_s} s"
        time.sleep(0.05)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
