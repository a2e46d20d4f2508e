"""kill -9 during a backup leaves nothing that `backup list`, `verify` or `restore` accepts as
complete, and the next backup succeeds. The backup is slowed with --max-rate so the kill lands
while artifacts are being copied (after the metadata parts are written, before the manifest)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from opslib import server, slipway, slipway_json, wait_for
from slipway_testlib import ARTIFACTS_API, auth_headers, new_admin_token, slipway_bin

import requests


@pytest.mark.parametrize("where", ["local", "s3"])
def test_kill_9_mid_backup(env, tmp_path, where):
    token = new_admin_token()
    src = server(tmp_path / "src", token, demo=True)
    try:
        # a 24 MB artifact: at 6 MiB/s its copy takes about 4 s
        r = requests.put(f"{src.url}{ARTIFACTS_API}/0/big/artifacts/big.bin", data=b"\x07" * (24 << 20),
                         headers=auth_headers(token), timeout=120)
        r.raise_for_status()
    finally:
        src.stop()
    dest = str(tmp_path / "backups") if where == "local" else env.new_s3_root("crash")
    proc = subprocess.Popen([str(slipway_bin()), "backup", "create", "--to", dest, "--data-dir", str(src.data_dir),
                             "--max-rate", "6MiB"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def started_copying():
            out = slipway_json("backup", "list", dest) if _exists(dest) else {"backups": []}
            return out["backups"] if out["backups"] else None

        wait_for(started_copying, timeout=30, what="the backup to start writing")
        time.sleep(1.0)
        assert proc.poll() is None, "the backup finished before the kill; slow it down further"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    listed = slipway_json("backup", "list", dest)["backups"]
    assert len(listed) == 1 and listed[0]["complete"] is False, listed
    killed = listed[0]["backup_id"]
    text = slipway("backup", "list", dest).stdout
    assert "incomplete" in text, text

    for args in (["backup", "restore", dest], ["backup", "restore", f"{dest}/backups/{killed}"]):
        r = slipway(*args, "--data-dir", str(tmp_path / "target"), check=False)
        assert r.returncode != 0, r.stdout
        assert ("no complete backup" in r.stderr) or ("incomplete" in r.stderr), r.stderr
    r = slipway("backup", "verify", f"{dest}/backups/{killed}", check=False)
    assert r.returncode != 0 and "incomplete" in r.stderr, r.stderr

    # The next backup succeeds and is the one restores use.
    done = slipway_json("backup", "create", "--to", dest, "--data-dir", str(src.data_dir))
    listed = slipway_json("backup", "list", dest)["backups"]
    assert sorted((b["backup_id"], b["complete"]) for b in listed) == sorted([(killed, False), (done["backup_id"], True)])
    restored = slipway_json("backup", "restore", dest, "--data-dir", str(tmp_path / "target"))
    assert restored["backup_id"] == done["backup_id"]
    assert slipway_json("backup", "verify", dest)["ok"]


def _exists(dest: str) -> bool:
    return dest.startswith("s3://") or Path(dest).is_dir()
