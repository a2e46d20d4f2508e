"""NVIDIA's ``perf_analyzer`` against Slipway: ``-x <version>`` reads the version's model
configuration, and the statistics extension gives it the server-side section (counts and
cumulative times). The binary comes from ``scripts/ensure-perf-analyzer.sh``."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests

import serving_models as sm
from slipway_testlib import REPO_ROOT, new_admin_token


@pytest.fixture(scope="module")
def perf_analyzer() -> str:
    out = subprocess.run(
        [str(REPO_ROOT / "scripts" / "ensure-perf-analyzer.sh")], capture_output=True, text=True, check=True, timeout=600
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slipway
def test_perf_analyzer_version_and_server_statistics(tmp_path, perf_analyzer):
    token = new_admin_token()
    server = sm.start_server_with_demo(tmp_path / "data", admin_token=token, env={"SLIPWAY_LOG_LEVEL": "warn"})
    try:
        host = server.url.removeprefix("http://")
        run = subprocess.run(
            [
                perf_analyzer, "-m", "iris", "-x", "1", "-u", host, "-i", "http",
                "-H", f"Authorization: Bearer {token}",
                "--measurement-interval", "1000", "--concurrency-range", "2",
                # a loaded CI machine rarely gives three windows within 10%; any window will do
                "--stability-percentage", "100", "--max-trials", "20",
            ],
            capture_output=True, text=True, timeout=180,
        )
        out = run.stdout + run.stderr
        print(out[-1500:])
        assert run.returncode == 0, out
        assert "Server:" in out, out
        count = int(re.search(r"Server:\s+Inference count: (\d+)", out).group(1))
        assert count > 100, out
        assert re.search(r"compute infer \d+ usec", out), out

        # the statistics extension, as Triton's spec describes it
        h = {"Authorization": f"Bearer {token}"}
        meta = requests.get(f"{server.url}/v2", headers=h, timeout=10).json()
        assert "statistics" in meta["extensions"]
        for path in ["/v2/models/stats", "/v2/models/iris/stats", "/v2/models/iris/versions/1/stats"]:
            r = requests.get(server.url + path, headers=h, timeout=10)
            assert r.status_code == 200, (path, r.text)
            (stat,) = [s for s in r.json()["model_stats"] if s["name"] == "iris"]
            assert stat["version"] == "1" and stat["inference_count"] >= count
            assert stat["execution_count"] >= 1 and stat["last_inference"] > 0
            inf = stat["inference_stats"]
            assert inf["success"]["count"] >= count and inf["success"]["ns"] > 0
            assert inf["queue"]["count"] == inf["success"]["count"] + inf["fail"]["count"]
            assert all(b["batch_size"] >= 1 and b["compute_infer"]["count"] >= 1 for b in stat["batch_stats"])
        assert requests.get(f"{server.url}/v2/models/iris/versions/9/stats", headers=h, timeout=10).status_code == 404
        cfg = requests.get(f"{server.url}/v2/models/iris/versions/1/config", headers=h, timeout=10)
        assert cfg.status_code == 200 and cfg.json()["name"] == "iris", cfg.text
    finally:
        server.stop()
