"""Expected failures surface through the mlflow client as MlflowException with MLflow's error codes."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException, RestException

from slipway_testlib import uniq


def _raises(code, fn, *args, rest=True, **kwargs):
    with pytest.raises(MlflowException) as ei:
        fn(*args, **kwargs)
    if rest:
        assert isinstance(ei.value, RestException), type(ei.value)
    assert ei.value.error_code == code, f"{ei.value.error_code}: {ei.value.message}"
    assert ei.value.message
    return ei.value


def test_get_unknown_run(client):
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_run, "0" * 31 + "9")


def test_get_unknown_experiment(client):
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_experiment, "987654321")


def test_create_duplicate_experiment(client):
    name = uniq("dup")
    client.create_experiment(name)
    _raises("RESOURCE_ALREADY_EXISTS", client.create_experiment, name)


def test_change_logged_param(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_param(rid, "p", "1")
    # The client re-wraps this RestException into a plain MlflowException with a longer hint.
    _raises("INVALID_PARAMETER_VALUE", client.log_param, rid, "p", "2", rest=False)
    from mlflow.entities import Param

    _raises("INVALID_PARAMETER_VALUE", client.log_batch, rid, params=[Param("p", "3")], rest=False)
    assert client.get_run(rid).data.params == {"p": "1"}


@pytest.mark.parametrize(
    "bad_filter",
    [
        "metrics.m1 >",
        "params.p == 'x'",
        "nonsense.key = 'x'",
        "metrics.m1 > 'not-a-number'",
        "attributes.status = 'FINISHED' OR attributes.status = 'FAILED'",
        "params.p = 'unterminated",
    ],
)
def test_bad_filter_string(client, experiment_id, bad_filter):
    _raises("INVALID_PARAMETER_VALUE", client.search_runs, [experiment_id], filter_string=bad_filter)


def test_bad_order_by(client, experiment_id):
    _raises("INVALID_PARAMETER_VALUE", client.search_runs, [experiment_id], order_by=["metrics.m1 SIDEWAYS"])


def test_get_unknown_registered_model(client):
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, uniq("no-such-model"))


def test_get_unknown_model_version(client):
    name = uniq("rm")
    client.create_registered_model(name)
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_model_version, name, "7")


def test_create_duplicate_registered_model(client):
    name = uniq("rm-dup")
    client.create_registered_model(name)
    _raises("RESOURCE_ALREADY_EXISTS", client.create_registered_model, name)


def test_log_to_deleted_run(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.delete_run(rid)
    _raises("INVALID_PARAMETER_VALUE", client.log_metric, rid, "m", 1.0)
