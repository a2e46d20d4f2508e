#!/usr/bin/env python3
"""Tracking workload, run with the same mlflow client against any tracking server.

  tracking_client.py log    URI EXPERIMENT METRICS RUNS   log METRICS metrics across 20 parallel
                                                          runs, in log_batch calls of 50
  tracking_client.py create URI EXPERIMENT METRICS RUNS   create RUNS runs (20 threads), each
                                                          with two tags (one request per run)
  tracking_client.py search URI EXPERIMENT METRICS RUNS   search_runs over all of them (pages of
                                                          1000) and a filtered, ordered search
Prints one line: TRACK {json}.
"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from mlflow import MlflowClient
from mlflow.entities import Metric

PARALLEL = 20
BATCH = 50


def experiment(client: MlflowClient, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name)


def main() -> None:
    task, uri, exp_name, n_metrics, n_runs = sys.argv[1:6]
    n_metrics, n_runs = int(n_metrics), int(n_runs)
    client = MlflowClient(tracking_uri=uri)
    exp = experiment(client, exp_name)
    out = {}
    if task == "log":
        per_run = n_metrics // PARALLEL

        def one(i: int) -> None:
            run = client.create_run(exp, run_name=f"run-{i}")
            now = int(time.time() * 1000)
            for start in range(0, per_run, BATCH):
                metrics = [Metric(f"m{j % 10}", j * 0.5, now, j)
                           for j in range(start, min(start + BATCH, per_run))]
                client.log_batch(run.info.run_id, metrics=metrics)
            client.set_terminated(run.info.run_id)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(one, range(PARALLEL)))
        out["seconds"] = time.perf_counter() - t0
    elif task == "warm":
        def one(i: int) -> None:
            run = client.create_run(exp)
            client.log_batch(run.info.run_id, metrics=[Metric("m", 1.0, 0, 0)])
            client.search_runs([exp], max_results=10)

        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(one, range(2 * PARALLEL)))
        out["ok"] = True
    elif task == "create":
        def one(i: int) -> None:
            client.create_run(exp, run_name=f"r{i}", tags={"group": str(i % 10),
                                                           "score": str(i * 7919 % 1000)})

        t0 = time.perf_counter()
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(one, range(n_runs)))
        out["seconds"] = time.perf_counter() - t0
    elif task == "search":
        t0 = time.perf_counter()
        found, token = 0, None
        while True:
            page = client.search_runs([exp], max_results=1000, page_token=token)
            found += len(page)
            token = page.token
            if not token:
                break
        out["all_seconds"] = time.perf_counter() - t0
        out["found"] = found
        t0 = time.perf_counter()
        hits = client.search_runs([exp], filter_string="tags.group = '3' and "
                                  "attributes.run_name LIKE 'r1%'",
                                  order_by=["attributes.start_time DESC"], max_results=100)
        out["filter_seconds"] = time.perf_counter() - t0
        out["filter_hits"] = len(hits)
    print("TRACK " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
