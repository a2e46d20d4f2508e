"""Deployments that follow an alias: a hot swap under load, and a reload while the artifact store
is unreachable. Each test starts its own server with SLIPWAY_DEPLOYMENT_POLL_MS=200 (and, for the
second, an artifact root in a private SeaweedFS that the test stops), registers two versions of an
MLP whose outputs differ, deploys by alias at version 1 and moves the alias with the real mlflow
client (``MlflowClient.set_registered_model_alias``). Loopback only; every loop is bounded.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import requests
from mlflow.tracking import MlflowClient

import serving_models as sm
from slipway_testlib import new_admin_token, start_server, uniq

pytestmark = pytest.mark.slipway

POLL_MS = 200
SWITCH_DEADLINE_S = 5.0  # poll interval + fetch + load + warm-up, with a wide margin for a debug build
N_FEATURES = 6


def _two_versions(url: str, token: str, seed: int):
    """Registers mlp(seed) as version 1 and mlp(seed + 1) as version 2; alias champion -> 1."""
    v1m, v2m = sm.mlp(seed=seed, n_in=N_FEATURES), sm.mlp(seed=seed + 1, n_in=N_FEATURES)
    with sm.tracking_at(url, token):
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        exp = client.create_experiment(uniq("serving-reload"))
        registered = uniq("srv-reload")
        assert sm.log_and_register(v1m, registered, exp) == "1"
        assert sm.log_and_register(v2m, registered, exp) == "2"
        client.set_registered_model_alias(registered, "champion", "1")
    return registered, v1m, v2m


def _move_alias(url: str, token: str, registered: str, version: str) -> None:
    with sm.tracking_at(url, token):
        MlflowClient(tracking_uri=url, registry_uri=url).set_registered_model_alias(registered, "champion", version)


class Record:
    __slots__ = ("sent", "received", "status", "version", "scores", "error", "binary")

    def __init__(self, sent, received, status, version, scores, error, binary):
        self.sent, self.received, self.status, self.version = sent, received, status, version
        self.scores, self.error, self.binary = scores, error, binary


def _client_loop(url, token, name, x, records: list, stop: threading.Event, deadline: float, max_requests: int, binary_every: int):
    s = requests.Session()
    s.headers.update({"Authorization": f"Bearer {token}"})
    try:
        for i in range(max_requests):
            if stop.is_set() or time.monotonic() > deadline:
                break
            binary = binary_every > 0 and i % binary_every == 0
            t0 = time.monotonic()
            try:
                res = sm.v2_infer(s, url, name, [("features", x)], binary=binary, timeout=30)
                records.append(Record(t0, time.monotonic(), res.status, res.version,
                                      res.arrays.get("scores"), None if res.status == 200 else res.body, binary))
            except Exception as e:  # a connection error is a failed request too
                records.append(Record(t0, time.monotonic(), None, None, None, repr(e), binary))
    finally:
        s.close()


def test_alias_swap_under_load_has_no_failed_requests(tmp_path):
    token = new_admin_token()
    server = start_server(tmp_path / "data", admin_token=token, env={"SLIPWAY_DEPLOYMENT_POLL_MS": str(POLL_MS)})
    try:
        url = server.url
        registered, v1m, v2m = _two_versions(url, token, seed=10)
        name = "swap"
        body = sm.put_deployment(url, token, name, {"model": registered, "alias": "champion"})
        assert body["status"]["serving_version"] == "1", body

        x = np.random.default_rng(7).normal(0, 1, (4, N_FEATURES)).astype(np.float32)
        e1, e2 = v1m.predict(x)["scores"], v2m.predict(x)["scores"]
        assert not np.allclose(e1, e2, atol=1e-3), "the two versions must answer differently"

        stop = threading.Event()
        hard_deadline = time.monotonic() + 60
        per_thread: list[list[Record]] = [[], []]
        threads = [
            threading.Thread(
                target=_client_loop,
                args=(url, token, name, x, per_thread[k], stop, hard_deadline, 20_000, 3 if k == 0 else 0),
                daemon=True,
            )
            for k in range(2)
        ]
        for t in threads:
            t.start()
        try:
            sm.wait_until(lambda: all(len(r) >= 50 for r in per_thread), timeout=30, what="50 requests per client")
            t_alias = time.monotonic()
            _move_alias(url, token, registered, "2")
            t_alias_done = time.monotonic()

            def first_v2():
                return [r for recs in per_thread for r in list(recs) if r.version == "2"]

            sm.wait_until(first_v2, timeout=SWITCH_DEADLINE_S + 10, interval=0.02, what="a response from version 2")
            t_first_v2 = min(r.received for r in first_v2())
            counts = [len(r) for r in per_thread]
            t_more = time.monotonic() + 1.0
            sm.wait_until(
                lambda: time.monotonic() > t_more and all(len(r) >= c + 100 for r, c in zip(per_thread, counts)),
                timeout=30,
                what="1 s and 100 more requests per client after the switch",
            )
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "client threads did not stop"

        records = [r for recs in per_thread for r in recs]
        failed = [r for r in records if r.status != 200]
        assert not failed, f"{len(failed)} of {len(records)} requests failed during the swap, e.g. {failed[0].status} {failed[0].error}"

        switch_s = t_first_v2 - t_alias_done
        assert switch_s <= SWITCH_DEADLINE_S, f"version 2 first answered {switch_s:.2f}s after the alias moved"
        for recs in per_thread:
            versions = [r.version for r in recs]
            assert set(versions) <= {"1", "2"}, set(versions)
            k = versions.index("2")
            assert all(v == "1" for v in versions[:k]) and all(v == "2" for v in versions[k:]), (
                f"a client saw version 1 again after version 2: {''.join(versions)}"
            )
        # Once any client got version 2, every request sent later is answered by version 2.
        late_v1 = [r for r in records if r.sent > t_first_v2 and r.version != "2"]
        assert not late_v1, f"{len(late_v1)} requests sent after the switch were answered by version {late_v1[0].version}"
        # Nothing answered by version 2 before the alias moved.
        assert all(r.received >= t_alias for r in records if r.version == "2")
        for r in records:
            exp = e1 if r.version == "1" else e2
            sm.assert_close(r.scores, exp, what=f"version {r.version} ({'binary' if r.binary else 'json'})")
        n_v1 = sum(r.version == "1" for r in records)
        n_v2 = sum(r.version == "2" for r in records)
        assert n_v1 >= 100 and n_v2 >= 200, (n_v1, n_v2)

        status = sm.get_deployment(url, token, name)["status"]
        assert status["state"] == "ready" and status["serving_version"] == "2" and status["error"] is None, status
        r = sm.invocations(url, token, name, {"inputs": x.tolist()})
        assert r.status_code == 200 and r.headers.get("x-slipway-model-version") == "2", r.text
        sm.assert_close(np.array(r.json()["predictions"]["scores"]), e2, what="scoring after the switch")
    finally:
        server.stop()


def test_artifact_store_unreachable_during_reload_keeps_old_version(tmp_path):
    s3 = sm.start_s3()
    try:
        token = new_admin_token()
        env = sm.s3_server_env(s3, uniq("serving"))
        env["SLIPWAY_DEPLOYMENT_POLL_MS"] = str(POLL_MS)
        server = start_server(tmp_path / "data", admin_token=token, env=env)
        try:
            url = server.url
            registered, v1m, v2m = _two_versions(url, token, seed=20)
            name = "s3-reload"
            body = sm.put_deployment(url, token, name, {"model": registered, "alias": "champion"})
            assert body["status"]["serving_version"] == "1", body
            x = np.random.default_rng(8).normal(0, 1, (3, N_FEATURES)).astype(np.float32)
            e1 = v1m.predict(x)["scores"]

            def check_v1(what: str) -> None:
                res = sm.v2_infer(None, url, name, [("features", x)], token=token, binary=True, timeout=30)
                assert res.status == 200, f"{what}: HTTP {res.status} {res.body}"
                assert res.version == "1", f"{what}: served by version {res.version}"
                sm.assert_close(res.arrays["scores"], e1, what=what)

            check_v1("before the store went away")
            sm.kill_s3(s3)  # the store vanishes (kill -9), the server is not told
            check_v1("store gone, alias not moved")

            _move_alias(url, token, registered, "2")
            # Each load attempt retries the fetch with backoff before giving up (about 12 s here).
            deadline = time.monotonic() + 90
            status = None
            while time.monotonic() < deadline:
                check_v1("while version 2 cannot be fetched")
                status = sm.get_deployment(url, token, name)["status"]
                if status["state"] == "degraded":
                    break
                time.sleep(0.1)
            assert status is not None and status["state"] == "degraded", f"never degraded: {status}"
            assert status["serving_version"] == "1", status
            assert status["target_version"] == "2", status
            assert status["error"] and "version 2" in status["error"], status

            # A few more poll intervals: still degraded, still answering on version 1.
            until = time.monotonic() + 5 * POLL_MS / 1000
            n = 0
            while time.monotonic() < until or n < 5:
                check_v1("after a few poll intervals")
                n += 1
                if n > 500:
                    break
            status = sm.get_deployment(url, token, name)["status"]
            assert status["state"] == "degraded" and status["serving_version"] == "1", status
            r = requests.get(f"{url}/v2/models/{name}/ready", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert r.status_code == 200 and r.json()["ready"] is True, r.text
            r = sm.invocations(url, token, name, {"inputs": x.tolist()})
            assert r.status_code == 200 and r.headers.get("x-slipway-model-version") == "1", r.text
            sm.assert_close(np.array(r.json()["predictions"]["scores"]), e1, what="scoring while degraded")
        finally:
            server.stop()
    finally:
        sm.stop_s3(s3)  # removes its data dir (and stops it if the test failed before the kill)
