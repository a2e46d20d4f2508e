"""Fixtures of the cluster tests: a topology of `slipway up` processes (harness.Cluster).

PostgreSQL and S3 must be configured (scripts/test.sh prepares both); without them the tests
FAIL with the missing variables named, they never skip.
"""

from __future__ import annotations

import pytest

from harness import Cluster, ClusterEnvironmentError


@pytest.fixture(scope="module")
def make_cluster():
    """A factory: make_cluster("name", roles=[...], **settings) -> a started Cluster, closed after the module."""
    made: list[Cluster] = []

    def make(name: str, **kwargs) -> Cluster:
        c = Cluster(name, **kwargs)
        made.append(c)
        try:
            c.start()
        except ClusterEnvironmentError as e:
            pytest.fail(str(e), pytrace=False)
        return c

    yield make
    for c in made:
        print("\n" + c.describe())
        c.close()
