#!/usr/bin/env bash
# Makes sure Chromium is installed for the browser tests (test/api/sso/browser.integration.test.ts):
# Debian's `chromium` package, which playwright-core drives (it never downloads a browser itself).
# Does nothing when the browser is already there. Safe to run again.
set -euo pipefail

chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$chromium" ]; then
  exit 0
fi
if [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "error: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: no Chromium at $chromium and no apt-get: install Chromium and set CHROMIUM_PATH" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
echo "==> installing chromium (Debian package)"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
"$chromium" --version
