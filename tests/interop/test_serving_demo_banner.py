"""The ``Predict:`` curl line that ``slipway up`` prints for the demo model works when pasted into a
shell exactly as printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from serving_models import start_server_with_demo

pytestmark = pytest.mark.slipway

PREFIX = "  Predict:"


def _predict_command(stdout_lines: list[str]) -> str:
    lines = [line.rstrip("\n") for line in stdout_lines if line.startswith(PREFIX)]
    assert len(lines) == 1, f"expected one '{PREFIX}' line in the banner:\n{''.join(stdout_lines)}"
    cmd = lines[0][len(PREFIX):].strip()
    assert cmd.startswith("curl "), cmd
    return cmd


def _run_printed(cmd: str, env: dict[str, str]) -> dict:
    """Runs the printed line with bash, adding only `-w` to learn the HTTP status."""
    r = subprocess.run(
        ["bash", "-c", cmd + " -w '\\n%{http_code}'"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 0, f"curl exited {r.returncode}: {r.stderr}"
    body, _, code = r.stdout.rpartition("\n")
    assert code == "200", f"HTTP {code}: {body[:300]}"
    out = json.loads(body)
    assert out["model_name"] == "iris" and out["model_version"] == "1", out
    names = {o["name"]: o for o in out["outputs"]}
    assert names["output_label"]["data"] == [0], out  # 5.1,3.5,1.4,0.2 is a setosa (class 0)
    assert names["output_probability"]["shape"] == [1, 3], out
    assert abs(sum(names["output_probability"]["data"]) - 1.0) < 1e-5, out
    return out


@pytest.fixture(scope="module")
def curl_available():
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")


def test_banner_curl_line_with_generated_token(tmp_path, curl_available):
    """Fresh data dir, no SLIPWAY_ADMIN_TOKEN: the banner shows the new token inline; after a
    restart it reads it from the data dir's token file."""
    env = {k: v for k, v in os.environ.items() if k != "SLIPWAY_ADMIN_TOKEN"}
    server = start_server_with_demo(tmp_path / "data", admin_token=None)
    try:
        cmd = _predict_command(server.stdout_lines)
        assert server.url + "/v2/models/iris/infer" in cmd
        _run_printed(cmd, env)
    finally:
        server.stop()
    server = start_server_with_demo(tmp_path / "data", admin_token=None)
    try:
        cmd = _predict_command(server.stdout_lines)
        _run_printed(cmd, env)
    finally:
        server.stop()


def test_banner_curl_line_with_admin_token_env(demo_server, curl_available):
    """Started with SLIPWAY_ADMIN_TOKEN: the line refers to it, so it works in that environment."""
    cmd = _predict_command(demo_server.process.stdout_lines)
    _run_printed(cmd, {**os.environ, "SLIPWAY_ADMIN_TOKEN": demo_server.token})
