"""The Helm chart's split topology as processes: 2 registry + 3 serving replicas of `slipway up`
over one PostgreSQL database and one S3 prefix (harness.Cluster), with a client spreading V2
requests over the serving replicas as a Service would.

  * registry writes through either registry replica are read through the other, and a token
    created on one works everywhere (and stops working everywhere once revoked);
  * an alias move reaches every serving replica within twice the poll delay (the poll, then the
    switch to a version whose files are cached), with no failed request while it happens;
  * a rolling restart of every serving and every registry replica under continuous load fails
    zero requests: each replica gets SIGTERM while requests keep flowing to it (no preStop grace),
    finishes what it accepted and refuses new connections, which the client retries on another
    replica as a Service would; any request accepted and then failed counts;
  * after a restart a serving replica is not ready before its deployments answer;
  * kill -9 of any one process leaves the rest serving, and the killed one starts cleanly.

Figures (requests, failures, latency, time to ready, switch time) are printed as `FIGURES ...`
lines; run with -rA (as scripts/test.sh does) or -s to see them. Tests run in file order on one
cluster; each leaves it whole (every member up and in rotation) for the next.
"""

from __future__ import annotations

import shutil
import time

import pytest

from harness import IRIS_BODY, Cluster, LoadClient, api, free_port, http_get, uniq, wait_until

POLL_MS = 500
# An alias move is served by every replica within the poll delay plus the switch itself (the new
# version's files are in the model cache, so: a session built and warmed): twice the poll delay.
SWITCH_DEADLINE_S = 2 * POLL_MS / 1000
DRAIN_S = 10
MLFLOW = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def cluster(make_cluster) -> Cluster:
    return make_cluster(
        "topology",
        roles=["registry", "registry", "serving", "serving", "serving"],
        demo=True,
        deployment_poll_ms=POLL_MS,
        drain_seconds=DRAIN_S,
    )


def figures(name: str, **values) -> None:
    print("FIGURES " + name + ": " + " ".join(f"{k}={v}" for k, v in values.items()), flush=True)


def ok(r, what: str):
    assert r.status_code == 200, f"{what}: HTTP {r.status_code} {r.text[:400]}"
    return r.json()


def infer(member, token: str, *, timeout: float = 10):
    return api(member, "POST", "/v2/models/iris/infer", token, json_body=IRIS_BODY, timeout=timeout)


def iris_version(cluster: Cluster, member) -> str | None:
    r = infer(member, cluster.admin_token)
    return r.json().get("model_version") if r.status_code == 200 else None


# --------------------------------------------------------------------------------------------


def test_start_up_figures(cluster):
    regs, servs = cluster.registries(), cluster.servings()
    assert len(regs) == 2 and len(servs) == 3, cluster.describe()
    for m in cluster.members:
        assert m.ready_at is not None
        r = api(m, "GET", "/health/ready", cluster.admin_token)
        assert r.status_code == 200, f"{m.name}: {r.status_code} {r.text}"
    for m in servs:
        assert iris_version(cluster, m) == "1", f"{m.name} does not serve the demo model"
    for m in regs:
        # The registry role answers no inference (the chart routes it to the serving Service).
        assert infer(m, cluster.admin_token).status_code == 404, m.name
    figures("start-up", **{m.name: f"{m.ready_at - m.started_at:.2f}s" for m in cluster.members})


def test_writes_through_either_registry_are_read_through_the_other(cluster):
    a, b = cluster.registries()
    tok = cluster.admin_token
    name = uniq("exp")
    exp_id = ok(api(a, "POST", f"{MLFLOW}/experiments/create", tok, json_body={"name": name}), "create experiment")[
        "experiment_id"]
    got = ok(api(b, "GET", f"{MLFLOW}/experiments/get-by-name", tok, params={"experiment_name": name}), "read back")
    assert got["experiment"]["experiment_id"] == exp_id

    model = uniq("model")
    ok(api(b, "POST", f"{MLFLOW}/registered-models/create", tok, json_body={"name": model}), "create model")
    ok(api(a, "POST", f"{MLFLOW}/registered-models/set-tag", tok,
           json_body={"name": model, "key": "owner", "value": "team-b"}), "tag via the other replica")
    rm = ok(api(b, "GET", f"{MLFLOW}/registered-models/get", tok, params={"name": model}), "read model")
    tags = {t["key"]: t["value"] for t in rm["registered_model"].get("tags", [])}
    assert tags.get("owner") == "team-b", rm

    # A deployment created through one registry replica is served by every serving replica.
    t_put = time.monotonic()
    ok(api(b, "PUT", "/api/v1/deployments/iris-pinned", tok, json_body={"model": "iris", "version": "1"}),
       "PUT deployment")
    for m in cluster.servings():
        wait_until(lambda: api(m, "POST", "/v2/models/iris-pinned/infer", tok, json_body=IRIS_BODY).status_code == 200,
                   timeout=SWITCH_DEADLINE_S + 10, interval=0.05, what=f"{m.name} to serve iris-pinned")
    t_served = time.monotonic() - t_put

    # A predict token made on one registry works on every serving replica and the other registry ...
    r = ok(api(a, "POST", "/api/v1/tokens", tok, json_body={"name": uniq("ci"), "scopes": ["predict"]}), "token")
    secret, token_id = r["token"], r["id"]
    for m in cluster.servings():
        assert infer(m, secret).status_code == 200, m.name
    assert api(b, "GET", "/api/v1/tokens", secret).status_code == 403, "a predict token must not list tokens"
    # ... and stops working everywhere after a revocation on the other registry.
    t_revoke = time.monotonic()
    assert api(b, "DELETE", f"/api/v1/tokens/{token_id}", tok).status_code in (200, 204)
    for m in cluster.servings():
        wait_until(lambda: infer(m, secret).status_code == 401, timeout=15, interval=0.2,
                   what=f"the revoked token to be refused on {m.name}")
    figures("registry", new_deployment_served_everywhere_after=f"{t_served:.2f}s",
            revoked_token_refused_everywhere_after=f"{time.monotonic() - t_revoke:.2f}s", token_cache_seconds=5)


def test_every_registry_replica_lists_every_deployment(cluster):
    """A deployment PUT through one registry replica is listed by every registry replica within a
    few polls (registry replicas follow the deployments in the store since the slipway-serving
    crate; this test was an xfail(strict) against the older in-memory behaviour and started to
    XPASS whenever the follower polled between the PUT and the GET)."""
    tok = cluster.admin_token
    a, b = cluster.registries()
    ok(api(a, "PUT", "/api/v1/deployments/iris-listed", tok, json_body={"model": "iris", "alias": "champion"}),
       "PUT through registry-0")
    for m in (a, b):
        def listed(m=m):
            names = [d["name"] for d in ok(api(m, "GET", "/api/v1/deployments", tok), "list")["deployments"]]
            return {"iris", "iris-listed"} <= set(names)

        wait_until(listed, timeout=15, interval=0.1, what=f"{m.name} to list iris and iris-listed")
        assert api(m, "GET", "/api/v1/deployments/iris-listed", tok).status_code == 200, m.name


def test_alias_move_reaches_every_serving_replica(cluster):
    tok = cluster.admin_token
    a, b = cluster.registries()
    v1 = ok(api(a, "GET", f"{MLFLOW}/model-versions/get", tok, params={"name": "iris", "version": "1"}),
            "iris v1")["model_version"]
    body = {"name": "iris", "source": v1["source"]}
    if v1.get("run_id"):
        body["run_id"] = v1["run_id"]
    new = ok(api(b, "POST", f"{MLFLOW}/model-versions/create", tok, json_body=body), "new version")[
        "model_version"]["version"]
    current = iris_version(cluster, cluster.servings()[0])
    assert new != current

    servs = cluster.servings()
    with LoadClient(tok, servs, threads=3, max_seconds=120) as load:
        load.wait_for(150)
        t_alias = time.monotonic()
        ok(api(b, "POST", f"{MLFLOW}/registered-models/alias", tok,
               json_body={"name": "iris", "alias": "champion", "version": new}), "move alias")
        t_set = time.monotonic()

        def first_new(m):
            rs = [r for r in list(load.results) if r.member == m.name and r.version == new]
            return min(r.received for r in rs) if rs else None

        switch = {}
        for m in servs:
            t = wait_until(lambda: first_new(m), timeout=SWITCH_DEADLINE_S + 10, interval=0.02,
                           what=f"{m.name} to serve version {new}")
            switch[m.name] = t - t_set
        load.wait_for(load.count() + 150)
    failed = load.failures()
    assert not failed, f"{len(failed)} failed during the alias move, e.g. {failed[0]}"
    for m in servs:
        # Requests that already hold the old version finish on it; one sent after this replica's
        # first answer from the new version must get the new version.
        t_first = first_new(m)
        late = [r for r in load.results if r.member == m.name and r.sent > t_first and r.version != new]
        assert not late, f"{m.name}: {len(late)} requests sent after its switch got version {late[0].version}"
    assert all(r.received >= t_alias for r in load.results if r.version == new)
    figures("alias-move", poll_ms=POLL_MS, deadline=f"{SWITCH_DEADLINE_S:.2f}s",
            **{f"switch_{k}": f"{v:.2f}s" for k, v in switch.items()},
            load=load.summary())
    slowest = max(switch.values())
    assert slowest <= SWITCH_DEADLINE_S, f"slowest replica switched after {slowest:.2f}s: {switch}"


def _restart_in_rotation(m, load: LoadClient) -> dict:
    """SIGTERM ``m`` while ``load`` keeps sending to it, wait for its exit, start it again, wait until
    it is ready and back in rotation. Figures of the restart."""
    t_term = time.monotonic()
    code = m.stop()
    t_exit = time.monotonic()
    load.remove(m.name)  # the process is gone: so is its endpoint (and its port)
    m.start()
    ready = m.wait_ready()
    load.add(m)
    since = time.monotonic()
    wait_until(lambda: sum(1 for r in list(load.results) if r.member == m.name and r.sent >= since) >= 20,
               timeout=30, what=f"{m.name} back in rotation")
    mine = [r for r in list(load.results) if r.member == m.name and r.sent < t_exit]
    return {
        "exit_code": code,
        "drain_s": round(t_exit - t_term, 2),
        "time_to_ready_s": round(ready, 2),
        # accepted before SIGTERM and answered after it: the drain finished them
        "in_flight_at_sigterm": sum(1 for r in mine if r.sent < t_term < r.received),
        # sent on a kept-alive connection after SIGTERM and still answered
        "served_after_sigterm": sum(1 for r in mine if r.sent >= t_term and r.ok),
        "refused_then_retried": sum(1 for r in list(load.results) if m.name in r.refused and r.sent >= t_term - 1),
    }


def test_rolling_restart_under_load_fails_no_request(cluster):
    tok = cluster.admin_token
    servs, regs = cluster.servings(), cluster.registries()
    figures_by_member: dict[str, dict] = {}
    serving = LoadClient(tok, servs, threads=6, max_seconds=300, retry_refused=True)
    registry = LoadClient(tok, regs, threads=3, max_seconds=300, retry_refused=True, method="GET",
                          path=f"{MLFLOW}/registered-models/get?name=iris")
    with serving, registry:
        serving.wait_for(200)
        registry.wait_for(100)
        # One replica at a time, as `kubectl rollout restart` with maxUnavailable 0 would; requests
        # keep flowing to the one that stops.
        for m in servs:
            figures_by_member[m.name] = _restart_in_rotation(m, serving)
        for m in regs:
            figures_by_member[m.name] = _restart_in_rotation(m, registry)
        serving.wait_for(serving.count() + 100)
        registry.wait_for(registry.count() + 50)
    failed, reg_failed = serving.failures(), registry.failures()
    for name, f in figures_by_member.items():
        figures(f"rolling-restart {name}", **f)
    figures("rolling-restart", serving=serving.summary(), registry=registry.summary(),
            in_flight_at_sigterm=sum(f["in_flight_at_sigterm"] for f in figures_by_member.values()))
    assert not failed, f"{len(failed)} of {len(serving.results)} inference requests failed, e.g. {failed[:3]}"
    assert not reg_failed, f"{len(reg_failed)} of {len(registry.results)} registry reads failed, e.g. {reg_failed[:3]}"
    assert all(f["exit_code"] == 0 for f in figures_by_member.values()), figures_by_member
    # The test exercised what it is about: requests were in flight at a SIGTERM and were finished,
    # and connections were refused by a stopping replica and retried elsewhere.
    assert sum(f["in_flight_at_sigterm"] for f in figures_by_member.values()) > 0, figures_by_member
    assert sum(len(r.refused) for r in serving.results + registry.results) > 0, figures_by_member


def test_restarted_serving_replica_is_not_ready_before_its_deployments(cluster):
    tok = cluster.admin_token
    m = cluster.servings()[-1]
    assert m.stop() == 0
    # An empty model cache (a new pod's emptyDir): the model comes from S3 again, digests verified.
    shutil.rmtree(m.data_dir / "model-cache", ignore_errors=True)
    # A fixed port this time, so readiness can be probed from the first instant (a kubelet knows
    # the pod's address before the process prints anything).
    port = free_port()
    m.start(port=port)
    url = f"http://127.0.0.1:{port}"
    observations = []  # (t since start, ready status, infer status)
    deadline = time.monotonic() + 60
    ready_seen = None
    while time.monotonic() < deadline:
        t = time.monotonic() - m.started_at
        try:
            ready, _ = http_get(url + "/health/ready", timeout=0.5)
        except OSError as e:
            ready = type(e).__name__
        try:
            inf = infer(url, tok, timeout=2).status_code
        except Exception as e:  # noqa: BLE001 - refused/timed out while starting
            inf = type(e).__name__
        observations.append((round(t, 3), ready, inf))
        if ready == 200:
            assert inf == 200, f"/health/ready answered 200 but inference answered {inf}: {observations[-5:]}"
            ready_seen = t
            break
        time.sleep(0.01)
    assert ready_seen is not None, f"never ready: {observations[-5:]}"
    m.ready_at = m.started_at + ready_seen
    for _ in range(20):  # and it stays consistent
        assert http_get(url + "/health/ready", timeout=5)[0] == 200
        assert infer(url, tok).status_code == 200
    kinds = sorted({str(o[1]) for o in observations[:-1]})
    figures("readiness-after-restart", time_to_ready=f"{ready_seen:.2f}s", probes=len(observations),
            answers_before_ready=kinds)


def test_kill9_of_any_one_process_leaves_the_rest_serving(cluster):
    tok = cluster.admin_token
    lost: dict[str, int] = {}
    ready_after: dict[str, str] = {}
    with LoadClient(tok, cluster.servings(), threads=4, max_seconds=240) as load:
        load.wait_for(100)
        for victim in list(cluster.members):
            in_rotation = victim.name in load.rotation()
            t_kill = time.monotonic()
            victim.kill9()
            if in_rotation:
                load.remove(victim.name)  # the endpoint goes once its readiness probe fails
            t_removed = time.monotonic()
            since = time.monotonic()
            load.wait_for(100, since=since)
            # Whatever was in flight to the victim when it died is lost; nothing after it is.
            lost[victim.name] = len([r for r in load.results if r.member == victim.name and r.sent < t_removed
                                     and r.received >= t_kill and not r.ok])
            after = load.failures(since=t_removed)
            assert not after, f"after kill -9 of {victim.name}: {len(after)} failures, e.g. {after[:3]}"
            # The registry still takes writes and reads through a survivor.
            reg = cluster.registry()
            name = uniq("after-kill")
            ok(api(reg, "POST", f"{MLFLOW}/experiments/create", tok, json_body={"name": name}), "write after kill")
            for other in cluster.registries():
                ok(api(other, "GET", f"{MLFLOW}/experiments/get-by-name", tok, params={"experiment_name": name}),
                   f"read on {other.name}")
            for other in cluster.servings():
                assert http_get(other.url + "/health/ready")[0] == 200, other.name
            # kill -9 leaves a state that starts cleanly.
            victim.start()
            ready_after[victim.name] = f"{victim.wait_ready():.2f}s"
            if in_rotation:
                load.add(victim)
                s2 = time.monotonic()
                wait_until(lambda: sum(1 for r in list(load.results) if r.member == victim.name and r.sent >= s2) >= 20,
                           timeout=30, what=f"{victim.name} serving again")
        load.wait_for(load.count() + 100)
    figures("kill-9", load=load.summary(), in_flight_lost_at_kill=lost, time_to_ready_after_kill=ready_after)
    assert all(m.alive for m in cluster.members), cluster.describe()


def test_one_broken_deployment_leaves_the_replicas_ready(cluster):
    """A deployment whose alias moves to a version that cannot load stays on its old version
    (degraded) on every replica; no replica turns unready and every other model answers."""
    tok = cluster.admin_token
    reg = cluster.registry()
    name = uniq("brittle")
    iris = ok(api(reg, "GET", f"{MLFLOW}/model-versions/get", tok, params={"name": "iris", "version": "1"}), "iris v1")
    ok(api(reg, "POST", f"{MLFLOW}/registered-models/create", tok, json_body={"name": name}), "model")
    ok(api(reg, "POST", f"{MLFLOW}/model-versions/create", tok,
           json_body={"name": name, "source": iris["model_version"]["source"]}), "v1: the demo's files")
    # v2: an MLmodel with an onnx flavor next to a file that is not ONNX
    exp = ok(api(reg, "POST", f"{MLFLOW}/experiments/create", tok, json_body={"name": uniq("exp")}), "exp")
    run = ok(api(reg, "POST", f"{MLFLOW}/runs/create", tok, json_body={"experiment_id": exp["experiment_id"]}), "run")
    base = run["run"]["info"]["artifact_uri"]
    prefix = base.removeprefix("mlflow-artifacts:").lstrip("/")
    art = f"/api/2.0/mlflow-artifacts/artifacts/{prefix}/model"
    import requests

    h = {"Authorization": f"Bearer {tok}"}
    requests.put(reg.url + art + "/MLmodel", data="flavors:\n  onnx:\n    data: model.onnx\n", headers=h, timeout=30)
    requests.put(reg.url + art + "/model.onnx", data=b"not onnx", headers=h, timeout=30)
    ok(api(reg, "POST", f"{MLFLOW}/model-versions/create", tok,
           json_body={"name": name, "source": f"{base}/model", "run_id": run["run"]["info"]["run_id"]}), "v2: broken")
    ok(api(reg, "POST", f"{MLFLOW}/registered-models/alias", tok,
           json_body={"name": name, "alias": "champion", "version": "1"}), "alias v1")
    try:
        ok(api(reg, "PUT", f"/api/v1/deployments/{name}", tok, json_body={"model": name, "alias": "champion"}), "PUT")
        for m in cluster.servings():
            wait_until(lambda: api(m, "GET", f"/v2/models/{name}/ready", tok).status_code == 200, timeout=15,
                       interval=0.1, what=f"{name} v1 on {m.name}")
        ok(api(reg, "POST", f"{MLFLOW}/registered-models/alias", tok,
               json_body={"name": name, "alias": "champion", "version": "2"}), "alias -> broken v2")
        for m in cluster.servings():
            st = wait_until(
                lambda: (d := api(m, "GET", f"/api/v1/deployments/{name}", tok).json()["status"])["state"] == "degraded" and d,
                timeout=15, interval=0.1, what=f"{name} degraded on {m.name}")
            assert st["serving_version"] == "1" and st["error_permanent"], st
            assert infer(m, tok).status_code == 200, f"{m.name}: iris stopped answering"
            status, body = http_get(m.url + "/health/ready")
            assert status == 200, f"{m.name} turned unready because of {name}: {body[:200]!r}"
            assert api(m, "GET", f"/v2/models/{name}/ready", tok).status_code == 200, "v1 still serves"
    finally:
        api(reg, "DELETE", f"/api/v1/deployments/{name}", tok)
