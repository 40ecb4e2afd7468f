#!/bin/sh
# Install a headless browser for tests/test_dashboard.py (the asv dashboard opened
# offline): Debian's chromium and chromium-driver, when either is missing. Never
# fatal: without them that test fails with the command to run.
have() { command -v "$1" >/dev/null 2>&1; }
{ have chromium || have chromium-browser || have google-chrome; } && have chromedriver && exit 0
have apt-get || { echo "browser: no apt-get; install chromium and its chromedriver (same version) and put both on PATH"; exit 0; }
if [ "$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "browser: not root; install the dashboard test's browser with: sudo apt-get install chromium chromium-driver"; exit 0; fi
echo "browser: installing Debian packages chromium chromium-driver (the dashboard test opens the asv pages headless)"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || {
  $SUDO apt-get update -qq >/dev/null 2>&1
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 ||
    echo "browser: apt-get install chromium chromium-driver failed; tests/test_dashboard.py will fail until they are installed"; }
exit 0
