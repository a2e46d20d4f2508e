"""Model registry and MLflow 3 logged models: onnx log/load, aliases, versions, stages, search."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from mlflow.exceptions import MlflowException

import mlflow
import mlflow.onnx
from slipway_testlib import uniq


@pytest.fixture(scope="module")
def iris_onnx():
    """An sklearn iris pipeline converted to ONNX (probabilities as a plain tensor, no ZipMap)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=1000, random_state=0))])
    pipe.fit(x, y)
    onx = convert_sklearn(
        pipe,
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        target_opset=17,
        options={id(pipe): {"zipmap": False}},
    )
    return onx, x


def _ort_predict(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"float_input": x})


def _signature(x, outputs):
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 4), "float_input")]),
        outputs=Schema(
            [
                TensorSpec(outputs[0].dtype, (-1,), "output_label"),
                TensorSpec(outputs[1].dtype, (-1, outputs[1].shape[1]), "output_probability"),
            ]
        ),
    )


def _log_onnx(onx, x, registered_name, params=None):
    expected = _ort_predict(onx, x)
    with mlflow.start_run() as run:
        if params:
            mlflow.log_params(params)
        info = mlflow.onnx.log_model(
            onx,
            name="model",
            registered_model_name=registered_name,
            input_example=x[:3],
            signature=_signature(x, expected),
        )
    return run, info


def test_onnx_log_model_alias_load_predict(tracking, client, experiment_id, iris_onnx, tmp_path):
    onx, x = iris_onnx
    expected = _ort_predict(onx, x)
    name = uniq("iris")
    mlflow.set_experiment(experiment_id=experiment_id)
    run, info = _log_onnx(onx, x, name)

    assert str(info.registered_model_version) == "1"
    assert info.model_id  # MLflow 3 logged model
    logged = mlflow.get_logged_model(info.model_id)
    assert logged.name == "model"
    assert logged.experiment_id == experiment_id
    assert logged.source_run_id == run.info.run_id
    assert str(logged.status).endswith("READY")

    mv = client.get_model_version(name, "1")
    assert mv.run_id == run.info.run_id
    assert mv.status == "READY"

    client.set_registered_model_alias(name, "champion", "1")
    by_alias = client.get_model_version_by_alias(name, "champion")
    assert by_alias.version == "1" and by_alias.name == name
    assert "champion" in client.get_registered_model(name).aliases

    for sub in ("alias", "ver", "id"):
        (tmp_path / sub).mkdir()
    loaded = mlflow.onnx.load_model(f"models:/{name}@champion", dst_path=str(tmp_path / "alias"))
    got = _ort_predict(loaded, x)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=1e-6)
    assert loaded.SerializeToString() == onx.SerializeToString()

    # Also by version and by the logged model id.
    by_version = mlflow.onnx.load_model(f"models:/{name}/1", dst_path=str(tmp_path / "ver"))
    assert by_version.SerializeToString() == onx.SerializeToString()
    by_id = mlflow.onnx.load_model(f"models:/{info.model_id}", dst_path=str(tmp_path / "id"))
    assert by_id.SerializeToString() == onx.SerializeToString()

    # The signature round-trips.
    from mlflow.models import get_model_info

    minfo = get_model_info(f"models:/{name}@champion")
    assert minfo.signature.inputs.input_names() == ["float_input"]
    assert minfo.signature.outputs.input_names() == ["output_label", "output_probability"]
    assert "onnx" in minfo.flavors

    uri = client.get_model_version_download_uri(name, "1")
    assert isinstance(uri, str) and uri


def test_registry_versions_tags_stages(tracking, client, experiment_id, iris_onnx):
    onx, x = iris_onnx
    name = uniq("iris-stages")
    mlflow.set_experiment(experiment_id=experiment_id)
    run1, _ = _log_onnx(onx, x, name, params={"v": "1"})
    run2, info2 = _log_onnx(onx, x, name, params={"v": "2"})
    assert str(info2.registered_model_version) == "2"
    assert client.get_model_version(name, "2").run_id == run2.info.run_id

    # Model version tags.
    client.set_model_version_tag(name, "1", "validated", "yes")
    client.set_model_version_tag(name, "1", "owner", "interop")
    assert client.get_model_version(name, "1").tags == {"validated": "yes", "owner": "interop"}
    client.delete_model_version_tag(name, "1", "owner")
    assert client.get_model_version(name, "1").tags == {"validated": "yes"}

    # Registered model tags and description.
    client.set_registered_model_tag(name, "domain", "flowers")
    client.update_registered_model(name, description="iris classifier")
    rm = client.get_registered_model(name)
    assert rm.tags == {"domain": "flowers"}
    assert rm.description == "iris classifier"
    client.update_model_version(name, "2", description="second")
    assert client.get_model_version(name, "2").description == "second"

    # Stages (deprecated in MLflow, still served).
    assert client.get_model_version(name, "1").current_stage == "None"
    mv = client.transition_model_version_stage(name, "1", "Production")
    assert mv.current_stage == "Production"
    mv = client.transition_model_version_stage(name, "2", "Staging")
    assert mv.current_stage == "Staging"
    latest = {v.current_stage: v.version for v in client.get_latest_versions(name)}
    assert latest == {"Production": "1", "Staging": "2"}
    mv = client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert mv.current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    assert [v.version for v in client.get_latest_versions(name, stages=["Production"])] == ["2"]
    assert [v.version for v in client.get_latest_versions(name, stages=["Archived"])] == ["1"]
    assert client.get_latest_versions(name, stages=["Staging"]) == []
    # Stage names are case-insensitive on input and canonical on output.
    mv = client.transition_model_version_stage(name, "1", "staging")
    assert mv.current_stage == "Staging"
    latest = {v.current_stage: v.version for v in client.get_latest_versions(name)}
    assert latest == {"Production": "2", "Staging": "1"}

    # Latest versions are reported on the registered model too.
    rm = client.get_registered_model(name)
    assert sorted((v.version, v.current_stage) for v in rm.latest_versions) == [("1", "Staging"), ("2", "Production")]


def _register_plain(client, experiment_id, name, n_versions, tags=None):
    """Registers versions whose source is a run's artifact directory (no model files needed)."""
    client.create_registered_model(name, tags=tags or {})
    runs = []
    for _ in range(n_versions):
        run = client.create_run(experiment_id)
        runs.append(run.info.run_id)
        client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return runs


def test_rename_and_deletes(client, experiment_id):
    name = uniq("reg")
    _register_plain(client, experiment_id, name, 3)
    client.set_registered_model_alias(name, "a", "1")
    client.set_registered_model_alias(name, "b", "2")
    client.set_registered_model_alias(name, "a", "3")  # moving an alias
    assert client.get_model_version_by_alias(name, "a").version == "3"
    assert client.get_model_version(name, "3").aliases == ["a"]
    assert client.get_model_version(name, "1").aliases == []

    new_name = uniq("reg-renamed")
    client.rename_registered_model(name, new_name)
    assert client.get_registered_model(new_name).name == new_name
    with pytest.raises(MlflowException) as ei:
        client.get_registered_model(name)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_model_version(new_name, "2").name == new_name
    assert client.get_model_version_by_alias(new_name, "b").version == "2"

    client.delete_registered_model_alias(new_name, "b")
    with pytest.raises(MlflowException) as ei:
        client.get_model_version_by_alias(new_name, "b")
    assert ei.value.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")

    client.delete_model_version(new_name, "2")
    with pytest.raises(MlflowException) as ei:
        client.get_model_version(new_name, "2")
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    remaining = client.search_model_versions(f"name = '{new_name}'")
    assert sorted(v.version for v in remaining) == ["1", "3"]
    # Version numbers are never reused.
    run = client.create_run(experiment_id)
    mv = client.create_model_version(new_name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    assert mv.version == "4"

    client.delete_registered_model(new_name)
    with pytest.raises(MlflowException) as ei:
        client.get_registered_model(new_name)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.search_model_versions(f"name = '{new_name}'") == []


def test_search_registered_models_and_versions(client, experiment_id):
    prefix = uniq("srch")
    names = [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    runs = {}
    for i, n in enumerate(names):
        runs[n] = _register_plain(client, experiment_id, n, i + 1, tags={"family": "odd" if i % 2 == 0 else "even"})

    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")
    assert sorted(m.name for m in found) == names
    found = client.search_registered_models(filter_string=f"name = '{names[1]}'")
    assert [m.name for m in found] == [names[1]]
    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%' AND tags.family = 'odd'")
    assert sorted(m.name for m in found) == [names[0], names[2]]
    found = client.search_registered_models(filter_string=f"name ILIKE '{prefix.upper()}-%'")
    assert sorted(m.name for m in found) == names
    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [m.name for m in found] == sorted(names, reverse=True)
    # Pagination.
    page1 = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", max_results=2, order_by=["name ASC"])
    assert [m.name for m in page1] == names[:2] and page1.token
    page2 = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%'", max_results=2, order_by=["name ASC"], page_token=page1.token
    )
    assert [m.name for m in page2] == names[2:]
    assert not page2.token

    c = names[2]
    versions = client.search_model_versions(f"name = '{c}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]
    rid = runs[c][1]
    versions = client.search_model_versions(f"name = '{c}' AND run_id = '{rid}'")
    assert [(v.name, v.version) for v in versions] == [(c, "2")]
    versions = client.search_model_versions(f"run_id IN ('{runs[c][0]}', '{runs[names[1]][1]}')")
    assert sorted((v.name, v.version) for v in versions) == [(names[1], "2"), (c, "1")]
    client.set_model_version_tag(c, "3", "quality", "gold")
    versions = client.search_model_versions(f"name = '{c}' AND tags.quality = 'gold'")
    assert [v.version for v in versions] == ["3"]
    versions = client.search_model_versions(f"name LIKE '{prefix}-%'", order_by=["name ASC", "version_number DESC"])
    assert [(v.name, v.version) for v in versions] == [
        (names[0], "1"),
        (names[1], "2"),
        (names[1], "1"),
        (c, "3"),
        (c, "2"),
        (c, "1"),
    ]


def test_model_version_download_uri(client, experiment_id):
    name = uniq("dl-uri")
    run = client.create_run(experiment_id)
    source = f"{run.info.artifact_uri}/model"
    client.create_registered_model(name)
    mv = client.create_model_version(name, source, run_id=run.info.run_id)
    assert mv.source == source
    uri = client.get_model_version_download_uri(name, mv.version)
    # MLflow answers the version's source for a plain artifact source.
    assert uri == source
