#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tests
# (tests/live/test_browser.py drives it through Playwright with executable_path; Playwright's
# own browser download is never used). Installs the `chromium` package when missing, as
# root or with ALLOW_INSTALL=1 and sudo; otherwise fails with a message that says what to do.
set -euo pipefail

CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
[ -x "$CHROMIUM_PATH" ] && exit 0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ "$(id -u)" != 0 ] && [ "${ALLOW_INSTALL:-0}" != 1 ]; then
  echo "ensure-chromium: $CHROMIUM_PATH is missing; run 'apt-get install chromium' or rerun with ALLOW_INSTALL=1" >&2
  exit 1
fi
echo "ensure-chromium: installing Debian's chromium package"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
[ -x "$CHROMIUM_PATH" ] || { echo "ensure-chromium: chromium installed but $CHROMIUM_PATH is not there" >&2; exit 1; }
echo "ensure-chromium: $("$CHROMIUM_PATH" --version 2>/dev/null || echo chromium) is ready"
