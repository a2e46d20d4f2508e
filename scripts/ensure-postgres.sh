#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable for the tests and prints
#   export SLIPWAY_TEST_POSTGRES_URL=postgres://...
# Use: eval "$(scripts/ensure-postgres.sh)"
# Order: an explicit SLIPWAY_TEST_POSTGRES_URL that answers; the local server on
# 127.0.0.1:5432 (started if installed but stopped); otherwise Debian's
# postgresql package is installed and started. When the server does not trust
# local TCP connections, a test role with a random password is created.
set -euo pipefail
log() { echo "ensure-postgres: $*" >&2; }

can_connect() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

if [ -n "${SLIPWAY_TEST_POSTGRES_URL:-}" ] && command -v psql >/dev/null && can_connect "$SLIPWAY_TEST_POSTGRES_URL"; then
  echo "export SLIPWAY_TEST_POSTGRES_URL='$SLIPWAY_TEST_POSTGRES_URL'"
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-client >&2
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  log "starting the local PostgreSQL cluster"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
    if ! pg_lsclusters -h 2>/dev/null | grep -q "^$ver"; then
      pg_createcluster "$ver" main >&2 || true
    fi
    pg_ctlcluster "$ver" main start >&2 || service postgresql start >&2 || true
  else
    service postgresql start >&2 || true
  fi
  for _ in $(seq 1 60); do
    pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break
    sleep 0.5
  done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { log "PostgreSQL did not become ready on 127.0.0.1:5432"; exit 1; }

for url in "postgres://postgres@127.0.0.1:5432/postgres" "postgres://root@127.0.0.1:5432/postgres"; do
  if can_connect "$url"; then
    echo "export SLIPWAY_TEST_POSTGRES_URL='$url'"
    exit 0
  fi
done

# No trusted TCP login: create a test role with a random password via the local socket.
pw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
run_psql() { if [ "$(id -u)" = 0 ]; then su postgres -c "psql -qAt -c \"$1\"" >&2; else psql -qAt -c "$1" >&2; fi; }
run_psql "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='slipway_test') THEN CREATE ROLE slipway_test LOGIN CREATEDB; END IF; END \$\$;"
run_psql "ALTER ROLE slipway_test WITH LOGIN CREATEDB PASSWORD '$pw';"
url="postgres://slipway_test:$pw@127.0.0.1:5432/postgres"
can_connect "$url" || { log "cannot connect as slipway_test"; exit 1; }
echo "export SLIPWAY_TEST_POSTGRES_URL='$url'"
