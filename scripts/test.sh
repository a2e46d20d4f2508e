#!/usr/bin/env bash
# The whole test suite: Rust tests (both metadata stores, both artifact
# stores) and the interoperability tests with the real Python clients, run on
# SQLite + local directory and on PostgreSQL + S3 (SeaweedFS), and the browser
# tests of the web UI once (SQLite).
# Installs what it needs: the Python venv (.venv), PostgreSQL if absent, and
# cargo-nextest if absent (falls back to cargo test); for the browser tests
# Debian's chromium + chromium-driver, Selenium and the MLflow UI (.mlflow-ui).
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

# ---- Test figures (target/test-figures/): this run's only; printed at the end -----------
rm -rf "$root/target/test-figures"

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

step "monitoring assets"
# Prometheus rules and their promtool unit tests, the Grafana dashboard's queries, metric
# names against deploy/prometheus/metrics.json (deploy/check-monitoring, docs/alerts.md).
{ scripts/ensure-promtool.sh && deploy/check-monitoring; } || status=1

# ---- Operations (tests/ops/): backups, restores, migration, recovery: added steps, begin -
step "operations tests: backup, restore, migrate, recovery (SQLite, PostgreSQL, S3)"
mkdir -p "$root/target/ops-results"
"$py" -m pytest tests/ops -q -p no:cacheprovider -rA || status=1
for d in $(psql "$SLIPWAY_TEST_POSTGRES_URL" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'slw\_o\_%'"); do
  psql "$SLIPWAY_TEST_POSTGRES_URL" -qAtc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null || true
done
# ---- Operations: added steps, end ------------------------------------------------------
# ---- Web UI (tests/browser/): added steps, begin ----------------------------------------
step "browser tests: MLflow UI and console in headless Chromium (SQLite)"
# The MLflow UI (mlflow wheel, web app only) into .mlflow-ui, Chromium + driver from Debian,
# Selenium into .venv; then the pages, sign-in rules and console, with screenshots
# (target/browser-screenshots/; SLIPWAY_UPDATE_SCREENSHOTS=1 writes docs/ui/).
rm -rf "$root/target/browser-logs"
if scripts/ensure-mlflow-ui.sh && scripts/ensure-chromium.sh \
  && "$py" -m pip install --quiet --disable-pip-version-check -r tests/browser/requirements.txt; then
  # SQLite + a local directory, whatever the environment says
  if ! env -u SLIPWAY_METADATA_URL -u SLIPWAY_ARTIFACT_ROOT \
    "$py" -m pytest tests/browser -q -p no:cacheprovider; then
    status=1
    [ -f "$root/target/browser-logs/server.log" ] && { step "browser tests: server log (tail)"; tail -n 60 "$root/target/browser-logs/server.log"; }
  fi
else
  echo "browser tests: could not install what they need" >&2
  status=1
fi
# ---- Web UI: added steps, end --------------------------------------------------------

# ---- Kubernetes packaging (deploy/, tests/cluster/): added steps, begin ----------------
step "deploy check"
# Dockerfile lint, chart lint/render/schemas/checkov/negative tests, image smoke (deploy/check).
deploy/check || status=1

step "cluster tests"
# 2 registry + 3 serving processes over one PostgreSQL database and one S3 prefix.
rm -rf "$root/target/cluster-logs"
if ! "$py" -m pytest tests/cluster -q -p no:cacheprovider -rA; then
  status=1
  for f in "$root"/target/cluster-logs/*/*.log; do
    [ -f "$f" ] || continue
    step "cluster member log $f (tail)"
    tail -n 40 "$f"
  done
fi
for d in $(psql "$SLIPWAY_TEST_POSTGRES_URL" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'slw\_c\_%'"); do
  psql "$SLIPWAY_TEST_POSTGRES_URL" -qAtc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null || true
done
# ---- Kubernetes packaging: added steps, end --------------------------------------------

# ---- Test figures: begin ----------------------------------------------------------------
# Measuring tests (connection timeouts; memory and /health/live latency under large bodies)
# write `FIGURES:` lines there; nextest and pytest -q hide a passing test's output.
step "test figures (target/test-figures/)"
cat "$root"/target/test-figures/*.txt 2>/dev/null || echo "no figures were recorded"
# ---- Test figures: end ------------------------------------------------------------------

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
