#!/usr/bin/env bash
# Installs the MLflow UI (the built web app inside the `mlflow` wheel,
# mlflow/server/js/build, Apache-2.0) into ./.mlflow-ui, where `slipway up`
# finds it. Only the wheel's files, without its dependencies (--no-deps), and
# into its own directory, so the project's .venv (mlflow-skinny for the
# interop tests) is left as it is. Idempotent and quiet when already there.
# Uses .venv/bin/python when present, else python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=3.17.2
target="$root/.mlflow-ui"
build="$target/mlflow/server/js/build"
stamp="$target/.mlflow-version"
if [ -f "$build/index.html" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
echo "==> installing the MLflow UI (mlflow==$version, web app only) into .mlflow-ui" >&2
rm -rf "$target.tmp"
"$py" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
  --target "$target.tmp" "mlflow==$version"
[ -f "$target.tmp/mlflow/server/js/build/index.html" ] || {
  echo "mlflow==$version has no mlflow/server/js/build/index.html" >&2
  exit 1
}
echo "$version" > "$target.tmp/.mlflow-version"
rm -rf "$target"
mv "$target.tmp" "$target"
