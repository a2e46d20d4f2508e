"""Tracking API through the unmodified mlflow client: experiments, runs, params, metrics, tags, inputs."""

from __future__ import annotations

import math
import time

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from slipway_testlib import uniq


def test_experiments_create_get_search(client):
    prefix = uniq("exps")
    names = [f"{prefix}-{i}" for i in range(3)]
    ids = [client.create_experiment(n, tags={"team": "interop", "idx": str(i)}) for i, n in enumerate(names)]
    assert len(set(ids)) == 3 and all(isinstance(i, str) and i for i in ids)

    exp = client.get_experiment(ids[1])
    assert exp.experiment_id == ids[1]
    assert exp.name == names[1]
    assert exp.lifecycle_stage == "active"
    assert exp.tags["team"] == "interop" and exp.tags["idx"] == "1"
    assert exp.artifact_location  # e.g. mlflow-artifacts:/<id>

    by_name = client.get_experiment_by_name(names[2])
    assert by_name is not None and by_name.experiment_id == ids[2]
    assert client.get_experiment_by_name(uniq("no-such-experiment")) is None

    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'")
    assert sorted(e.experiment_id for e in found) == sorted(ids)
    found = client.search_experiments(filter_string=f"name = '{names[0]}'")
    assert [e.experiment_id for e in found] == [ids[0]]
    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%' AND tags.idx = '2'")
    assert [e.experiment_id for e in found] == [ids[2]]
    # Newest first by default is MLflow's order; ask explicitly to be independent of it.
    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [e.name for e in found] == sorted(names, reverse=True)

    # Fluent API too.
    assert {e.experiment_id for e in mlflow.search_experiments(filter_string=f"name LIKE '{prefix}%'")} == set(ids)

    client.set_experiment_tag(ids[0], "extra", "yes")
    assert client.get_experiment(ids[0]).tags["extra"] == "yes"


def test_experiment_delete_restore_rename(client):
    name = uniq("exp-del")
    exp_id = client.create_experiment(name)
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    active = client.search_experiments(filter_string=f"name = '{name}'")
    assert active == []
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in deleted] == [exp_id]
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    new_name = uniq("exp-renamed")
    client.rename_experiment(exp_id, new_name)
    assert client.get_experiment(exp_id).name == new_name
    assert client.get_experiment_by_name(new_name).experiment_id == exp_id


def test_nested_runs(tracking, client, experiment_id):
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("level", "parent")
        with mlflow.start_run(run_name="child-a", nested=True) as child_a:
            mlflow.log_param("level", "child")
            with mlflow.start_run(run_name="grandchild", nested=True) as grandchild:
                mlflow.log_metric("depth", 2)
        with mlflow.start_run(run_name="child-b", nested=True) as child_b:
            mlflow.log_metric("depth", 1)

    pid = parent.info.run_id
    a = client.get_run(child_a.info.run_id)
    b = client.get_run(child_b.info.run_id)
    g = client.get_run(grandchild.info.run_id)
    assert a.data.tags["mlflow.parentRunId"] == pid
    assert b.data.tags["mlflow.parentRunId"] == pid
    assert g.data.tags["mlflow.parentRunId"] == child_a.info.run_id
    assert "mlflow.parentRunId" not in client.get_run(pid).data.tags
    assert a.info.run_name == "child-a" and a.data.tags["mlflow.runName"] == "child-a"
    for r in (a, b, g, client.get_run(pid)):
        assert r.info.status == "FINISHED"
        assert r.info.end_time is not None and r.info.end_time >= r.info.start_time

    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{pid}'")
    assert sorted(r.info.run_id for r in children) == sorted([child_a.info.run_id, child_b.info.run_id])


def test_params_metrics_steps_timestamps(client, experiment_id):
    run = client.create_run(experiment_id, run_name="metrics")
    rid = run.info.run_id
    client.log_param(rid, "lr", "0.01")
    client.log_param(rid, "optimizer", "adam")
    base = 1_700_000_000_000
    logged = []
    # Out-of-order steps, a repeated step with another timestamp, negative and large values.
    for step, ts, value in [
        (0, base, 1.5),
        (2, base + 20, -3.25),
        (1, base + 10, 0.0),
        (2, base + 30, 7.0),
        (5, base + 50, 1e300),
        (3, base + 40, 123456789.125),
    ]:
        client.log_metric(rid, "loss", value, timestamp=ts, step=step)
        logged.append((value, ts, step))
    client.log_metric(rid, "acc", 0.5, timestamp=base, step=0)

    hist = client.get_metric_history(rid, "loss")
    got = sorted((m.value, m.timestamp, m.step) for m in hist)
    assert got == sorted(logged)
    assert all(m.key == "loss" for m in hist)

    r = client.get_run(rid)
    assert r.data.params == {"lr": "0.01", "optimizer": "adam"}
    # The run's metric value is the latest one: highest step, then latest timestamp.
    assert r.data.metrics["loss"] == 1e300
    assert r.data.metrics["acc"] == 0.5

    # The latest value at the highest step wins even when logged earlier in wall time.
    client.log_metric(rid, "late", 10.0, timestamp=base + 100, step=1)
    client.log_metric(rid, "late", 20.0, timestamp=base + 200, step=0)
    assert client.get_run(rid).data.metrics["late"] == 10.0
    # Same step: the later timestamp wins.
    client.log_metric(rid, "same", 1.0, timestamp=base + 300, step=4)
    client.log_metric(rid, "same", 2.0, timestamp=base + 200, step=4)
    assert client.get_run(rid).data.metrics["same"] == 1.0


def test_metric_special_values(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_metric(rid, "nan", float("nan"), timestamp=1, step=0)
    client.log_metric(rid, "pinf", float("inf"), timestamp=1, step=0)
    client.log_metric(rid, "ninf", float("-inf"), timestamp=1, step=0)
    m = client.get_run(rid).data.metrics
    assert math.isnan(m["nan"])
    assert m["pinf"] > 1e308
    assert m["ninf"] < -1e308
    assert math.isnan(client.get_metric_history(rid, "nan")[0].value)


def test_log_batch(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    ts = int(time.time() * 1000)
    metrics = [Metric("m", float(i) / 3, ts + i, i) for i in range(50)] + [Metric("other", 42.0, ts, 0)]
    params = [Param(f"p{i}", f"value-{i}") for i in range(20)]
    tags = [RunTag("team", "interop"), RunTag("note", "unicode ✓ ünïcödé")]
    client.log_batch(rid, metrics=metrics, params=params, tags=tags)

    r = client.get_run(rid)
    assert r.data.params == {p.key: p.value for p in params}
    assert r.data.tags["team"] == "interop"
    assert r.data.tags["note"] == "unicode ✓ ünïcödé"
    assert r.data.metrics["m"] == pytest.approx(49 / 3, rel=0, abs=0)
    assert r.data.metrics["other"] == 42.0
    hist = client.get_metric_history(rid, "m")
    assert sorted((h.step, h.timestamp, h.value) for h in hist) == [(i, ts + i, float(i) / 3) for i in range(50)]

    # Re-logging an identical param is allowed (idempotent), in a batch too.
    client.log_batch(rid, params=[Param("p0", "value-0")])
    # Long param values (MLflow allows 6000 characters).
    long_value = "x" * 6000
    client.log_param(rid, "long", long_value)
    assert client.get_run(rid).data.params["long"] == long_value


def test_tags_set_delete_and_run_name(client, experiment_id):
    rid = client.create_run(experiment_id, run_name="first-name", tags={"init": "1"}).info.run_id
    client.set_tag(rid, "k", "v")
    client.set_tag(rid, "k", "v2")  # tags are mutable
    r = client.get_run(rid)
    assert r.data.tags["k"] == "v2" and r.data.tags["init"] == "1"
    assert r.info.run_name == "first-name"
    client.delete_tag(rid, "k")
    assert "k" not in client.get_run(rid).data.tags
    client.update_run(rid, name="second-name")
    r = client.get_run(rid)
    assert r.info.run_name == "second-name"
    assert r.data.tags["mlflow.runName"] == "second-name"


def test_dataset_inputs(tracking, client, experiment_id):
    df = pd.DataFrame({"a": np.arange(10, dtype=np.int64), "b": np.linspace(0.0, 1.0, 10), "label": ["x", "y"] * 5})
    ds_name = uniq("ds")
    ds = mlflow.data.from_pandas(df, name=ds_name, targets="label")
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run() as run:
        mlflow.log_input(ds, context="training")
        mlflow.log_input(mlflow.data.from_pandas(df.head(3), name=ds_name + "-eval"), context="eval")

    r = client.get_run(run.info.run_id)
    inputs = {di.dataset.name: di for di in r.inputs.dataset_inputs}
    assert set(inputs) == {ds_name, ds_name + "-eval"}
    train = inputs[ds_name]
    sent = ds._to_mlflow_entity()  # exactly what the client sent
    for attr in ("name", "digest", "source_type", "source", "schema", "profile"):
        assert getattr(train.dataset, attr) == getattr(sent, attr), attr
    assert "label" in train.dataset.schema
    assert {t.key: t.value for t in train.tags}.get("mlflow.data.context") == "training"
    ev = inputs[ds_name + "-eval"]
    assert {t.key: t.value for t in ev.tags}.get("mlflow.data.context") == "eval"


def test_update_run_status_end_time(client, experiment_id):
    run = client.create_run(experiment_id, start_time=1_700_000_000_000)
    rid = run.info.run_id
    assert run.info.status == "RUNNING"
    assert run.info.start_time == 1_700_000_000_000
    assert run.info.end_time is None
    client.update_run(rid, status="KILLED")
    assert client.get_run(rid).info.status == "KILLED"
    client.set_terminated(rid, status="FAILED", end_time=1_700_000_123_456)
    info = client.get_run(rid).info
    assert info.status == "FAILED"
    assert info.end_time == 1_700_000_123_456

    rid2 = client.create_run(experiment_id).info.run_id
    client.set_terminated(rid2)
    info2 = client.get_run(rid2).info
    assert info2.status == "FINISHED" and info2.end_time >= info2.start_time


def test_delete_restore_run(client, experiment_id):
    keep = client.create_run(experiment_id).info.run_id
    gone = client.create_run(experiment_id).info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [keep]
    assert [r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)] == [gone]
    assert {r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.ALL)} == {keep, gone}
    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert {r.info.run_id for r in client.search_runs([experiment_id])} == {keep, gone}


def test_changing_logged_param_is_rejected(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_param(rid, "fixed", "1")
    with pytest.raises(MlflowException) as ei:
        client.log_param(rid, "fixed", "2")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(rid).data.params["fixed"] == "1"
