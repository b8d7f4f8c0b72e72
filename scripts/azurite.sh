#!/usr/bin/env bash
# Azurite (the Azure Storage emulator, from npm) for the tests and for running the Functions app locally.
#
#   scripts/azurite.sh install            install the version pinned by package.json/package-lock.json
#                                         into .tools/azurite (idempotent; quick when already there)
#   scripts/azurite.sh path               print the azurite executable (installs first if needed)
#   scripts/azurite.sh start [DIR]        run Azurite in the foreground on the default ports 10000-10002
#                                         (data in DIR, default .tools/azurite-data): what
#                                         UseDevelopmentStorage=true connects to
#   scripts/azurite.sh child PID ARGS...  run Azurite with ARGS until process PID ends (the test fixture
#                                         uses this so an Azurite never outlives a killed test run)
#
# Needs Node 20+ and npm. The flags matter: without --skipApiVersionCheck the Azure.Storage.Blobs 12.30
# client is refused; without --disableTelemetry Azurite ignores SIGTERM.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.tools/azurite"
bin="$prefix/node_modules/.bin/azurite"
flags=(--silent --skipApiVersionCheck --disableTelemetry)

installed() {
  # Installed from the current lock file, and the executable is there.
  [[ -x "$bin" ]] && cmp -s "$root/package-lock.json" "$prefix/package-lock.json" \
    && cmp -s "$root/package.json" "$prefix/package.json"
}

install() {
  installed && return 0
  command -v npm >/dev/null || { echo "azurite.sh: npm is not installed (Node 20+ with npm is needed for Azurite)" >&2; exit 1; }
  mkdir -p "$prefix"
  # One installer at a time: two test runs on a fresh machine may both get here.
  exec 9>"$prefix.lock"
  flock 9
  if ! installed; then
    echo "azurite.sh: installing Azurite into $prefix (npm ci)" >&2
    rm -rf "$prefix/node_modules"
    cp "$root/package.json" "$root/package-lock.json" "$prefix/"
    if ! (cd "$prefix" && npm ci --no-audit --no-fund --loglevel=error >&2); then
      rm -f "$prefix/package-lock.json"  # not installed: the next call tries again
      echo "azurite.sh: npm ci failed; is the npm registry reachable?" >&2
      exit 1
    fi
    [[ -x "$bin" ]] || { echo "azurite.sh: npm ci finished but $bin is missing" >&2; exit 1; }
  fi
  flock -u 9
}

case "${1:-}" in
  install)
    install
    ;;
  path)
    install
    echo "$bin"
    ;;
  start)
    install
    data="${2:-$root/.tools/azurite-data}"
    mkdir -p "$data"
    exec "$bin" "${flags[@]}" --location "$data" --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1
    ;;
  child)
    [[ $# -ge 2 ]] || { echo "usage: azurite.sh child PID AZURITE-ARGS..." >&2; exit 2; }
    watched="$2"
    shift 2
    [[ -x "$bin" ]] || { echo "azurite.sh: Azurite is not installed; run scripts/azurite.sh install" >&2; exit 1; }
    "$bin" "$@" &
    child=$!
    trap 'kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT HUP
    while kill -0 "$watched" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
    if kill -0 "$child" 2>/dev/null; then
      kill "$child" 2>/dev/null || true
      wait "$child" 2>/dev/null || true
      exit 0
    fi
    wait "$child"  # Azurite ended by itself: pass its exit code on
    ;;
  *)
    echo "usage: scripts/azurite.sh install | path | start [DIR] | child PID ARGS..." >&2
    exit 2
    ;;
esac
