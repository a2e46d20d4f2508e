#!/usr/bin/env bash
# Makes sure `promtool` (Prometheus' rule checker and rule unit-test runner,
# used by deploy/check-monitoring) is on PATH: installs Debian's `prometheus`
# package when it is missing. Needs root for the install; idempotent, and
# returns at once when promtool is there. Prints nothing but errors.
#
# The package's maintainer scripts would start the Prometheus service. Where
# no /usr/sbin/policy-rc.d says otherwise (most container images have one),
# a temporary one that refuses every start is put in place for the install
# and removed afterwards, so no server is left running in a container or on
# a developer's machine.
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0

log=$(mktemp)
policy=/usr/sbin/policy-rc.d
made_policy=false
cleanup() {
  if $made_policy; then rm -f "$policy"; fi
  rm -f "$log"
}
trap cleanup EXIT
fail() {
  echo "ensure-promtool: $*" >&2
  tail -n 30 "$log" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "promtool is missing and installing the prometheus package needs root"
command -v apt-get >/dev/null 2>&1 || fail "promtool is missing and apt-get is not available"
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# ensure-promtool.sh: no service starts during the install.\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=true
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -qq --no-install-recommends prometheus >>"$log" 2>&1; }
install || { apt-get update -qq >>"$log" 2>&1 && install; } || fail "apt-get install prometheus failed"
command -v promtool >/dev/null 2>&1 || fail "the prometheus package is installed but promtool is not on PATH"
