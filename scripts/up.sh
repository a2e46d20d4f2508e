#!/usr/bin/env bash
# Quickstart: builds Slipway (release) and starts the whole platform on the
# embedded default (SQLite + a local directory under ./slipway-data) with the
# demo model deployed. Prints the URL, the one-time admin token and a
# ready-to-paste prediction command. Extra arguments go to `slipway up`.
# ONNX Runtime comes from the `onnxruntime` wheel on PyPI, installed into the
# project's .venv, and the MLflow UI from the `mlflow` wheel (web app only)
# into ./.mlflow-ui (nothing is downloaded at run time).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
if ! ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* >/dev/null 2>&1; then
  echo "==> installing ONNX Runtime (onnxruntime wheel) into .venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  ort=$(grep -E '^onnxruntime==' tests/interop/requirements.txt)
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$ort"
fi
scripts/ensure-mlflow-ui.sh
echo "==> building slipway (release)" >&2
cargo build --release --locked -p slipway >&2
exec "${CARGO_TARGET_DIR:-$root/target}/release/slipway" up "$@"
