#!/usr/bin/env bash
# Starts a throw-away, SigV4-enforcing S3 server (SeaweedFS `weed server`) on
# 127.0.0.1 for tests, and prints shell `export` lines describing it.
#
# Usage:
#   eval "$(scripts/start-s3.sh)"          # start; exports the variables below
#   cargo test -p slipway-artifacts        # tests read them
#   eval "$SLIPWAY_S3_STOP"                # stop the server and delete its data dir
#   # (equivalently: scripts/start-s3.sh --stop "$SLIPWAY_S3_PID" "$SLIPWAY_S3_DIR")
#
# Printed on stdout (nothing else goes to stdout; progress goes to stderr):
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  generated per start; the only identity
#   AWS_REGION, AWS_DEFAULT_REGION            us-east-1
#   AWS_ENDPOINT_URL, SLIPWAY_S3_ENDPOINT     http://127.0.0.1:<port>
#   AWS_ALLOW_HTTP                            true (object_store's from_env reads it)
#   SLIPWAY_TEST_S3_BUCKET                    a bucket created on start
#   SLIPWAY_S3_PID, SLIPWAY_S3_DIR            server process and temp data dir
#   SLIPWAY_S3_STOP                           a command that stops and cleans up
#
# Anonymous access is refused: the S3 config holds a single identity with the
# generated key pair. Every port is a free port picked at start, so several
# servers can run side by side. The server log is "$SLIPWAY_S3_DIR/weed.log".
# Environment knobs: SLIPWAY_S3_BUCKET (bucket name, default "slipway-test"),
# SLIPWAY_S3_START_TIMEOUT (seconds to wait for readiness, default 60).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
self="$root/scripts/start-s3.sh"

# True while $1 is a live process (a zombie counts as gone).
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
  [ "$state" != "Z" ]
}

stop() {
  local pid=$1 dir=$2
  # Only touch what this script started: the pid must be the one recorded in
  # a directory this script created.
  if [ -z "$dir" ] || [ ! -f "$dir/.slipway-s3-test" ]; then
    echo "start-s3.sh: '$dir' is not a directory created by start-s3.sh; nothing stopped" >&2
    return 1
  fi
  if [ "$(cat "$dir/weed.pid" 2>/dev/null)" = "$pid" ] && alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  # weed puts its gRPC unix sockets in /tmp, named by port.
  for port in $(cat "$dir/ports" 2>/dev/null); do
    rm -f /tmp/seaweedfs-*-grpc-"$port".sock
  done
  rm -rf -- "$dir"
}

if [ "${1:-}" = "--stop" ]; then
  stop "${2:-}" "${3:-}"
  exit $?
fi

weed="$root/.venv/bin/weed"
if [ ! -x "$weed" ]; then
  echo "start-s3.sh: $weed missing; running scripts/setup-python.sh" >&2
  "$root/scripts/setup-python.sh" >&2
fi
[ -x "$weed" ] || { echo "start-s3.sh: $weed still missing after setup" >&2; exit 1; }
command -v curl >/dev/null || { echo "start-s3.sh: curl is required" >&2; exit 1; }

python=python3
[ -x "$root/.venv/bin/python" ] && python="$root/.venv/bin/python"

bucket=${SLIPWAY_S3_BUCKET:-slipway-test}
timeout_s=${SLIPWAY_S3_START_TIMEOUT:-60}
region=us-east-1

dir=$(mktemp -d "${TMPDIR:-/tmp}/slipway-s3.XXXXXX")
touch "$dir/.slipway-s3-test"
pid=""
ready=""
# Any failure or interrupt before the server is ready tears everything down.
trap '[ -n "$ready" ] || stop "$pid" "$dir" 2>/dev/null || true' EXIT
mkdir -p "$dir/data"

# Eight distinct free ports on 127.0.0.1 (all sockets held open together so the
# kernel cannot hand out the same one twice).
read -r p_master p_master_grpc p_volume p_volume_grpc p_filer p_filer_grpc p_s3 p_s3_grpc < <(
  "$python" - <<'EOF'
import socket
socks = []
for _ in range(8):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)

echo "$p_master $p_master_grpc $p_volume $p_volume_grpc $p_filer $p_filer_grpc $p_s3 $p_s3_grpc" >"$dir/ports"

access_key="SLIPWAY$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F')"
secret_key=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

cat >"$dir/s3.json" <<EOF
{
  "identities": [
    {
      "name": "slipway-test",
      "credentials": [{ "accessKey": "$access_key", "secretKey": "$secret_key" }],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
chmod 600 "$dir/s3.json"

# setsid: the server survives the shell that eval'd this script and does not
# get the terminal's signals; it is stopped explicitly with SLIPWAY_S3_STOP.
setsid "$weed" server \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -dir="$dir/data" \
  -master.port="$p_master" -master.port.grpc="$p_master_grpc" \
  -master.volumeSizeLimitMB=64 -master.telemetry=false \
  -volume.port="$p_volume" -volume.port.grpc="$p_volume_grpc" -volume.max=0 \
  -filer -filer.port="$p_filer" -filer.port.grpc="$p_filer_grpc" \
  -filer.localSocket="$dir/filer.sock" \
  -s3 -s3.port="$p_s3" -s3.port.grpc="$p_s3_grpc" \
  -s3.port.iceberg=0 -s3.port.lance=0 \
  -s3.localSocket="$dir/s3.sock" \
  -s3.config="$dir/s3.json" \
  >"$dir/weed.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$dir/weed.pid"

endpoint="http://127.0.0.1:$p_s3"
fail() {
  echo "start-s3.sh: $1; last log lines:" >&2
  tail -n 30 "$dir/weed.log" >&2 || true
  stop "$pid" "$dir"
  exit 1
}

# Readiness: the bucket can be created (or already exists) with a signed request.
deadline=$(( $(date +%s) + timeout_s ))
while :; do
  alive "$pid" || fail "weed exited during start-up"
  code=$(curl -s -o "$dir/create-bucket.out" -w '%{http_code}' --max-time 5 \
    --aws-sigv4 "aws:amz:$region:s3" --user "$access_key:$secret_key" \
    -X PUT "$endpoint/$bucket" 2>/dev/null || true)
  if [ "$code" = "200" ] || grep -q BucketAlreadyOwnedByYou "$dir/create-bucket.out" 2>/dev/null; then
    break
  fi
  [ "$(date +%s)" -ge "$deadline" ] && fail "S3 not ready after ${timeout_s}s (last HTTP status: ${code:-none})"
  sleep 0.2
done

# The bucket must be listable with the key, and anonymous access must be refused.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
  --aws-sigv4 "aws:amz:$region:s3" --user "$access_key:$secret_key" "$endpoint/$bucket?list-type=2")
[ "$code" = "200" ] || fail "signed ListObjectsV2 on the new bucket answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$endpoint/$bucket?list-type=2")
case "$code" in
  401 | 403) ;;
  *) fail "anonymous ListObjectsV2 answered $code; SigV4 is not enforced" ;;
esac

ready=1
echo "start-s3.sh: S3 ready at $endpoint (pid $pid, dir $dir, bucket $bucket)" >&2

q() { printf '%q' "$1"; }
cat <<EOF
export AWS_ACCESS_KEY_ID=$(q "$access_key")
export AWS_SECRET_ACCESS_KEY=$(q "$secret_key")
export AWS_REGION=$region
export AWS_DEFAULT_REGION=$region
export AWS_ENDPOINT_URL=$(q "$endpoint")
export AWS_ALLOW_HTTP=true
export SLIPWAY_S3_ENDPOINT=$(q "$endpoint")
export SLIPWAY_TEST_S3_BUCKET=$(q "$bucket")
export SLIPWAY_S3_PID=$pid
export SLIPWAY_S3_DIR=$(q "$dir")
export SLIPWAY_S3_STOP=$(q "$(q "$self") --stop $pid $(q "$dir")")
EOF
