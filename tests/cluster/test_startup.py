"""Start-up is idempotent under concurrency: several replicas started at the same instant on an
empty PostgreSQL database and S3 prefix all come up; migrations, the admin token and the demo
model are set up exactly once (they run under a lease in the metadata store)."""

from __future__ import annotations

import time

import pytest

from harness import IRIS_BODY, Cluster, ClusterEnvironmentError, api, wait_until


@pytest.mark.parametrize("round_", range(2))
def test_replicas_started_together_on_an_empty_database_all_come_up(round_):
    c = Cluster("startup", roles=["all", "all", "all"], demo=True)
    t0 = time.monotonic()
    try:
        try:
            c.start(concurrently=True, first_alone=False)
        except ClusterEnvironmentError as e:
            pytest.fail(str(e), pytrace=False)
        up = time.monotonic() - t0
        tok = c.admin_token
        for m in c.members:
            assert m.alive, c.describe()
            # the replica that installed the demo serves it at once; the others pick the new
            # deployment up within their poll interval
            wait_until(
                lambda: api(m, "POST", "/v2/models/iris/infer", tok, json_body=IRIS_BODY).status_code == 200,
                timeout=10, interval=0.1, what=f"iris on {m.name}",
            )
        m0 = c.members[0]
        versions = api(m0, "GET", "/api/2.0/mlflow/model-versions/search", tok, params={"filter": "name = 'iris'"}).json()
        assert [v["version"] for v in versions.get("model_versions", [])] == ["1"], versions
        exps = api(m0, "POST", "/api/2.0/mlflow/experiments/search", tok, json_body={"filter": "name = 'demo'"}).json()
        assert len(exps.get("experiments", [])) == 1, exps
        tokens = api(m0, "GET", "/api/v1/tokens", tok).json()["tokens"]
        supplied = [t for t in tokens if t["name"] == "admin (supplied)" and t["revoked_at"] is None]
        assert len(supplied) == 1, tokens
        print(f"FIGURES startup: 3 replicas started at once, all ready after {up:.2f}s; one demo version, one admin token")
    finally:
        c.close()
