"""Rollouts with real ONNX models and real load (issue 8): a good candidate (the same model
retrained on another resample) goes through every canary step and is promoted (the alias moves in
the registry, as the mlflow client sees it); three bad candidates are each rolled back with the
failed check named — one failing a share of requests, one much slower, one trained on shuffled
labels that never errs and is as fast; advisory mode records the same verdicts without changing
traffic; too little traffic ends inconclusive; a split with a sticky header keeps each key on its
version; shadow figures equal the ones computed here from onnxruntime's outputs."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter

import numpy as np
import pytest
import requests

import rollout_models as rm
import serving_models as sm
from slipway_testlib import new_admin_token, slipway_bin, uniq

pytestmark = pytest.mark.slipway

STEPS = [20, 50, 100]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    token = new_admin_token()
    server = sm.start_server_with_demo(
        tmp_path_factory.mktemp("rollouts") / "data",
        admin_token=token,
        env={"SLIPWAY_DEPLOYMENT_POLL_MS": "200", "SLIPWAY_LOG_LEVEL": "info,ort=error"},
    )
    try:
        yield server, token
    finally:
        server.stop()


def register(srv, name: str, *models) -> list[str]:
    server, token = srv
    versions = []
    with sm.tracking_at(server.url, token):
        import mlflow

        exp = mlflow.create_experiment(uniq("exp"))
        for m in models:
            versions.append(sm.log_and_register(m, name, exp))
    return versions


def set_alias(srv, name: str, alias: str, version: str) -> None:
    server, token = srv
    with sm.tracking_at(server.url, token):
        from mlflow.tracking import MlflowClient

        MlflowClient().set_registered_model_alias(name, alias, version)


def alias_version(srv, name: str, alias: str) -> str:
    server, token = srv
    with sm.tracking_at(server.url, token):
        from mlflow.tracking import MlflowClient

        return MlflowClient().get_model_version_by_alias(name, alias).version


def body_of(rows: np.ndarray) -> dict:
    return {"inputs": [{"name": "float_input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]}


class Load:
    """Threads sending single iris rows to a deployment until stopped; keeps every answer's
    status, version and time."""

    def __init__(self, url: str, token: str, name: str, threads: int = 3, headers=None):
        self.url, self.name = url, name
        self.h = {**sm.auth_headers(token), **(headers or {})}
        self.results: list[tuple[float, int, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        self._lock = threading.Lock()

    def _run(self, i: int):
        rows = rm.traffic(5000, seed=i)
        s = requests.Session()
        k = 0
        while not self._stop.is_set():
            r = s.post(f"{self.url}/v2/models/{self.name}/infer", json=body_of(rows[k % len(rows)][None, :]), headers=self.h, timeout=30)
            with self._lock:
                self.results.append((time.monotonic(), r.status_code, r.headers.get("x-slipway-model-version")))
            k += 1

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def snapshot(self):
        with self._lock:
            return list(self.results)


def start_rollout(srv, name: str, plan: dict) -> dict:
    server, token = srv
    r = requests.post(f"{server.url}/api/v1/deployments/{name}/rollouts", json=plan, headers=sm.auth_headers(token), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def get_rollout(srv, name: str, rid: str) -> dict:
    server, token = srv
    r = requests.get(f"{server.url}/api/v1/deployments/{name}/rollouts/{rid}", headers=sm.auth_headers(token), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_done(srv, name: str, rid: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ro = get_rollout(srv, name, rid)
        if ro["state"] not in ("progressing", "paused"):
            return ro
        time.sleep(0.3)
    raise AssertionError(f"rollout {rid} did not finish: {ro}")


def scenario(srv, candidate, *, mode: str = "auto", plan_extra: dict | None = None):
    """Deploys stable v1 behind alias champion, rolls out v2 under load; returns
    (rollout, load results, end time, name, v1, v2)."""
    server, token = srv
    name = uniq("ro")
    v1, v2 = register(srv, name, rm.stable(), candidate)
    set_alias(srv, name, "champion", v1)
    sm.put_deployment(server.url, token, name, {"model": name, "alias": "champion"})
    plan = {
        "candidate": {"version": v2}, "strategy": "canary", "steps": STEPS, "step_seconds": 2,
        "min_requests": 120, "paired_fraction": 1.0, "mode": mode, "thresholds": {"min_samples": 100},
    }
    for k, v in (plan_extra or {}).items():  # None removes a field
        if v is None:
            plan.pop(k, None)
        else:
            plan[k] = v
    with Load(server.url, token, name) as load:
        ro = start_rollout(srv, name, plan)
        end = wait_done(srv, name, ro["id"])
        finished = time.monotonic()
        time.sleep(1.0)  # a few polls after the end: every request goes where the outcome says
    return end, load.snapshot(), finished, name, v1, v2


def failed_checks(ro: dict) -> list[str]:
    return [c["name"] for c in ro["record"][-1]["checks"] if c["verdict"] == "fail"]


def test_a_good_candidate_is_promoted_through_every_step(srv):
    ro, results, finished, name, v1, v2 = scenario(srv, rm.retrained(1))
    assert ro["state"] == "promoted", ro["reason"]
    judged = [r["step"] for r in ro["record"] if r["verdict"] == "pass"]
    assert judged == [0, 1], ro["record"]
    for r in ro["record"]:
        names = {c["name"] for c in r["checks"]}
        assert {"error_rate", "p99_latency", "agreement", "sample_ratio", "distribution:label"} <= names, names
    assert alias_version(srv, name, "champion") == v2, "the registry's alias moved"
    assert all(code == 200 for _, code, _ in results), Counter(code for _, code, _ in results)
    late = [v for t, code, v in results if t > finished + 0.6]
    assert late and set(late) == {v2}, Counter(late)
    print(f"\npromoted {name} v{v2}: {len(results)} requests, 0 failed; {ro['reason']}")


@pytest.mark.parametrize(
    "kind,check",
    [("failing", "error_rate"), ("slow", "p99_latency"), ("shuffled", "agreement")],
)
def test_bad_candidates_are_rolled_back_naming_the_failed_check(srv, kind, check):
    candidate = {"failing": rm.failing, "slow": rm.slow, "shuffled": rm.shuffled}[kind]()
    ro, results, finished, name, v1, v2 = scenario(srv, candidate)
    assert ro["state"] == "rolled_back", ro["reason"]
    assert check in failed_checks(ro), (failed_checks(ro), ro["reason"])
    assert check in ro["reason"]
    assert alias_version(srv, name, "champion") == v1, "the alias did not move"
    failures = [(t, code, v) for t, code, v in results if code != 200]
    if kind == "failing":
        assert failures and all(v == v2 for _, _, v in failures), "only the candidate's own errors"
    else:
        assert not failures, Counter(code for _, code, _ in failures)
    after = [(code, v) for t, code, v in results if t > finished + 0.6]
    assert after and all(code == 200 and v == v1 for code, v in after), Counter(after)
    print(f"\n{kind}: rolled back at step {ro['record'][-1]['step']} ({len(results)} requests, "
          f"{len(failures)} failed, all before the rollback): {ro['reason'][:300]}")


def test_advisory_mode_records_verdicts_and_never_changes_traffic(srv):
    ro, results, finished, name, v1, v2 = scenario(srv, rm.shuffled(), mode="advisory")
    assert ro["mode"] == "advisory" and ro["advice"] == "roll back", ro
    assert "agreement" in failed_checks(ro)
    assert "nothing was changed" in ro["reason"]
    assert {v for _, _, v in results} == {v1}, "clients only ever got the stable version"
    assert all(code == 200 for _, code, _ in results)
    assert alias_version(srv, name, "champion") == v1


def test_too_little_traffic_ends_inconclusive(srv):
    server, token = srv
    name = uniq("ro-thin")
    v1, v2 = register(srv, name, rm.stable(), rm.retrained(2))
    set_alias(srv, name, "champion", v1)
    sm.put_deployment(server.url, token, name, {"model": name, "alias": "champion"})
    ro = start_rollout(srv, name, {"candidate": {"version": v2}, "strategy": "ab", "weight": 10, "step_seconds": 1,
                                   "min_requests": 100000, "max_duration_seconds": 3})
    with Load(server.url, token, name, threads=1):
        end = wait_done(srv, name, ro["id"], timeout=30)
    assert end["state"] == "inconclusive", end
    assert end["record"] and end["record"][-1]["verdict"] == "inconclusive"
    assert alias_version(srv, name, "champion") == v1


def test_rollout_requests_are_validated(srv):
    server, token = srv
    name = uniq("ro-bad")
    v1, v2 = register(srv, name, rm.stable(), rm.retrained(3))
    set_alias(srv, name, "champion", v1)
    sm.put_deployment(server.url, token, name, {"model": name, "alias": "champion"})
    other = uniq("other")
    register(srv, other, rm.stable())
    h = sm.auth_headers(token)
    url = f"{server.url}/api/v1/deployments/{name}/rollouts"
    ok_plan = {"candidate": {"version": v2}, "strategy": "canary", "steps": [10, 100], "step_seconds": 600}
    for plan, status, want in [
        ({**ok_plan, "candidate": {"version": v1}}, 400, "already the stable version"),
        ({**ok_plan, "candidate": {"version": "99"}}, 400, "does not exist"),
        ({**ok_plan, "steps": [50, 10]}, 400, "must rise"),
        ({**ok_plan, "step_seconds": -5}, 400, "step_seconds"),
        ({**ok_plan, "step_seconds": 10**9}, 400, "step_seconds"),
        ({**ok_plan, "thresholds": {"max_js_distance": 7}}, 400, "thresholds.max_js_distance"),
        ({**ok_plan, "candidate": {"alias": "nope"}}, 400, "alias nope"),
        ({**ok_plan, "strategy": "linear"}, 400, "strategy"),
        # a model other than the deployment's
        ({**ok_plan, "candidate": {"model": other, "version": "1"}}, 400,
         f"Field 'candidate.model' names model '{other}', but the deployment serves '{name}'"),
        ({**ok_plan, "steps": [100]}, 400, "at least one weight below 100"),
        ({**ok_plan, "thresholds": {"distribution_alpha": 0}}, 400, "thresholds.distribution_alpha"),
        ({**ok_plan, "thresholds": {"distribution_alpha": 1}}, 400, "thresholds.distribution_alpha"),
    ]:
        r = requests.post(url, json=plan, headers=h, timeout=30)
        assert r.status_code == status and want in r.json()["message"], (plan, r.text)
    assert requests.post(f"{server.url}/api/v1/deployments/nope/rollouts", json=ok_plan, headers=h, timeout=30).status_code == 404
    first = requests.post(url, json=ok_plan, headers=h, timeout=30)
    assert first.status_code == 200, first.text
    second = requests.post(url, json=ok_plan, headers=h, timeout=30)
    assert second.status_code == 409, second.text
    rid = first.json()["id"]
    listed = requests.get(url, headers=h, timeout=30).json()["rollouts"]
    assert listed[0]["id"] == rid
    aborted = requests.post(f"{url}/{rid}/abort", headers=h, timeout=30)
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted", aborted.text
    # weights that do not add up, unknown or duplicate versions in a fixed split
    for spec, want in [
        ({"model": name, "alias": "champion", "traffic": [{"version": v1, "weight": 90}, {"version": v2, "weight": 20}]}, "add up"),
        ({"model": name, "alias": "champion", "traffic": [{"version": "42", "weight": 100}]}, "does not exist"),
        ({"model": name, "alias": "champion", "traffic": [{"version": v1, "weight": 50}, {"version": v1, "weight": 50}]}, "repeats"),
        ({"model": name, "alias": "champion", "shadow": {"version": v2, "fraction": 3}}, "shadow.fraction"),
        # a version and an alias that resolve to it: the weights would silently merge
        ({"model": name, "alias": "champion", "traffic": [{"version": v1, "weight": 90}, {"alias": "champion", "weight": 10}]},
         "both resolve to version"),
        # a model other than the deployment's
        ({"model": name, "alias": "champion", "traffic": [{"model": other, "version": "1", "weight": 100}]},
         f"Field 'traffic[0].model' names model '{other}'"),
        ({"model": name, "alias": "champion", "shadow": {"model": other, "version": "1", "fraction": 0.5}},
         f"Field 'shadow.model' names model '{other}'"),
    ]:
        r = requests.put(f"{server.url}/api/v1/deployments/{name}", json=spec, headers=h, timeout=30)
        assert r.status_code == 400 and want in r.json()["message"], (spec, r.text)


def epoch_of(monotonic: float, offset: float) -> float:
    return monotonic + offset


def test_a_passing_ab_rollout_promotes_the_retrained_candidate(srv):
    """`ab`: a fixed 50/50 split held for the step, judged once; a retrained candidate passes every
    check and is promoted (the alias moves, and every request after the end gets it)."""
    ro, results, finished, name, v1, v2 = scenario(
        srv, rm.retrained(4), plan_extra={"strategy": "ab", "steps": None, "weight": 50, "step_seconds": 3})
    assert ro["state"] == "promoted", ro["reason"]
    assert ro["strategy"] == "ab" and ro["traffic"] == "split", ro
    passed = [r for r in ro["record"] if r["verdict"] == "pass"]
    assert [r["step"] for r in passed] == [0] and passed[0]["weight"] == 50, ro["record"]
    srm = next(c for c in passed[0]["checks"] if c["name"] == "sample_ratio")
    assert srm["verdict"] == "pass" and abs(srm["candidate"] - 0.5) < 0.1, srm
    assert all(c["verdict"] == "pass" for c in passed[0]["checks"]), passed[0]["checks"]
    assert alias_version(srv, name, "champion") == v2
    assert all(code == 200 for _, code, _ in results)
    during = Counter(v for t, _, v in results if t < finished - 1.0)
    assert during[v1] > 0 and during[v2] > 0, f"both versions served during the A/B step: {during}"
    late = [v for t, code, v in results if t > finished + 0.6]
    assert late and set(late) == {v2}, Counter(late)


def test_a_shadow_rollout_in_auto_mode_promotes_the_retrained_candidate(srv):
    """`shadow` in auto mode: the candidate only gets copies (clients get the stable version's
    answers until the promotion), is judged on them, and is promoted."""
    server, token = srv
    offset = time.time() - time.monotonic()
    ro, results, finished, name, v1, v2 = scenario(
        srv, rm.retrained(4),
        plan_extra={"strategy": "shadow", "steps": None, "shadow_fraction": 1.0, "step_seconds": 3})
    assert ro["state"] == "promoted", ro["reason"]
    assert ro["strategy"] == "shadow" and ro["mode"] == "auto" and ro["traffic"] == "mirrored", ro
    passed = [r for r in ro["record"] if r["verdict"] == "pass"]
    assert [r["step"] for r in passed] == [0], ro["record"]
    names = {c["name"] for c in passed[0]["checks"]}
    assert {"error_rate", "p99_latency", "agreement", "distribution:label"} <= names, names
    assert passed[0]["candidate_requests"] >= 120, passed[0]
    assert alias_version(srv, name, "champion") == v2
    assert all(code == 200 for _, code, _ in results)
    # clients never saw the candidate before the promotion was decided
    promoted_at = ro["finished_at"] / 1000.0
    early_v2 = [t for t, _, v in results if v == v2 and epoch_of(t, offset) < promoted_at - 0.05]
    assert not early_v2, f"{len(early_v2)} answers from the shadow before the promotion"
    assert Counter(v for t, _, v in results if epoch_of(t, offset) < promoted_at)[v1] > 100
    late = [v for t, code, v in results if t > finished + 0.6]
    assert late and set(late) == {v2}, Counter(late)


def cli(srv, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs the slipway binary against the module's server (URL and token from the environment)."""
    server, token = srv
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update({"SLIPWAY_URL": server.url, "SLIPWAY_TOKEN": token})
    return subprocess.run([str(slipway_bin()), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_rollout_cli_starts_shows_and_acts(srv):
    """`slipway rollout start|status|list|pause|resume|abort|promote`, tables and --json."""
    server, token = srv
    name = uniq("ro-cli")
    v1, v2 = register(srv, name, rm.stable(), rm.retrained(4))
    set_alias(srv, name, "champion", v1)
    sm.put_deployment(server.url, token, name, {"model": name, "alias": "champion"})
    slow = ["--steps", "20,50,100", "--step-seconds", "600", "--min-requests", "1000"]
    r = cli(srv, "rollout", "start", name, "--candidate-version", v2, *slow, "--json")
    assert r.returncode == 0, r.stderr
    started = json.loads(r.stdout)
    rid = started["id"]
    assert started["state"] == "progressing" and started["candidate_version"] == v2, started
    assert started["weights"] == {"stable": 80.0, "candidate": 20.0}, started
    # status without an id is the newest; --json is the API's view
    r = cli(srv, "rollout", "status", name, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == rid
    r = cli(srv, "rollout", "status", name, rid)
    assert r.returncode == 0, r.stderr
    assert f"Rollout {rid} of {name}: progressing (canary auto, split traffic)" in r.stdout, r.stdout
    assert f"versions: stable {v1} -> candidate {v2}" in r.stdout, r.stdout
    assert "weights:  stable 80.0%, candidate 20.0%" in r.stdout, r.stdout
    # a second rollout is refused: the server's message, a non-zero exit
    r = cli(srv, "rollout", "start", name, "--candidate-version", v2, *slow)
    assert r.returncode != 0 and "409" in r.stderr and "already has an active rollout" in r.stderr, r.stderr
    for action, state in [("pause", "paused"), ("resume", "progressing"), ("abort", "aborted")]:
        r = cli(srv, "rollout", action, name, rid)
        assert r.returncode == 0, (action, r.stderr)
        assert f"of {name}: {state}" in r.stdout, (action, r.stdout)
        assert get_rollout(srv, name, rid)["state"] == state
    assert alias_version(srv, name, "champion") == v1, "an abort leaves the alias"
    r = cli(srv, "rollout", "list", name)
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "STRATEGY", "VERSIONS"], r.stdout
    assert rows and rows[0].split()[:2] == [rid, "aborted"], r.stdout
    # promote by hand: the alias moves
    r = cli(srv, "rollout", "start", name, "--candidate-alias", "champion", *slow)
    assert r.returncode != 0 and "already the stable version" in r.stderr, r.stderr
    r = cli(srv, "rollout", "start", name, "--candidate-version", v2, "--strategy", "ab", "--weight", "30",
            "--step-seconds", "600", "--json")
    assert r.returncode == 0, r.stderr
    second = json.loads(r.stdout)
    assert second["strategy"] == "ab" and second["weights"]["candidate"] == 30.0, second
    r = cli(srv, "rollout", "promote", name, second["id"])
    assert r.returncode == 0, r.stderr
    assert f"of {name}: promoted" in r.stdout, r.stdout
    assert alias_version(srv, name, "champion") == v2
    listed = json.loads(cli(srv, "rollout", "list", name, "--json").stdout)["rollouts"]
    assert [(x["id"], x["state"]) for x in listed] == [(second["id"], "promoted"), (rid, "aborted")], listed
    # bad input: the server names the field
    r = cli(srv, "rollout", "start", name, "--candidate-version", v1, "--steps", "100")
    assert r.returncode != 0 and "steps" in r.stderr and "below 100" in r.stderr, r.stderr


def test_rollout_status_watch_shows_the_live_step_until_the_end(srv):
    """`status --watch` redraws the state, step, weights and checks while the rollout runs and
    exits by itself when it ends."""
    server, token = srv
    name = uniq("ro-watch")
    v1, v2 = register(srv, name, rm.stable(), rm.retrained(4))
    set_alias(srv, name, "champion", v1)
    sm.put_deployment(server.url, token, name, {"model": name, "alias": "champion"})
    with Load(server.url, token, name):
        r = cli(srv, "rollout", "start", name, "--candidate-version", v2, "--steps", ",".join(map(str, STEPS)),
                "--step-seconds", "3", "--min-requests", "120", "--json")
        assert r.returncode == 0, r.stderr
        rid = json.loads(r.stdout)["id"]
        started = time.monotonic()
        # a frame a second: each 3-second step is drawn at least twice
        watch = cli(srv, "rollout", "status", name, rid, "--watch", timeout=120)
        took = time.monotonic() - started
    assert watch.returncode == 0, watch.stderr
    frames = [f for f in watch.stdout.split("\x1b[2J\x1b[H") if f.strip()]
    assert len(frames) >= 3, watch.stdout[-2000:]
    live = [f for f in frames if f": progressing (canary auto" in f]
    assert live, frames[:2]
    # a live frame shows the step, the weights, and once judged, the checks of the last judgement
    assert any("step:     0 of [20.0, 50.0]" in f and "stable 80.0%, candidate 20.0%" in f for f in live), live[0]
    assert any("last judgement: step 0" in f and "CHECK" in f and "agreement" in f for f in live), (live[-1], frames[-1])
    assert f"Rollout {rid} of {name}: promoted" in frames[-1], frames[-1]
    assert get_rollout(srv, name, rid)["state"] == "promoted"
    assert took < 110, took


def test_deploy_cli_takes_split_sticky_header_shadow_and_alias_change(srv, tmp_path):
    """`slipway deploy` flags: --traffic, --sticky-header, --shadow, --on-alias-change, --spec."""
    server, token = srv
    name = uniq("cli-dep")
    v1, v2, v3 = register(srv, name, rm.stable(), rm.retrained(4), rm.retrained(1))
    set_alias(srv, name, "champion", v1)
    set_alias(srv, name, "challenger", v2)
    r = cli(srv, "deploy", name, "--model", name, "--alias", "champion", "--traffic", f"{v1}=90",
            "--traffic", "@challenger=10", "--sticky-header", "x-user-id", "--shadow", f"{v3}:0.5", "--json")
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert view["spec"]["traffic"] == [{"version": v1, "weight": 90.0}, {"alias": "challenger", "weight": 10.0}], view
    assert view["spec"]["sticky_header"] == "x-user-id" and view["spec"]["shadow"] == {"version": v3, "fraction": 0.5}
    assert {x["version"]: x["weight"] for x in view["traffic"]["split"]} == {v1: 90.0, v2: 10.0}, view["traffic"]
    assert [(m["version"], m["fraction"]) for m in view["traffic"]["mirrors"]] == [(v3, 0.5)], view["traffic"]
    # what it serves: the split by the sticky header, the shadow compared
    h = {**sm.auth_headers(token), "x-user-id": "user-7"}
    got = {requests.post(f"{server.url}/v2/models/{name}/infer", json=body_of(rm.traffic(1)), headers=h, timeout=30)
           .headers["x-slipway-model-version"] for _ in range(5)}
    assert len(got) == 1 and got <= {v1, v2}, got
    # people get a summary naming the split and the shadow
    r = cli(srv, "deployment", "show", name)
    assert r.returncode == 0, r.stderr
    assert f"traffic:  v{v1} 90.0%, v{v2} 10.0% (sticky by x-user-id)" in r.stdout, r.stdout
    assert f"shadow:   v{v3} gets copies of 0.5 of requests" in r.stdout, r.stdout
    # --on-alias-change from a file, then inline, then swap; --spec with flags overriding it
    template = tmp_path / "template.json"
    template.write_text(json.dumps({"strategy": "canary", "steps": [10, 100], "step_seconds": 60}))
    r = cli(srv, "deploy", name, "--model", name, "--alias", "champion", "--on-alias-change", str(template), "--json")
    assert r.returncode == 0, r.stderr
    spec = json.loads(r.stdout)["spec"]
    assert spec["on_alias_change"]["steps"] == [10.0, 100.0] and "traffic" not in spec, spec
    r = cli(srv, "deploy", name, "--model", name, "--alias", "champion", "--on-alias-change",
            '{"strategy": "shadow", "step_seconds": 30}', "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["spec"]["on_alias_change"]["strategy"] == "shadow"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"model": name, "version": v1, "max_batch_size": 8, "on_alias_change": "swap"}))
    r = cli(srv, "deploy", name, "--spec", str(spec_file), "--json")
    assert r.returncode == 0, r.stderr
    spec = json.loads(r.stdout)["spec"]
    assert spec["version"] == v1 and spec["max_batch_size"] == 8, spec
    r = cli(srv, "deploy", name, "--spec", str(spec_file), "--version", v2, "--json")
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert view["spec"]["version"] == v2 and view["status"]["serving_version"] == v2, view
    # bad input: refused by the CLI before sending, or by the server naming the field
    for args, want in [
        (["--traffic", "90"], "VERSION=WEIGHT"),
        (["--shadow", f"{v3}:most"], "fraction 'most'"),
        (["--on-alias-change", "sometimes"], "neither 'swap'"),
        (["--traffic", f"{v1}=50", "--traffic", "@champion=50"], "both resolve to version"),
        (["--traffic", f"{v1}=50", "--traffic", f"{v2}=60"], "add up to 110"),
        (["--shadow", f"{v3}:2"], "shadow.fraction"),
    ]:
        r = cli(srv, "deploy", name, "--model", name, "--alias", "champion", *args)
        assert r.returncode != 0 and want in r.stderr, (args, r.stderr)
    assert sm.get_deployment(server.url, token, name)["spec"]["version"] == v2, "refused specs changed nothing"


def test_split_with_sticky_header_and_version_routes(srv):
    server, token = srv
    name = uniq("split")
    v1, v2 = register(srv, name, rm.stable(), rm.retrained(4))
    set_alias(srv, name, "champion", v1)
    set_alias(srv, name, "challenger", v2)
    dep = sm.put_deployment(server.url, token, name, {
        "model": name, "alias": "champion", "sticky_header": "x-user-id",
        "traffic": [{"alias": "champion", "weight": 90}, {"alias": "challenger", "weight": 10}],
    })
    assert {s["version"]: s["weight"] for s in dep["traffic"]["split"]} == {v1: 90.0, v2: 10.0}, dep
    h = sm.auth_headers(token)
    row = body_of(rm.traffic(1))
    s = requests.Session()
    seen = {}
    for i in range(300):
        key = f"user-{i}"
        versions = {s.post(f"{server.url}/v2/models/{name}/infer", json=row, headers={**h, "x-user-id": key}, timeout=30)
                    .headers["x-slipway-model-version"] for _ in range(3)}
        assert len(versions) == 1, (key, versions)
        seen[key] = versions.pop()
    share = sum(v == v2 for v in seen.values()) / len(seen)
    assert 0.05 < share < 0.16, share
    answers = Counter(s.post(f"{server.url}/v2/models/{name}/infer", json=row, headers=h, timeout=30).json()["model_version"]
                      for _ in range(600))
    assert 0.06 < answers[v2] / 600 < 0.15, answers
    # any loaded version is reachable directly
    r = s.post(f"{server.url}/v2/models/{name}/versions/{v2}/infer", json=row, headers=h, timeout=30)
    assert r.status_code == 200 and r.json()["model_version"] == v2


def test_shadow_figures_equal_onnxruntime(srv):
    server, token = srv
    name = uniq("shadow")
    primary, shadow = rm.stable(), rm.shuffled(11)
    v1, v2 = register(srv, name, primary, shadow)
    sm.put_deployment(server.url, token, name, {"model": name, "version": v1, "shadow": {"version": v2, "fraction": 1.0}})
    h = sm.auth_headers(token)
    x = rm.traffic(300, seed=5)
    s = requests.Session()
    for row in x:
        r = s.post(f"{server.url}/v2/models/{name}/infer", json=body_of(row[None, :]), headers=h, timeout=30)
        assert r.status_code == 200 and r.json()["model_version"] == v1
    st = sm.wait_until(
        lambda: (d := sm.get_deployment(server.url, token, name).get("shadow")) and d["rows_compared"] == len(x) and d,
        timeout=20, what="every copy compared")
    a, b = primary.predict(x), shadow.predict(x)
    agreement = float(np.mean(a["label"] == b["label"]))
    diff = np.abs(a["probabilities"].astype(np.float64) - b["probabilities"].astype(np.float64))
    assert st["mirrored"] == len(x) and st["dropped"] == 0 and st["errors"] == 0, st
    assert st["agreement"] == pytest.approx(agreement, abs=1e-12), (st, agreement)
    assert st["mean_abs_diff"] == pytest.approx(float(diff.mean()), rel=1e-5), (st, diff.mean())
    assert st["max_abs_diff"] == pytest.approx(float(diff.max()), rel=1e-5), (st, diff.max())
    assert st["latency_p99_ms"] is not None and st["version"] == v2
    print(f"\nshadow: agreement {st['agreement']:.3f} (onnxruntime {agreement:.3f}), mean |diff| {st['mean_abs_diff']:.5f} "
          f"({diff.mean():.5f}), max {st['max_abs_diff']:.5f} ({diff.max():.5f})")


def test_alias_moves_start_judged_rollouts(srv):
    """A deployment with an on_alias_change template: a training pipeline moving `champion`
    gets a judged canary instead of a hard swap — a bad version is rolled back (and the alias
    moved back, as the mlflow client sees), a good one promoted."""
    server, token = srv
    name = uniq("auto")
    # retrained(4): output distributions within 0.015 normed Wasserstein of the stable's
    # (retrained(5) is 0.043 apart, close enough to the 0.1 threshold that a 20% step's few
    # hundred samples sometimes measured it beyond, significantly: a real if small difference)
    v1, bad, good = register(srv, name, rm.stable(), rm.shuffled(3), rm.retrained(4))
    set_alias(srv, name, "champion", v1)
    template = {"strategy": "canary", "steps": STEPS, "step_seconds": 2, "min_requests": 120,
                "paired_fraction": 1.0, "thresholds": {"min_samples": 100}}
    sm.put_deployment(server.url, token, name, {"model": name, "alias": "champion", "on_alias_change": template})
    h = sm.auth_headers(token)

    def newest():
        rs = requests.get(f"{server.url}/api/v1/deployments/{name}/rollouts", headers=h, timeout=30).json()["rollouts"]
        return rs[0] if rs else None

    with Load(server.url, token, name) as load:
        set_alias(srv, name, "champion", bad)
        ro = sm.wait_until(lambda: (r := newest()) and r["candidate_version"] == bad and r, timeout=10, what="a rollout")
        assert ro["triggered_by_alias"] and ro["stable_version"] == v1
        end = wait_done(srv, name, ro["id"])
        assert end["state"] == "rolled_back", end["reason"]
        assert alias_version(srv, name, "champion") == v1, "rolled back: the alias points to the version serving"
        set_alias(srv, name, "champion", good)
        ro2 = sm.wait_until(lambda: (r := newest()) and r["candidate_version"] == good and r, timeout=10, what="a second rollout")
        end2 = wait_done(srv, name, ro2["id"])
        assert end2["state"] == "promoted", end2["reason"]
        assert alias_version(srv, name, "champion") == good
        sm.wait_until(lambda: sm.get_deployment(server.url, token, name)["status"]["serving_version"] == good,
                      timeout=10, what="the promoted version serving")
        time.sleep(1.0)
        results = load.snapshot()
    served = Counter(v for _, _, v in results)
    assert served[bad] > 0 and served[good] > 0, served
    assert all(code == 200 for _, code, _ in results), "no failed request through either rollout"
    assert len([r for r in requests.get(f"{server.url}/api/v1/deployments/{name}/rollouts", headers=h, timeout=30).json()["rollouts"]]) == 2
