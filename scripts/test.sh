#!/usr/bin/env bash
# The whole test suite: Rust tests (both metadata stores, both artifact
# stores) and the interoperability tests with the real Python clients, run on
# SQLite + local directory and on PostgreSQL + S3 (SeaweedFS).
# Installs what it needs: the Python venv (.venv), PostgreSQL if absent, and
# cargo-nextest if absent (falls back to cargo test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
step() { printf '\n==> %s\n' "$*"; }

step "python environment"
scripts/setup-python.sh

step "postgresql"
eval "$(scripts/ensure-postgres.sh)"

step "s3 (SeaweedFS)"
eval "$(scripts/start-s3.sh)"
cleanup() { eval "${SLIPWAY_S3_STOP:-true}" || true; }
trap cleanup EXIT

step "build"
cargo build --locked --workspace --all-targets

status=0
step "rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast || status=1
else
  cargo test --locked --workspace --no-fail-fast || status=1
fi

export SLIPWAY_BIN="$root/target/debug/slipway"
rm -rf "$root/target/interop-logs"
py="$root/.venv/bin/python"

step "interop tests: SQLite + local directory"
"$py" -m pytest tests/interop -q -p no:cacheprovider || status=1

step "interop tests: PostgreSQL + S3"
db="slipway_interop_$(date +%s)_$$"
psql "$SLIPWAY_TEST_POSTGRES_URL" -qAtc "CREATE DATABASE $db" >/dev/null
pg_url=$("$py" - "$SLIPWAY_TEST_POSTGRES_URL" "$db" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
)
SLIPWAY_METADATA_URL="$pg_url" SLIPWAY_ARTIFACT_ROOT="s3://$SLIPWAY_TEST_S3_BUCKET/interop-$$" \
  "$py" -m pytest tests/interop -q -p no:cacheprovider || status=1
for d in $db $(psql "$SLIPWAY_TEST_POSTGRES_URL" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'slw\_t\_%'"); do
  psql "$SLIPWAY_TEST_POSTGRES_URL" -qAtc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null || true
done

if [ "$status" -ne 0 ]; then
  for f in "$root"/target/interop-logs/*.log; do
    [ -f "$f" ] || continue
    step "server log $f (tail)"
    tail -n 60 "$f"
  done
  step "FAILED"
else
  step "all tests passed"
fi
exit "$status"
