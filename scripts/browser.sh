#!/usr/bin/env bash
# The browser for the UI test (tests/LoraHub.Functions.Tests/UiPageTests.cs): headless Chromium from Debian's packages,
# driven by playwright-core from npm (pinned by package.json/package-lock.json, installed with Azurite by
# scripts/azurite.sh into .tools/azurite/node_modules).
#
#   scripts/browser.sh install    apt-get install chromium (skipped when /usr/bin/chromium is there) and the npm tools
#   scripts/browser.sh path       print the Chromium executable
#
# apt-get needs root; run as another user it uses sudo when that works without a password, else it fails loudly:
# the UI test fails (it never passes silently) when there is no browser.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
chromium="${CHROMIUM:-/usr/bin/chromium}"

install_chromium() {
  [[ -x "$chromium" ]] && return 0
  local sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if sudo -n true 2>/dev/null; then sudo=(sudo -n); else
      echo "browser.sh: $chromium is missing and apt-get needs root (run: sudo apt-get install -y chromium)" >&2
      exit 1
    fi
  fi
  mkdir -p "$root/.tools"
  # One installer at a time here; apt-get waits for dpkg's lock (another apt-get on the machine) instead of failing.
  exec 8>"$root/.tools/browser.lock"
  flock 8
  if [[ ! -x "$chromium" ]]; then
    echo "browser.sh: installing chromium from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=900 update -qq >&2
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
  fi
  flock -u 8
  [[ -x "$chromium" ]] || { echo "browser.sh: apt-get finished but $chromium is missing" >&2; exit 1; }
}

case "${1:-}" in
  install)
    install_chromium
    bash "$root/scripts/azurite.sh" install   # the npm tools: azurite and playwright-core
    ;;
  path)
    echo "$chromium"
    ;;
  *)
    echo "usage: scripts/browser.sh install | path" >&2
    exit 2
    ;;
esac
