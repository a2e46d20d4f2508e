#!/usr/bin/env bash
# Makes sure the browser tests (tests/browser) have Debian's headless browser
# and its WebDriver: installs the `chromium` and `chromium-driver` packages
# when /usr/bin/chromium or /usr/bin/chromedriver is missing. Idempotent.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
echo "ensure-chromium: installing chromium and chromium-driver from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq >&2
"${sudo_cmd[@]}" apt-get install -y -qq chromium chromium-driver >&2
