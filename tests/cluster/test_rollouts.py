"""Rollouts across replicas (issue 8): a registry and three serving processes over one PostgreSQL
database and one S3 prefix. Every replica applies the same weights; the realised split over all
replicas passes the sample-ratio check at every step; a sticky key gets the same version on every
replica; kill -9 of the replica holding the controller lease lets another take over and finish the
rollout with exactly one promotion."""

from __future__ import annotations

import time

import pytest

from harness import LoadClient, api, uniq, wait_until

import rollout_models as rm  # noqa: E402  (tests/interop is on sys.path through harness)
import serving_models as sm  # noqa: E402

POLL_MS = 300


@pytest.fixture(scope="module")
def cluster(make_cluster):
    return make_cluster("rollouts", roles=["registry", "serving", "serving", "serving"], demo=False,
                        deployment_poll_ms=POLL_MS)


def row_body(seed: int = 0) -> dict:
    x = rm.traffic(1, seed=seed)
    return {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}


def register(cluster, name: str, *models) -> list[str]:
    reg = cluster.registry()
    with sm.tracking_at(reg.url, cluster.admin_token):
        import mlflow

        exp = mlflow.create_experiment(uniq("exp"))
        return [sm.log_and_register(m, name, exp) for m in models]


def ok(r, what):
    assert r.status_code == 200, f"{what}: {r.status_code} {r.text[:400]}"
    return r.json()


def test_sticky_keys_get_one_version_on_every_replica(cluster):
    tok = cluster.admin_token
    name = uniq("sticky")
    v1, v2 = register(cluster, name, rm.stable(), rm.retrained(2))
    ok(api(cluster.registry(), "PUT", f"/api/v1/deployments/{name}", tok, json_body={
        "model": name, "version": v1, "sticky_header": "x-user-id",
        "traffic": [{"version": v1, "weight": 50}, {"version": v2, "weight": 50}],
    }), "PUT split")
    for m in cluster.servings():
        wait_until(lambda: api(m, "GET", f"/v2/models/{name}/versions/{v2}/ready", tok).status_code == 200,
                   timeout=20, interval=0.1, what=f"both versions on {m.name}")
    import requests

    seen = {}
    for i in range(60):
        key = f"customer-{i}"
        versions = set()
        for m in cluster.servings():
            r = requests.post(f"{m.url}/v2/models/{name}/infer", json=row_body(i),
                              headers={"Authorization": f"Bearer {tok}", "x-user-id": key}, timeout=10)
            assert r.status_code == 200, r.text
            versions.add(r.headers["x-slipway-model-version"])
        assert len(versions) == 1, f"{key} got {versions} on different replicas"
        seen[key] = versions.pop()
    share = sum(v == v2 for v in seen.values()) / len(seen)
    assert 0.25 < share < 0.75, share
    print(f"FIGURES sticky: 60 keys x 3 replicas, each key one version everywhere; {share:.0%} of keys on v{v2}")


def served_in(load: LoadClient, offset: float, start_s: float, end_s: float) -> list:
    """The load's answered requests whose answer arrived within [start_s, end_s] (epoch seconds of
    the server's clock, the same host's; ``offset`` turns the load's monotonic times into epoch)."""
    return [r for r in list(load.results) if r.ok and start_s <= r.received + offset <= end_s]


def check_merged_figures(record: dict, load: LoadClient, offset: float, v2: str) -> str:
    """A judged step's request counts are the sum of every replica's, not one replica's: they are
    compared with what the load generator got from each replica during the step. A replica counts
    a step's requests from the poll at which it applies the step and publishes its figures every
    poll, so every request answered more than a few polls after the step started and before it was
    judged is in the merged count, and nothing answered outside the step is."""
    start, judged = record["started_at"] / 1000.0, record["judged_at"] / 1000.0
    margin = 3 * POLL_MS / 1000.0
    merged = record["stable_requests"] + record["candidate_requests"]
    step = served_in(load, offset, start, judged + 0.2)
    surely = served_in(load, offset, start + margin, judged - margin)
    per_member: dict[str, int] = {}
    for r in step:
        per_member[r.member] = per_member.get(r.member, 0) + 1
    biggest = max(per_member.values(), default=0)
    to_candidate = sum(1 for r in surely if r.version == v2)
    figures = (f"step {record['step']}: merged {merged} (stable {record['stable_requests']}, candidate "
               f"{record['candidate_requests']}); load {len(step)} in the step, {len(surely)} well inside it "
               f"({to_candidate} to the candidate), per replica {per_member}")
    assert len(per_member) >= 2, figures
    assert merged <= len(step), f"more requests than were answered in the step: {figures}"
    assert merged >= len(surely), f"requests of some replica are missing: {figures}"
    assert record["candidate_requests"] >= to_candidate, figures
    assert merged > 1.3 * biggest, f"no more than one replica's figures: {figures}"
    return figures


def pid_of_holder(holder: str | None) -> int | None:
    # holder ids are host:pid:random
    try:
        return int(holder.split(":")[1]) if holder else None
    except (IndexError, ValueError):
        return None


def test_rollout_over_replicas_survives_the_controller_dying(cluster):
    tok = cluster.admin_token
    reg = cluster.registry()
    name = uniq("canary")
    v1, v2 = register(cluster, name, rm.stable(), rm.retrained(1))
    with sm.tracking_at(reg.url, tok):
        from mlflow.tracking import MlflowClient

        MlflowClient().set_registered_model_alias(name, "champion", v1)
    ok(api(reg, "PUT", f"/api/v1/deployments/{name}", tok, json_body={"model": name, "alias": "champion"}), "PUT")
    for m in cluster.servings():
        wait_until(lambda: api(m, "GET", f"/v2/models/{name}/ready", tok).status_code == 200,
                   timeout=20, interval=0.1, what=f"{name} on {m.name}")
    plan = {"candidate": {"version": v2}, "strategy": "canary", "steps": [20, 50, 100], "step_seconds": 4,
            "min_requests": 150, "paired_fraction": 0.5, "thresholds": {"min_samples": 100}}
    ro = ok(api(reg, "POST", f"/api/v1/deployments/{name}/rollouts", tok, json_body=plan), "start rollout")
    rid = ro["id"]
    watcher = cluster.servings()[0]
    killed = None
    offset = time.time() - time.monotonic()
    traffic = [row_body(i) for i in range(500)]
    with LoadClient(tok, cluster.servings(), model=name, bodies=traffic, threads=4) as load:
        # wait for the first step to pass, then kill the lease holder
        wait_until(lambda: ok(api(watcher, "GET", f"/api/v1/deployments/{name}/rollouts/{rid}", tok), "get")["step"] >= 1,
                   timeout=60, interval=0.2, what="step 0 judged")
        holder = ok(api(watcher, "GET", f"/api/v1/deployments/{name}/rollouts/{rid}", tok), "get")["controller"]
        pid = pid_of_holder(holder)
        victim = next((m for m in cluster.members if m.alive and m.proc and m.proc.pid == pid), None)
        assert victim is not None, f"no member runs the controller {holder}: {cluster.describe()}"
        if victim in cluster.servings():
            load.remove(victim.name)
            time.sleep(0.3)
            watcher = next(m for m in cluster.servings() if m is not victim)
        t_kill = time.monotonic()
        victim.kill9()
        killed = victim.name
        end = wait_until(
            lambda: (r := ok(api(watcher, "GET", f"/api/v1/deployments/{name}/rollouts/{rid}", tok), "get"))["state"]
            not in ("progressing", "paused") and r,
            timeout=90, interval=0.3, what="the rollout to finish after the controller died")
        took_over = end["controller"]
        since_kill = time.monotonic() - t_kill
        failures_after = load.failures(since=t_kill + 0.5)
        summary = load.summary()
        load.stop()
        merged = [check_merged_figures(r, load, offset, v2) for r in end["record"] if r["verdict"] == "pass"]
    assert end["state"] == "promoted", end["reason"]
    assert took_over and took_over != holder, (holder, took_over)
    rollouts = ok(api(watcher, "GET", f"/api/v1/deployments/{name}/rollouts", tok), "list")["rollouts"]
    assert [r["state"] for r in rollouts] == ["promoted"], "exactly one rollout, promoted once"
    passed = [r for r in end["record"] if r["verdict"] == "pass"]
    assert [r["step"] for r in passed] == [0, 1], end["record"]
    for r in passed:
        srm = next(c for c in r["checks"] if c["name"] == "sample_ratio")
        assert srm["verdict"] == "pass", srm
    assert not failures_after, failures_after[:3]
    # the killed member comes back cleanly; the registry shows the alias moved, once
    next(m for m in cluster.members if m.name == killed).restart()
    alias = ok(api(cluster.registry(), "GET", "/api/2.0/mlflow/registered-models/alias", tok,
                   params={"name": name, "alias": "champion"}), "alias")
    assert alias["model_version"]["version"] == v2
    print(f"FIGURES rollout: killed {killed} (controller {holder}); {took_over} finished it {since_kill:.1f}s later; "
          f"realised splits {[(c['stable'], round(c['candidate'], 3)) for r in passed for c in r['checks'] if c['name'] == 'sample_ratio']}; "
          f"load {summary}; merged figures {merged}")
