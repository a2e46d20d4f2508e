"""search_runs over 1000 runs: filters, ordering and pagination against a reference computed here.

Reference semantics (MLflow's SQL store, mlflow/store/tracking/sqlalchemy_store.py
`_get_orderby_clauses`), each verified against `mlflow server` 3.17.2:
  * every order_by key sorts runs that have the key first; runs without it come last, whatever the
    direction; for metrics, NaN values come after numbers and before missing;
  * metrics compare by the run's latest value (highest step, then latest timestamp);
  * after the order_by keys: start_time DESC (unless start_time was one of the keys), then run_id ASC;
  * filters on params/tags/metrics only match runs that have the key (so `tags.t != 'x'` excludes
    runs without tag t); LIKE is case-sensitive, ILIKE is not.
"""

from __future__ import annotations

import math
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import mlflow
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from slipway_testlib import uniq

N_RUNS = 1000
BASE_TS = 1_700_000_000_000
P_VALUES = ["alpha", "beta", "gamma", "delta"]
T_VALUES = ["x", "y", "z"]


@dataclass
class R:
    i: int
    run_id: str = ""
    run_name: str = ""
    start_time: int = 0
    status: str = "FINISHED"
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)


def _plan(seed: int) -> list[R]:
    rng = random.Random(seed)
    perm = list(range(N_RUNS))
    rng.shuffle(perm)
    runs = []
    for i in range(N_RUNS):
        r = R(i=i)
        r.run_name = f"Run-{i:04d}" if i % 10 == 0 else f"run-{i:04d}"
        r.start_time = BASE_TS + (perm[i] // 2) * 1000  # pairs share a start_time -> run_id tiebreak
        if i % 23 == 0:
            r.status = "RUNNING"
        elif i % 9 == 0:
            r.status = "FAILED"
        if i % 17 != 0:
            r.metrics["m1"] = round(rng.random(), 6)
        r.metrics["m2"] = float(i % 7)  # latest value; an older step logs 1000.0
        if i % 11 != 0:
            r.params["p"] = P_VALUES[i % 4]
        r.params["q"] = f"{i:04d}"
        if i % 13 != 0:
            r.tags["t"] = T_VALUES[i % 3]
        r.tags["grp"] = "Group-A" if i % 2 == 0 else "group-b"
        runs.append(r)
    return runs


def _create(client: MlflowClient, exp_id: str, r: R) -> None:
    run = client.create_run(exp_id, start_time=r.start_time, tags=dict(r.tags), run_name=r.run_name)
    r.run_id = run.info.run_id
    metrics = [Metric("m2", 1000.0, r.start_time, 0), Metric("m2", r.metrics["m2"], r.start_time + 1, 1)]
    if "m1" in r.metrics:
        metrics.append(Metric("m1", r.metrics["m1"], r.start_time, 0))
    client.log_batch(r.run_id, metrics=metrics, params=[Param(k, v) for k, v in r.params.items()])
    if r.status != "RUNNING":
        client.set_terminated(r.run_id, status=r.status, end_time=r.start_time + 5000)


@pytest.fixture(scope="module")
def dataset(tracking):
    client = MlflowClient(tracking.url, registry_uri=tracking.url)
    exp_id = client.create_experiment(uniq("search"))
    runs = _plan(seed=1234)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda r: _create(client, exp_id, r), runs))
    assert len({r.run_id for r in runs}) == N_RUNS
    return exp_id, runs


# ---------------------------------------------------------------------------------------------
# Reference implementation


def _getter(key: str):
    kind, _, name = key.partition(".")
    if kind == "metrics":
        return lambda r: r.metrics.get(name)
    if kind == "params":
        return lambda r: r.params.get(name)
    if kind == "tags":
        return lambda r: r.tags.get(name)
    if kind == "attributes":
        return lambda r: getattr(r, name)
    raise ValueError(key)


def ref_order(runs: list[R], order_by: list[str] | None = None) -> list[str]:
    """MLflow's order: each key (present first, NaN next for metrics, missing last), then
    start_time DESC unless ordered by start_time, then run_id ASC."""
    order_by = order_by or []
    out = sorted(runs, key=lambda r: r.run_id)
    keys = []
    for clause in order_by:
        parts = clause.split()
        keys.append((parts[0], len(parts) > 1 and parts[1].upper() == "DESC"))
    if not any(k in ("attributes.start_time", "start_time") for k, _ in keys):
        out.sort(key=lambda r: r.start_time, reverse=True)
    for key, desc in reversed(keys):
        get = _getter(key if "." in key else f"attributes.{key}")
        present = [r for r in out if get(r) is not None and not (isinstance(get(r), float) and math.isnan(get(r)))]
        nan = [r for r in out if isinstance(get(r), float) and math.isnan(get(r))]
        missing = [r for r in out if get(r) is None]
        present.sort(key=get, reverse=desc)
        out = present + nan + missing
    return [r.run_id for r in out]


def _like(pattern: str, value: str, ci: bool) -> bool:
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL if ci else re.DOTALL) is not None


def search_all(client, exp_id, filter_string="", order_by=None, page_size=1000):
    ids, token, pages = [], None, 0
    while True:
        page = client.search_runs([exp_id], filter_string=filter_string, order_by=order_by, max_results=page_size, page_token=token)
        pages += 1
        assert len(page) <= page_size
        ids.extend(r.info.run_id for r in page)
        token = page.token
        if not token:
            return ids
        assert pages <= N_RUNS // page_size + 2, "pagination does not terminate"


# ---------------------------------------------------------------------------------------------

FILTERS = {
    "metric-gt": ("metrics.m1 > 0.5", lambda r: r.metrics.get("m1") is not None and r.metrics["m1"] > 0.5),
    "metric-le": ("metrics.m1 <= 0.2", lambda r: "m1" in r.metrics and r.metrics["m1"] <= 0.2),
    "latest-metric": ("metrics.m2 >= 5", lambda r: r.metrics["m2"] >= 5),
    "latest-metric-eq": ("metrics.m2 = 1000", lambda r: False),
    "param-eq": ("params.p = 'beta'", lambda r: r.params.get("p") == "beta"),
    "param-ne": ("params.p != 'beta'", lambda r: "p" in r.params and r.params["p"] != "beta"),
    "tag-ne": ("tags.t != 'x'", lambda r: "t" in r.tags and r.tags["t"] != "x"),
    "status": ("attributes.status = 'FINISHED'", lambda r: r.status == "FINISHED"),
    "status-ne": ("attributes.status != 'FINISHED'", lambda r: r.status != "FINISHED"),
    "run-name-like": ("attributes.run_name LIKE 'Run-%'", lambda r: _like("Run-%", r.run_name, False)),
    "run-name-ilike": ("attributes.run_name ILIKE 'RUN-00%'", lambda r: _like("RUN-00%", r.run_name, True)),
    "run-name-like-underscore": ("attributes.run_name LIKE 'run-01_5'", lambda r: _like("run-01_5", r.run_name, False)),
    "tag-like": ("tags.grp LIKE 'Group%'", lambda r: _like("Group%", r.tags["grp"], False)),
    "tag-ilike": ("tags.grp ILIKE '%GROUP-B'", lambda r: _like("%GROUP-B", r.tags["grp"], True)),
    "param-like": ("params.q LIKE '09%'", lambda r: r.params["q"].startswith("09")),
    "start-time": (f"attributes.start_time >= {BASE_TS + 400 * 1000}", lambda r: r.start_time >= BASE_TS + 400 * 1000),
    "and-combo": (
        "metrics.m1 > 0.3 AND params.p = 'alpha' AND tags.t != 'z'",
        lambda r: r.metrics.get("m1", -1) > 0.3 and r.params.get("p") == "alpha" and "t" in r.tags and r.tags["t"] != "z",
    ),
    "and-combo-2": (
        "attributes.status = 'FINISHED' AND metrics.m2 < 2 AND tags.grp = 'Group-A'",
        lambda r: r.status == "FINISHED" and r.metrics["m2"] < 2 and r.tags["grp"] == "Group-A",
    ),
    "tag-quoted-key": ("tags.`t` = 'y'", lambda r: r.tags.get("t") == "y"),
}


@pytest.mark.parametrize("fid", list(FILTERS))
def test_search_filters(client, dataset, fid):
    exp_id, runs = dataset
    filt, pred = FILTERS[fid]
    want = ref_order([r for r in runs if pred(r)])
    got = search_all(client, exp_id, filt)
    assert len(got) == len(want), f"{filt}: {len(got)} runs, expected {len(want)}"
    assert got == want, filt


def test_search_run_id_in(client, dataset):
    exp_id, runs = dataset
    chosen = [runs[i] for i in (3, 77, 500, 999, 12)]
    ids = ", ".join(f"'{r.run_id}'" for r in chosen)
    got = search_all(client, exp_id, f"attributes.run_id IN ({ids})")
    assert got == ref_order(chosen)
    got = search_all(client, exp_id, f"attributes.run_id IN ({ids}) AND metrics.m2 > 3")
    assert got == ref_order([r for r in chosen if r.metrics["m2"] > 3])
    nin = search_all(client, exp_id, f"attributes.run_id NOT IN ({ids})")
    assert nin == ref_order([r for r in runs if r not in chosen])


ORDERS = {
    "default": None,
    "metric-desc": ["metrics.m1 DESC"],
    "metric-asc": ["metrics.m1 ASC"],
    "param-asc": ["params.p ASC"],
    "param-desc": ["params.p DESC"],
    "start-time-asc": ["attributes.start_time ASC"],
    "start-time-bare": ["start_time DESC"],
    "tag-desc": ["tags.t DESC"],
    "multi": ["metrics.m2 DESC", "params.p ASC"],
    "multi-3": ["tags.t ASC", "metrics.m2 ASC", "attributes.start_time DESC"],
}


@pytest.mark.parametrize("oid", list(ORDERS))
def test_search_order_by(client, dataset, oid):
    exp_id, runs = dataset
    order_by = ORDERS[oid]
    got = search_all(client, exp_id, "", order_by)
    assert got == ref_order(runs, order_by)


def test_search_pagination(client, dataset):
    exp_id, runs = dataset
    order_by = ["metrics.m1 DESC"]
    filt = "attributes.status = 'FINISHED'"
    want = ref_order([r for r in runs if r.status == "FINISHED"], order_by)
    assert len(want) > 500
    pages = []
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string=filt, order_by=order_by, max_results=100, page_token=token)
        pages.append([r.info.run_id for r in page])
        token = page.token
        if not token:
            break
        assert len(pages) <= 20
    got = [rid for p in pages for rid in p]
    assert got == want
    assert all(len(p) == 100 for p in pages[: len(want) // 100])
    assert len(pages) in (math.ceil(len(want) / 100), math.ceil(len(want) / 100) + 1)
    # Unfiltered, default order, odd page size.
    assert search_all(client, exp_id, "", None, page_size=333) == ref_order(runs)


def test_search_max_results_and_count(client, dataset):
    exp_id, runs = dataset
    page = client.search_runs([exp_id], max_results=7, order_by=["params.q ASC"])
    assert [r.info.run_id for r in page] == [r.run_id for r in sorted(runs, key=lambda r: r.params["q"])[:7]]
    assert page.token
    # The whole data of a run comes back in search results.
    r0 = runs[1]
    got = client.search_runs([exp_id], filter_string=f"attributes.run_id = '{r0.run_id}'")[0]
    assert got.data.params == r0.params
    assert {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")} == r0.tags
    assert got.data.metrics == r0.metrics
    assert got.info.status == r0.status and got.info.start_time == r0.start_time and got.info.run_name == r0.run_name


def test_fluent_search_runs_dataframe(tracking, dataset):
    exp_id, runs = dataset
    df = mlflow.search_runs(
        experiment_ids=[exp_id], filter_string="params.p = 'gamma'", order_by=["metrics.m1 DESC"], max_results=1000
    )
    sel = [r for r in runs if r.params.get("p") == "gamma"]
    want = ref_order(sel, ["metrics.m1 DESC"])
    assert df["run_id"].tolist() == want
    by_id = {r.run_id: r for r in sel}
    for col in ("metrics.m1", "metrics.m2", "params.p", "params.q", "tags.t", "status", "start_time", "tags.mlflow.runName"):
        assert col in df.columns, col
    for _, row in df.iterrows():
        r = by_id[row["run_id"]]
        if "m1" in r.metrics:
            assert row["metrics.m1"] == r.metrics["m1"]
        else:
            assert math.isnan(row["metrics.m1"])
        assert row["params.q"] == r.params["q"]
        assert row["status"] == r.status
        assert row["tags.mlflow.runName"] == r.run_name
        assert int(row["start_time"].timestamp() * 1000) == r.start_time


def test_nan_and_missing_metric_ordering(client, experiment_id):
    values = [3.0, 1.0, float("nan"), None, 2.0, float("nan"), None, -1.0]
    runs = []
    for i, v in enumerate(values):
        r = R(i=i, start_time=BASE_TS + i * 1000)
        run = client.create_run(experiment_id, start_time=r.start_time)
        r.run_id = run.info.run_id
        if v is not None:
            client.log_metric(r.run_id, "x", v, timestamp=1, step=0)
            r.metrics["x"] = v
        runs.append(r)
    for order in (["metrics.x DESC"], ["metrics.x ASC"], ["metrics.x"]):
        got = [r.info.run_id for r in client.search_runs([experiment_id], order_by=order)]
        assert got == ref_order(runs, order), order
