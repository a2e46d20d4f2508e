#!/usr/bin/env bash
# Installs NVIDIA's perf_analyzer (the real client, for the interop tests)
# into .tools/perf_analyzer and prints its path. The binary comes from the
# tritonclient 2.38.0 wheel (the last to ship it on PyPI), its libraries from
# Debian's libb64-0d and the nvidia-cuda-runtime-cu12 wheel (libcudart; no GPU
# is needed for HTTP). Idempotent. Use:
#   PA=$(scripts/ensure-perf-analyzer.sh)   # then: $PA -m iris -u host:port ...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.tools/perf_analyzer"
pip="$root/.venv/bin/python -m pip"
log() { echo "ensure-perf-analyzer: $*" >&2; }
if [ ! -x "$dir/perf_analyzer" ] || [ ! -f "$dir/lib/libcudart.so.12" ]; then
  mkdir -p "$dir/lib" "$dir/dl"
  if ! ldconfig -p 2>/dev/null | grep -q libb64.so.0d; then
    log "installing libb64-0d from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq libb64-0d >&2 || { apt-get update -qq >&2 && apt-get install -y -qq libb64-0d >&2; }
  fi
  log "downloading the tritonclient 2.38.0 wheel (perf_analyzer) and libcudart"
  $pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux1_x86_64 -d "$dir/dl" tritonclient==2.38.0 >&2
  $pip download --quiet --disable-pip-version-check --no-deps -d "$dir/dl" \
    nvidia-cuda-runtime-cu12==12.9.79 >&2
  "$root/.venv/bin/python" - "$dir" <<'PY'
import glob, os, sys, zipfile
d = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{d}/dl/tritonclient-2.38.0-*.whl")[0]) as z:
    data = z.read("tritonclient-2.38.0.data/data/bin/perf_analyzer")
with open(f"{d}/perf_analyzer.bin", "wb") as f:
    f.write(data)
os.chmod(f"{d}/perf_analyzer.bin", 0o755)
with zipfile.ZipFile(glob.glob(f"{d}/dl/nvidia_cuda_runtime_cu12-*.whl")[0]) as z:
    with open(f"{d}/lib/libcudart.so.12", "wb") as f:
        f.write(z.read("nvidia/cuda_runtime/lib/libcudart.so.12"))
PY
  cat > "$dir/perf_analyzer" <<SH
#!/bin/sh
LD_LIBRARY_PATH="$dir/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/perf_analyzer.bin" "\$@"
SH
  chmod +x "$dir/perf_analyzer"
  rm -rf "$dir/dl"
fi
echo "$dir/perf_analyzer"
