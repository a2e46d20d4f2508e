"""Fixtures of the operations suite: fresh PostgreSQL databases and S3 prefixes, the CLI.

PostgreSQL (SLIPWAY_TEST_POSTGRES_URL) and S3 (scripts/start-s3.sh: SLIPWAY_TEST_S3_BUCKET,
SLIPWAY_S3_ENDPOINT, AWS_*) must be configured; without them the tests FAIL naming what is
missing, they never skip. Databases are named slw_o_* (dropped at the end of the session, and by
scripts/test.sh if a run is interrupted); S3 prefixes are ops-<uuid>/ under the test bucket.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import pytest

_INTEROP = Path(__file__).resolve().parents[1] / "interop"
if str(_INTEROP) not in sys.path:
    sys.path.insert(0, str(_INTEROP))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
# The stores each test uses are chosen by the test, never inherited.
for _k in ("SLIPWAY_METADATA_URL", "SLIPWAY_ARTIFACT_ROOT", "SLIPWAY_DATA_DIR", "SLIPWAY_URL", "SLIPWAY_TOKEN",
           "SLIPWAY_ADMIN_TOKEN", "SLIPWAY_CONFIG", "SLIPWAY_BACKUP_TO", "SLIPWAY_RESTORE_FROM"):
    os.environ.pop(_k, None)

from opslib import Env  # noqa: E402


def _need(name: str) -> str:
    v = os.environ.get(name, "")
    if not v:
        pytest.fail(
            f"{name} is not set: the operations suite needs PostgreSQL and S3 "
            '(eval "$(scripts/ensure-postgres.sh)"; eval "$(scripts/start-s3.sh)", or run scripts/test.sh)',
            pytrace=False,
        )
    return v


@pytest.fixture(scope="session")
def env():
    admin = _need("SLIPWAY_TEST_POSTGRES_URL")
    bucket = _need("SLIPWAY_TEST_S3_BUCKET")
    _need("SLIPWAY_S3_ENDPOINT")
    _need("AWS_ACCESS_KEY_ID")
    created: list[str] = []

    def new_database() -> str:
        name = f"slw_o_{uuid.uuid4().hex[:16]}"
        subprocess.run(["psql", admin, "-qAtc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        created.append(name)
        u = urllib.parse.urlsplit(admin)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))

    def new_s3_root(what: str) -> str:
        return f"s3://{bucket}/ops-{what}-{uuid.uuid4().hex[:12]}"

    yield Env(new_database=new_database, new_s3_root=new_s3_root)
    for name in created:
        subprocess.run(["psql", admin, "-qAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


import logging  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)
