"""Monitoring with real models and real readers (issue 9): the prediction log holds exactly the
requests sent (read with pyarrow, pandas and DuckDB); kill -9 loses at most the flush window and
leaves no unreadable file; drift figures equal scipy's and Evidently 0.7's on data with known
shifts; a version without reference takes its first logged rows; SIGTERM writes every buffered
row; a log fraction logs that share of requests; a window below min_rows is insufficient_data;
feedback joins give sklearn.metrics' accuracy, precision and recall, as the API and as gauges (and
MAE/RMSE for a regressor); bad input of each kind is a 4xx naming it; a corrupt file in the log is
skipped and reported."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import requests
from scipy import stats

import rollout_models as rm
import serving_models as sm
from slipway_testlib import new_admin_token, uniq

pytestmark = pytest.mark.slipway

FLUSH_S = 1
ENV = {
    "SLIPWAY_DEPLOYMENT_POLL_MS": "200",
    "SLIPWAY_PREDICTION_LOG_FLUSH_SECONDS": str(FLUSH_S),
    "SLIPWAY_MONITORING_INTERVAL_SECONDS": "5",
    "SLIPWAY_DRIFT_MIN_ROWS": "50",
    "SLIPWAY_LOG_LEVEL": "info,ort=error",
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    token = new_admin_token()
    server = sm.start_server_with_demo(tmp_path_factory.mktemp("monitoring") / "data", admin_token=token, env=ENV)
    try:
        yield server, token
    finally:
        server.stop()


def h(token: str) -> dict:
    return sm.auth_headers(token)


def deploy(srv, name: str, built, monitoring: dict | None = None) -> str:
    server, token = srv
    with sm.tracking_at(server.url, token):
        import mlflow

        exp = mlflow.create_experiment(uniq("exp"))
        version = sm.log_and_register(built, name, exp)
        from mlflow.tracking import MlflowClient

        MlflowClient().set_registered_model_alias(name, "champion", version)
    spec = {"model": name, "alias": "champion"}
    if monitoring:
        spec["monitoring"] = monitoring
    sm.put_deployment(server.url, token, name, spec)
    return version


def infer(srv, name: str, rows: np.ndarray, input_name: str = "float_input", headers=None, session=None):
    server, token = srv
    body = {"inputs": [{"name": input_name, "shape": list(rows.shape), "datatype": "FP32", "data": rows.astype(np.float32).ravel().tolist()}]}
    r = (session or requests).post(f"{server.url}/v2/models/{name}/infer", json=body, headers={**h(token), **(headers or {})}, timeout=30)
    assert r.status_code == 200, r.text
    return r


def log_root(server) -> tuple[pafs.FileSystem, str]:
    """The artifact store of ``server`` as a pyarrow file system and root path."""
    root = os.environ.get("SLIPWAY_ARTIFACT_ROOT", "")
    if root.startswith("s3://"):
        key = hashlib.sha256(str(server.data_dir.resolve()).encode()).hexdigest()[:16]
        endpoint = os.environ["SLIPWAY_S3_ENDPOINT"]
        fs = pafs.S3FileSystem(
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            endpoint_override=endpoint.split("://", 1)[1],
            scheme=endpoint.split("://", 1)[0],
            region=os.environ.get("AWS_REGION", "us-east-1"),
        )
        return fs, root[len("s3://"):].rstrip("/") + f"/isolated-{key}"
    return pafs.LocalFileSystem(), str(server.data_dir / "artifacts")


def log_table(server, name: str):
    """The whole log of deployment ``name`` as one table (hive partitions become columns)."""
    fs, root = log_root(server)
    ds = pads.dataset(f"{root}/predictions", filesystem=fs, format="parquet", partitioning="hive")
    return ds.to_table(filter=pads.field("deployment") == name)


def get(srv, path: str, **params):
    server, token = srv
    return requests.get(f"{server.url}{path}", params=params, headers=h(token), timeout=60)


# ------------------------------------------------------------------------------ the log


def test_the_log_holds_exactly_the_requests_sent(srv):
    server, token = srv
    name = uniq("log")
    built = rm.stable()
    version = deploy(srv, name, built)
    rng = np.random.default_rng(3)
    sent = []  # (request id, rows)
    s = requests.Session()
    for i in range(40):
        rows = built.x[rng.integers(0, len(built.x), size=int(rng.integers(1, 6)))]
        own = f"client-{i}" if i % 2 == 0 else None
        r = infer(srv, name, rows, headers={"x-request-id": own} if own else None, session=s)
        rid = r.headers["x-request-id"]
        if own:
            assert rid == own
        sent.append((rid, rows.astype(np.float32)))
    # the MLflow scoring protocol is logged too
    r = s.post(f"{server.url}/api/v1/deployments/{name}/invocations", json={"inputs": built.x[:3].tolist()}, headers=h(token), timeout=30)
    assert r.status_code == 200, r.text
    sent.append((r.headers["x-request-id"], built.x[:3].astype(np.float32)))

    # the API reads the log back (and writes this replica's buffer first)
    api = get(srv, f"/api/v1/deployments/{name}/predictions", limit=100000)
    assert api.status_code == 200, api.text
    body = api.json()
    want_rows = sum(len(x) for _, x in sent)
    assert body["count"] == want_rows and not body["truncated"] and body["skipped_files"] == []

    t = log_table(server, name)
    df = t.to_pandas()
    assert len(df) == want_rows
    assert set(df["version"].astype(str)) == {version}
    assert set(df["deployment"].astype(str)) == {name}
    assert set(df["status"]) == {200} and set(df["role"]) == {"stable"}
    expected = built.predict(np.concatenate([x for _, x in sent]))
    got_rows, got_labels, got_probs = [], [], []
    for rid, rows in sent:
        part = df[df["request_id"] == rid].sort_values("row")
        assert list(part["row"]) == list(range(len(rows))), rid
        feats = part[[f"float_input[{j}]" for j in range(4)]].to_numpy(dtype=np.float32)
        assert np.array_equal(feats, rows), rid
        got_rows.append(feats)
        got_labels.append(part["label"].to_numpy())
        got_probs.append(part[[f"probabilities[{j}]" for j in range(3)]].to_numpy(dtype=np.float32))
    assert np.array_equal(np.concatenate(got_labels), expected["label"])
    np.testing.assert_allclose(np.concatenate(got_probs), expected["probabilities"], rtol=1e-6, atol=1e-7)
    # pandas reads the directory, DuckDB the files
    fs, root = log_root(server)
    pdf = pd.read_parquet(f"{root}/predictions", filesystem=fs, filters=[("deployment", "==", name)])
    assert len(pdf) == want_rows and set(pdf["version"].astype(str)) == {version}
    if isinstance(fs, pafs.LocalFileSystem):
        import duckdb

        ((n, versions),) = duckdb.sql(
            f"SELECT count(*), list(DISTINCT version) FROM read_parquet('{root}/predictions/deployment={name}/**/*.parquet', hive_partitioning = true)"
        ).fetchall()
        assert n == want_rows and [str(v) for v in versions] == [version]
    # CSV and Parquet from the API hold the same rows
    csv = get(srv, f"/api/v1/deployments/{name}/predictions", format="csv", limit=100000)
    assert csv.headers["content-type"].startswith("text/csv")
    assert len(pd.read_csv(io.StringIO(csv.text))) == want_rows
    par = get(srv, f"/api/v1/deployments/{name}/predictions", format="parquet", limit=5, order="desc")
    ptab = pq.read_table(io.BytesIO(par.content))
    assert ptab.num_rows == 5 and par.headers["x-slipway-truncated"] == "true"
    times = ptab.column("time").to_pylist()
    assert times == sorted(times, reverse=True)


def test_shadow_copies_are_logged_as_the_shadow(srv):
    server, token = srv
    name = uniq("shadowlog")
    v1 = deploy(srv, name, rm.stable())
    with sm.tracking_at(server.url, token):
        import mlflow

        v2 = sm.log_and_register(rm.retrained(3), name, mlflow.create_experiment(uniq("exp")))
    sm.put_deployment(server.url, token, name, {"model": name, "alias": "champion", "shadow": {"version": v2, "fraction": 1.0}})
    x = rm.traffic(30, seed=5)
    for i in range(30):
        infer(srv, name, x[i : i + 1])
    sm.wait_until(lambda: sm.get_deployment(server.url, token, name)["shadow"]["mirrored"] >= 30, timeout=20, what="shadow copies")
    deadline = time.monotonic() + 10
    while True:
        body = get(srv, f"/api/v1/deployments/{name}/predictions", limit=1000).json()
        roles = [(p["version"], p["role"]) for p in body["predictions"]]
        if roles.count((v2, "shadow")) >= 30 or time.monotonic() > deadline:
            break
        time.sleep(FLUSH_S)
    assert roles.count((v1, "stable")) == 30
    assert roles.count((v2, "shadow")) == 30
    # the copy carries the request's id
    ids = {p["request_id"] for p in body["predictions"] if p["role"] == "shadow"}
    assert ids == {p["request_id"] for p in body["predictions"] if p["role"] == "stable"}


def test_kill9_loses_at_most_the_flush_window(tmp_path):
    token = new_admin_token()
    server = sm.start_server_with_demo(tmp_path / "data", admin_token=token, env=ENV)
    acked: list[tuple[float, str]] = []
    stop = threading.Event()

    def load():
        s = requests.Session()
        body = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
        while not stop.is_set():
            try:
                r = s.post(f"{server.url}/v2/models/iris/infer", json=body, headers=h(token), timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 200:
                acked.append((time.monotonic(), r.headers["x-request-id"]))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(4.0)
    killed_at = time.monotonic()
    server.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    fs, root = log_root(server)
    files = [f for f in fs.get_file_info(pafs.FileSelector(f"{root}/predictions", recursive=True)) if f.is_file]
    assert files, "no log file was written"
    ids = set()
    for f in files:
        assert f.path.endswith(".parquet"), f.path  # no temporary or half file is visible
        ids.update(pq.read_table(f.path, filesystem=fs).column("request_id").to_pylist())
    window = FLUSH_S + 1.5  # the flush interval, plus writing the file and the ack's own latency
    old = [rid for at, rid in acked if at < killed_at - window]
    lost_old = [rid for rid in old if rid not in ids]
    assert old and not lost_old, f"{len(lost_old)} of {len(old)} rows older than {window} s were lost"
    lost = [rid for _, rid in acked if rid not in ids]
    print(f"kill -9 after {len(acked)} acknowledged requests: {len(lost)} not in the log (all in the last {window} s)")


def test_sigterm_writes_every_buffered_row(tmp_path):
    """Rows neither old nor many enough to be flushed (an hour's age, ten million rows) are written
    on a graceful shutdown: SIGTERM, and every request answered is in the log's files."""
    token = new_admin_token()
    env = {
        **ENV,
        "SLIPWAY_PREDICTION_LOG_FLUSH_SECONDS": "3600",
        "SLIPWAY_PREDICTION_LOG_FLUSH_ROWS": "10000000",
        # the gauge refresh reads drift, which writes the buffer first: not during this test
        "SLIPWAY_MONITORING_INTERVAL_SECONDS": "86400",
    }
    server = sm.start_server_with_demo(tmp_path / "data", admin_token=token, env=env)
    try:
        sent = []
        with requests.Session() as s:
            for i in range(37):
                rows = draw(1 + i % 3, seed=100 + i)
                sent.append((infer((server, token), "iris", rows, session=s).headers["x-request-id"], len(rows)))
        fs, root = log_root(server)
        before = fs.get_file_info(pafs.FileSelector(f"{root}/predictions", recursive=True, allow_not_found=True))
        assert not [f for f in before if f.is_file], "the log was written before the shutdown"
    finally:
        code = server.stop(timeout=60)
    assert code == 0, server.output_tail()
    files = [f for f in fs.get_file_info(pafs.FileSelector(f"{root}/predictions", recursive=True)) if f.is_file]
    assert files and all(f.path.endswith(".parquet") for f in files), [f.path for f in files]
    t = pads.dataset([f.path for f in files], filesystem=fs, format="parquet").to_table()
    got = t.group_by("request_id").aggregate([("row", "count")]).to_pydict()
    assert dict(zip(got["request_id"], got["row_count"])) == dict(sent)
    assert "prediction log flushed" in server.output_tail(200)


# ------------------------------------------------------------------------------ drift


FEATURES = [f"float_input[{j}]" for j in range(4)]
MEANS = np.array([5.8, 3.0, 3.7, 1.2])
SDS = np.array([0.8, 0.4, 1.7, 0.7])


def draw(n: int, seed: int, shift=(0.0, 0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0, 1.0)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(MEANS + np.array(shift) * SDS, SDS * np.array(scale), size=(n, 4))
    return np.round(x, 3)


def evidently_scores(ref: pd.DataFrame, cur: pd.DataFrame, categorical: list[str]) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numerical = [c for c in ref.columns if c not in categorical]
    dd = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    res = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
    out = {"columns": {}}
    for m in res.dict()["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            out["share"] = float(m["value"]["share"])
        elif cfg["type"].endswith("ValueDrift"):
            out["columns"][cfg["column"]] = float(m["value"])
    return out


@pytest.mark.parametrize("n_ref", [600, 2000], ids=["p-value tests", "distances"])
def test_drift_equals_scipy_and_evidently(srv, n_ref):
    server, token = srv
    name = uniq("drift")
    built = rm.stable()
    deploy(srv, name, built)
    ref = draw(n_ref, seed=11)
    ref_label = built.predict(ref.astype(np.float32))["label"]
    ref_df = pd.DataFrame(ref, columns=FEATURES)
    ref_df["label"] = ref_label
    r = requests.put(
        f"{server.url}/api/v1/deployments/{name}/reference",
        data=ref_df.to_csv(index=False),
        headers={**h(token), "Content-Type": "text/csv"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["reference"]["rows"] == n_ref
    # mean shift on 0, variance shift on 1, nothing on 2 and 3
    cur = draw(400, seed=12, shift=(1.0, 0.0, 0.0, 0.0), scale=(1.0, 2.0, 1.0, 1.0))
    s = requests.Session()
    for i in range(0, len(cur), 20):
        infer(srv, name, cur[i : i + 20], session=s)
    d = get(srv, f"/api/v1/deployments/{name}/drift")
    assert d.status_code == 200, d.text
    rep = d.json()
    assert rep["status"] == "ok", rep
    assert rep["reference"]["source"] == "uploaded" and rep["current_count"] == 400
    by = {f["name"]: f for f in rep["features"]}
    assert set(by) >= set(FEATURES) | {"label"}, rep
    # what the server saw: the float32 values it logged
    cur32 = cur.astype(np.float32).astype(np.float64)
    cur_label = built.predict(cur.astype(np.float32))["label"]
    small = n_ref <= 1000
    for j, col in enumerate(FEATURES):
        f = by[col]
        if small:
            ks = stats.ks_2samp(ref[:, j], cur32[:, j])
            assert f["method"] == "ks"
            assert abs(f["statistic"] - ks.statistic) <= 1e-12, col
            assert abs(f["p_value"] - ks.pvalue) <= 1e-9, (col, f, ks)
        else:
            w = stats.wasserstein_distance(ref[:, j], cur32[:, j]) / max(np.std(ref[:, j]), 0.001)
            assert f["method"] == "wasserstein"
            assert abs(f["statistic"] - w) <= 1e-9, (col, f, w)
        assert f["reference_count"] == n_ref and f["current_count"] == 400
    assert by[FEATURES[0]]["drifted"] and by[FEATURES[1]]["drifted"]
    assert not by[FEATURES[2]]["drifted"] and not by[FEATURES[3]]["drifted"]
    # the label: categorical, chi-squared against the reference's shares (or Jensen-Shannon)
    keys = sorted(set(ref_label) | set(cur_label))
    rc = np.array([(ref_label == k).sum() for k in keys], dtype=float)
    cc = np.array([(cur_label == k).sum() for k in keys], dtype=float)
    lab = by["label"]
    if small:
        chi = stats.chisquare(cc, rc * cc.sum() / rc.sum())
        assert lab["method"] == "chisquare" and abs(lab["p_value"] - chi.pvalue) <= 1e-9, (lab, chi)
    else:
        from scipy.spatial import distance

        js = distance.jensenshannon(rc / rc.sum(), cc / cc.sum())
        assert lab["method"] == "jensenshannon" and abs(lab["statistic"] - js) <= 1e-9, (lab, js)
    # Evidently's own report on the same data
    cur_df = pd.DataFrame(cur32, columns=FEATURES)
    cur_df["label"] = cur_label
    ev = evidently_scores(ref_df, cur_df, ["label"])
    for col, score in ev["columns"].items():
        ours = by[col]["p_value"] if by[col]["p_value"] is not None else by[col]["statistic"]
        assert abs(ours - score) <= 1e-9, (col, ours, score)
    tested = [f for f in rep["features"] if f["name"] in ev["columns"]]
    assert abs(sum(f["drifted"] for f in tested) / len(tested) - ev["share"]) <= 1e-12
    # PSI beside every method
    assert all(np.isfinite(f["psi"]) for f in rep["features"])


def test_first_logged_rows_become_the_reference_and_gauges_follow(srv):
    server, token = srv
    name = uniq("logref")
    built = rm.stable()
    version = deploy(srv, name, built, monitoring={"drift": {"reference_rows": 200, "min_rows": 50}})
    early = get(srv, f"/api/v1/deployments/{name}/drift").json()
    assert early["status"] == "no_reference" and "0 of the first 200" in early["reason"]
    x = draw(300, seed=21)
    s = requests.Session()
    for i in range(0, 300, 10):
        infer(srv, name, x[i : i + 10], session=s)
    rep = get(srv, f"/api/v1/deployments/{name}/drift").json()
    assert rep["status"] == "ok", rep
    assert rep["reference"]["source"] == "logged" and rep["reference"]["rows"] == 200
    assert rep["current_count"] == 300
    # the reference's rows are the first 200 logged: KS of column 0 against them
    x32 = x.astype(np.float32).astype(np.float64)
    ks = stats.ks_2samp(x32[:200, 0], x32[:, 0])
    f0 = next(f for f in rep["features"] if f["name"] == FEATURES[0])
    assert abs(f0["p_value"] - ks.pvalue) <= 1e-9
    info = get(srv, f"/api/v1/deployments/{name}/reference").json()
    assert info["status"] == "ok" and info["reference"]["source"] == "logged"
    # the lease holder refreshes the gauges every 5 s
    def gauge():
        text = requests.get(f"{server.url}/metrics", headers=h(token), timeout=10).text
        return [ln for ln in text.splitlines() if ln.startswith("slipway_drift_score{") and f'deployment="{name}"' in ln and f'version="{version}"' in ln]

    lines = sm.wait_until(gauge, timeout=30, interval=1, what="drift gauges")
    assert any('feature="float_input[0]"' in ln and 'method="ks"' in ln for ln in lines), lines


def test_a_log_fraction_logs_that_share_of_requests(srv):
    """log_fraction 0.5 over 2,000 requests: the logged count is within the binomial distribution's
    central 1 - 1e-6 interval, and every logged id is one sent."""
    name = uniq("half")
    deploy(srv, name, rm.stable(), monitoring={"log_fraction": 0.5})
    n = 2000
    x = draw(n, seed=51)
    sent: set[str] = set()
    lock = threading.Lock()

    def send(part):
        with requests.Session() as s:
            for i in part:
                rid = infer(srv, name, x[i : i + 1], session=s).headers["x-request-id"]
                with lock:
                    sent.add(rid)

    threads = [threading.Thread(target=send, args=(range(k, n, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sent) == n
    body = get(srv, f"/api/v1/deployments/{name}/predictions", limit=100000).json()
    logged = {p["request_id"] for p in body["predictions"]}
    assert body["count"] == len(logged) and logged <= sent
    low, high = stats.binom.interval(1 - 1e-6, n, 0.5)
    assert low <= len(logged) <= high, (len(logged), low, high)


def test_a_window_with_too_few_rows_is_insufficient_data(srv):
    """Fewer rows in the window than min_rows is a state, not bad input: 200 with status
    insufficient_data, the count and the minimum, no verdict; at min_rows drift is judged."""
    server, token = srv
    name = uniq("few")
    deploy(srv, name, rm.stable(), monitoring={"drift": {"min_rows": 50}})
    ref = pd.DataFrame(draw(300, seed=61), columns=FEATURES)
    r = requests.put(
        f"{server.url}/api/v1/deployments/{name}/reference",
        data=ref.to_csv(index=False),
        headers={**h(token), "Content-Type": "text/csv"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    x = draw(50, seed=62)
    infer(srv, name, x[:49])
    d = get(srv, f"/api/v1/deployments/{name}/drift")
    assert d.status_code == 200, d.text
    rep = d.json()
    assert rep["status"] == "insufficient_data" and rep["current_count"] == 49 and rep["min_rows"] == 50, rep
    assert "49 rows" in rep["reason"] and "min_rows (50)" in rep["reason"]
    assert rep["features"] == [] and rep["dataset_drift"] is False and rep["reference"]["rows"] == 300
    infer(srv, name, x[49:])
    rep = get(srv, f"/api/v1/deployments/{name}/drift").json()
    assert rep["status"] == "ok" and rep["current_count"] == 50 and len(rep["features"]) == 4, rep


# ------------------------------------------------------------------------------ feedback


def test_feedback_accuracy_equals_sklearn(srv):
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    server, token = srv
    name = uniq("fb")
    built = rm.stable()
    deploy(srv, name, built)
    x, y = sm.iris_data()
    rng = np.random.default_rng(4)
    idx = rng.permutation(len(x))[:120]
    ids, preds = [], []
    s = requests.Session()
    for k, i in enumerate(idx):
        own = f"fb-{uuid.uuid4().hex}" if k % 3 == 0 else None
        r = infer(srv, name, x[i : i + 1], headers={"x-request-id": own} if own else None, session=s)
        ids.append(r.headers["x-request-id"])
        preds.append(int(r.json()["outputs"][[o["name"] for o in r.json()["outputs"]].index("label")]["data"][0]))
    # one batch request: feedback names its rows
    rb = infer(srv, name, x[:4], session=s)
    batch_id = rb.headers["x-request-id"]
    batch_pred = built.predict(x[:4])["label"]
    # truth for 100 of them (some deliberately wrong labels, to have errors), 3 unknown ids
    truth = [int(y[i]) if k % 7 else int((y[i] + 1) % 3) for k, i in enumerate(idx)]
    items = [{"request_id": ids[k], "label": truth[k]} for k in range(100)]
    items += [{"request_id": batch_id, "row": j, "label": int(y[j])} for j in range(4)]
    items += [{"request_id": f"nope-{j}", "label": 0} for j in range(3)]
    r = requests.post(f"{server.url}/api/v1/deployments/{name}/feedback", json=items, headers=h(token), timeout=60)
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec == {"received": 107, "matched": 104, "unknown": 3, "unknown_request_ids": ["nope-0", "nope-1", "nope-2"]}
    p = get(srv, f"/api/v1/deployments/{name}/performance")
    assert p.status_code == 200, p.text
    rep = p.json()
    (v,) = rep["versions"]
    y_true = truth[:100] + [int(t) for t in y[:4]]
    y_pred = preds[:100] + [int(t) for t in batch_pred]
    assert v["task"] == "classification" and v["prediction_output"] == "label" and v["joined"] == 104
    assert v["accuracy"] == accuracy_score(y_true, y_pred)
    labels = sorted(set(y_true) | set(y_pred))
    prec, rec_, f1, sup = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for c, cls in zip(labels, v["classes"]):
        assert cls["label"] == str(c)
        assert abs(cls["precision"] - prec[labels.index(c)]) < 1e-12
        assert abs(cls["recall"] - rec_[labels.index(c)]) < 1e-12
        assert abs(cls["f1"] - f1[labels.index(c)]) < 1e-12
        assert cls["support"] == sup[labels.index(c)]
    assert rep["feedback_rows"] == 107 and rep["unmatched_feedback"] == 3
    # later feedback for a row replaces the earlier one
    fix = [{"request_id": ids[k], "label": int(y[idx[k]])} for k in range(100)]
    requests.post(f"{server.url}/api/v1/deployments/{name}/feedback", json={"feedback": fix}, headers=h(token), timeout=60)
    y_fixed = [int(y[i]) for i in idx[:100]] + [int(t) for t in y[:4]]
    v2 = get(srv, f"/api/v1/deployments/{name}/performance").json()["versions"][0]
    assert v2["accuracy"] == accuracy_score(y_fixed, y_pred)
    # the gauges (refreshed every 5 s by the lease holder): sklearn's precision and recall per class
    labels = sorted(set(y_fixed) | set(y_pred))
    prec, rec_, _, _ = precision_recall_fscore_support(y_fixed, y_pred, labels=labels, zero_division=0)
    want = {("precision", str(c)): prec[k] for k, c in enumerate(labels)}
    want |= {("recall", str(c)): rec_[k] for k, c in enumerate(labels)}
    want[("accuracy", None)] = accuracy_score(y_fixed, y_pred)
    seen: dict = {}

    def gauges_equal_sklearn():
        text = requests.get(f"{server.url}/metrics", headers=h(token), timeout=10).text
        seen.clear()
        for ln in text.splitlines():
            m = re.match(r"slipway_model_(precision|recall|accuracy)\{([^}]*)\} (\S+)$", ln)
            if m and f'deployment="{name}"' in m.group(2):
                cls = re.search(r'class="([^"]*)"', m.group(2))
                seen[(m.group(1), cls.group(1) if cls else None)] = float(m.group(3))
        return set(seen) == set(want) and all(abs(seen[k] - want[k]) < 1e-12 for k in want)

    try:
        sm.wait_until(gauges_equal_sklearn, timeout=30, interval=1, what="precision and recall gauges")
    except AssertionError as e:
        raise AssertionError(f"{e}: gauges {seen}, sklearn {want}") from None


def test_feedback_error_of_a_regressor_equals_sklearn(srv):
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    server, token = srv
    name = uniq("fbreg")
    built = sm.rf_regressor(2)
    deploy(srv, name, built)
    ids, preds, truth = [], [], []
    for i in range(40):
        r = infer(srv, name, built.x[i : i + 1], input_name="input")
        ids.append(r.headers["x-request-id"])
        out = r.json()["outputs"][0]
        preds.append(float(np.float32(out["data"][0])))
        truth.append(float(built.x[i, 0] * 10))
    r = requests.post(
        f"{server.url}/api/v1/deployments/{name}/feedback",
        json=[{"request_id": a, "value": t} for a, t in zip(ids, truth)],
        headers=h(token),
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["matched"] == 40, r.text
    (v,) = get(srv, f"/api/v1/deployments/{name}/performance").json()["versions"]
    assert v["task"] == "regression" and v["joined"] == 40
    assert abs(v["mae"] - mean_absolute_error(truth, preds)) < 1e-9
    assert abs(v["rmse"] - np.sqrt(mean_squared_error(truth, preds))) < 1e-9


# ------------------------------------------------------------------------------ bad input


def test_bad_input_is_a_4xx_naming_it(srv):
    server, token = srv
    name = uniq("bad")
    deploy(srv, name, rm.stable())
    base = f"{server.url}/api/v1/deployments"
    hh = h(token)

    def check(r, status, *words):
        assert r.status_code == status, (r.status_code, r.text)
        msg = r.json().get("message", "")
        for w in words:
            assert w in msg, (w, msg)

    check(requests.get(f"{base}/nope/drift", headers=hh, timeout=30), 404, "nope")
    check(requests.get(f"{base}/nope/predictions", headers=hh, timeout=30), 404, "nope")
    check(requests.post(f"{base}/nope/feedback", json=[{"request_id": "a", "label": 1}], headers=hh, timeout=30), 404, "nope")
    check(requests.get(f"{base}/{name}/drift", params={"window": "10s"}, headers=hh, timeout=30), 400, "window", "60")
    check(requests.get(f"{base}/{name}/drift", params={"window": "soon"}, headers=hh, timeout=30), 400, "window")
    check(requests.get(f"{base}/{name}/drift", params={"windw": "1h"}, headers=hh, timeout=30), 400, "windw")
    check(requests.get(f"{base}/{name}/drift", params={"version": "x"}, headers=hh, timeout=30), 400, "version")
    check(requests.get(f"{base}/{name}/predictions", params={"start": "yesterday"}, headers=hh, timeout=30), 400, "start")
    check(requests.get(f"{base}/{name}/predictions", params={"limit": "0"}, headers=hh, timeout=30), 400, "limit")
    check(requests.get(f"{base}/{name}/predictions", params={"format": "xml"}, headers=hh, timeout=30), 400, "format")
    csv_h = {**hh, "Content-Type": "text/csv"}
    check(requests.put(f"{base}/{name}/reference", data="float_input[0],petal\n1,2\n", headers=csv_h, timeout=30), 400, "petal")
    check(requests.put(f"{base}/{name}/reference", data="label\n1\n", headers=csv_h, timeout=30), 400, "input columns")
    check(requests.put(f"{base}/{name}/reference", data="float_input[0]\nred\n", headers=csv_h, timeout=30), 400, "float_input[0]", "text")
    check(requests.put(f"{base}/{name}/reference", data="float_input[0]\n", headers=csv_h, timeout=30), 400, "no data rows")
    check(requests.put(f"{base}/{name}/reference", data=b"PAR1garbage", headers={**hh, "Content-Type": "application/vnd.apache.parquet"}, timeout=30), 400, "Parquet")
    check(requests.put(f"{base}/{name}/reference", data="{}", headers={**hh, "Content-Type": "application/json"}, timeout=30), 400, "Content-Type")
    check(requests.post(f"{base}/{name}/feedback", json=[{"request_id": 3, "label": 1}], headers=hh, timeout=30), 400, "feedback[0].request_id")
    check(requests.post(f"{base}/{name}/feedback", json=[{"request_id": "a", "value": "high"}], headers=hh, timeout=30), 400, "feedback[0].value")
    check(requests.post(f"{base}/{name}/feedback", json=[{"request_id": "a"}], headers=hh, timeout=30), 400, "label")
    check(requests.put(f"{base}/{name}", json={"model": name, "alias": "champion", "monitoring": {"log_fraction": 2}}, headers=hh, timeout=30), 400, "monitoring.log_fraction")
    check(
        requests.put(f"{base}/{name}", json={"model": name, "alias": "champion", "monitoring": {"drift": {"features": {"float_input[0]": {"method": "t-test"}}}}}, headers=hh, timeout=30),
        400,
        "monitoring.drift.features.float_input[0].method",
    )
    # the proxy cannot write into the log
    r = requests.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/predictions/deployment={name}/x.parquet", data=b"x", headers=hh, timeout=30)
    assert r.status_code == 403, r.text


def test_a_corrupt_log_file_is_skipped_and_reported(srv):
    server, token = srv
    name = uniq("corrupt")
    version = deploy(srv, name, rm.stable(), monitoring={"drift": {"reference_rows": 20, "min_rows": 20}})
    x = draw(60, seed=31)
    for i in range(0, 60, 10):
        infer(srv, name, x[i : i + 10])
    assert get(srv, f"/api/v1/deployments/{name}/predictions").json()["count"] == 60
    fs, root = log_root(server)
    now = time.gmtime()
    bad = f"{root}/predictions/deployment={name}/version={version}/date={time.strftime('%Y-%m-%d', now)}/hour={time.strftime('%H', now)}/0-9999999999999-corrupt.parquet"
    with fs.open_output_stream(bad) as out:
        out.write(b"PAR1 this is not parquet")
    body = get(srv, f"/api/v1/deployments/{name}/predictions").json()
    assert body["count"] == 60
    assert [s["path"].rsplit("/", 1)[1] for s in body["skipped_files"]] == ["0-9999999999999-corrupt.parquet"]
    assert "Parquet" in body["skipped_files"][0]["error"]
    d = get(srv, f"/api/v1/deployments/{name}/drift")
    assert d.status_code == 200 and d.json()["status"] == "ok", d.text
    assert len(d.json()["skipped_files"]) == 1
    p = get(srv, f"/api/v1/deployments/{name}/performance")
    assert p.status_code == 200 and len(p.json()["skipped_files"]) == 1


def test_a_reference_logged_next_to_the_model_is_used(srv, tmp_path):
    """The recipe docs/monitoring.md gives: save the model, put slipway.reference.parquet in its
    directory, log the directory, register it."""
    import mlflow
    import mlflow.onnx
    from mlflow.tracking import MlflowClient

    server, token = srv
    name = uniq("modelref")
    built = rm.stable()
    ref = draw(300, seed=41)
    with sm.tracking_at(server.url, token):
        mlflow.set_experiment(uniq("exp"))
        with mlflow.start_run() as run:
            model_dir = tmp_path / "model"
            mlflow.onnx.save_model(built.onnx_model, model_dir, signature=built.signature())
            pd.DataFrame(ref, columns=FEATURES).to_parquet(model_dir / "slipway.reference.parquet")
            mlflow.log_artifacts(str(model_dir), artifact_path="model")
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version
        MlflowClient().set_registered_model_alias(name, "champion", version)
    sm.put_deployment(server.url, token, name, {"model": name, "alias": "champion"})
    cur = draw(100, seed=42)
    for i in range(0, 100, 10):
        infer(srv, name, cur[i : i + 10])
    rep = get(srv, f"/api/v1/deployments/{name}/drift").json()
    assert rep["status"] == "ok", rep
    assert rep["reference"]["source"] == "model_version" and rep["reference"]["rows"] == 300
    assert rep["reference"]["path"].endswith("/model/slipway.reference.parquet")
    f0 = next(f for f in rep["features"] if f["name"] == FEATURES[0])
    ks = stats.ks_2samp(ref[:, 0], cur.astype(np.float32).astype(np.float64)[:, 0])
    assert abs(f0["p_value"] - ks.pvalue) <= 1e-9
