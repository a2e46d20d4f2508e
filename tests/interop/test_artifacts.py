"""Artifacts through the mlflow client and the `mlflow-artifacts` proxy: trees, big files, listing."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import mlflow.artifacts

from slipway_testlib import sha256_file

TREE = {
    "README.txt": b"top-level file\n",
    "empty.bin": b"",
    "with space & symbols+=.txt": b"names with spaces and symbols\n",
    "sub/b.bin": bytes(range(256)) * 64,
    "sub/unicod\u00e9-\u00fc.json": '{"k": "\u00fcn\u00efc\u00f6d\u00e9"}'.encode(),
    "sub/deeper/c.csv": b"a,b\n1,2\n",
    "sub/deeper/deepest/d.txt": b"deep\n" * 1000,
    "other/e.txt": b"e",
}


def _write_tree(root: Path) -> None:
    for rel, data in TREE.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _tree_digests(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out


def test_log_artifacts_tree_list_download(tracking, client, experiment_id, tmp_path):
    src = tmp_path / "src"
    _write_tree(src)
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), artifact_path="tree")
        mlflow.log_artifact(str(src / "README.txt"))  # at the root
    rid = run.info.run_id

    root = {(f.path, f.is_dir) for f in client.list_artifacts(rid)}
    assert root == {("tree", True), ("README.txt", False)}

    listing = {f.path: f for f in client.list_artifacts(rid, "tree")}
    assert set(listing) == {
        "tree/README.txt",
        "tree/empty.bin",
        "tree/with space & symbols+=.txt",
        "tree/sub",
        "tree/other",
    }
    assert listing["tree/sub"].is_dir and listing["tree/other"].is_dir
    assert not listing["tree/README.txt"].is_dir
    assert listing["tree/README.txt"].file_size == len(TREE["README.txt"])
    # MLflow's JSON omits a zero file_size (proto3 default), which the client reads as None.
    assert listing["tree/empty.bin"].file_size in (0, None)

    sub = {f.path: f for f in client.list_artifacts(rid, "tree/sub")}
    assert set(sub) == {"tree/sub/b.bin", "tree/sub/unicod\u00e9-\u00fc.json", "tree/sub/deeper"}
    assert sub["tree/sub/b.bin"].file_size == len(TREE["sub/b.bin"])
    deeper = {f.path for f in client.list_artifacts(rid, "tree/sub/deeper/")}
    assert deeper == {"tree/sub/deeper/c.csv", "tree/sub/deeper/deepest"}

    # Whole directory download.
    dst = tmp_path / "dl"
    local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="tree", dst_path=str(dst))
    assert _tree_digests(Path(local)) == _tree_digests(src)
    # A single nested file.
    one = mlflow.artifacts.download_artifacts(
        run_id=rid, artifact_path="tree/sub/deeper/deepest/d.txt", dst_path=str(tmp_path / "one")
    )
    assert Path(one).read_bytes() == TREE["sub/deeper/deepest/d.txt"]
    # Everything, through the run's artifact URI.
    everything = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_run(rid).info.artifact_uri, dst_path=str(tmp_path / "all")
    )
    assert (Path(everything) / "README.txt").read_bytes() == TREE["README.txt"]
    assert (Path(everything) / "tree" / "sub" / "b.bin").read_bytes() == TREE["sub/b.bin"]

    # Listing a path that does not exist is an empty listing, as in MLflow.
    assert client.list_artifacts(rid, "no/such/dir") == []


def test_large_binary_artifact_roundtrip(tracking, client, experiment_id, tmp_path):
    size = 50 * 1024 * 1024 + 12345  # > 50 MB, not a multiple of any chunk size
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, 4 << 20)
            f.write(os.urandom(n))
            remaining -= n
    want = sha256_file(big)

    rid = client.create_run(experiment_id).info.run_id
    client.log_artifact(rid, str(big), artifact_path="blobs")
    listed = client.list_artifacts(rid, "blobs")
    assert [(f.path, f.is_dir, f.file_size) for f in listed] == [("blobs/big.bin", False, size)]

    local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="blobs/big.bin", dst_path=str(tmp_path / "dl"))
    assert os.path.getsize(local) == size
    assert sha256_file(local) == want


def test_overwrite_artifact(tracking, client, experiment_id, tmp_path):
    rid = client.create_run(experiment_id).info.run_id
    f = tmp_path / "v.txt"
    f.write_bytes(b"first version, longer than the second\n")
    client.log_artifact(rid, str(f))
    f.write_bytes(b"second\n")
    client.log_artifact(rid, str(f))
    local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="v.txt", dst_path=str(tmp_path / "dl"))
    assert Path(local).read_bytes() == b"second\n"
    assert [(a.path, a.file_size) for a in client.list_artifacts(rid)] == [("v.txt", 7)]
