#!/usr/bin/env bash
# The project's test command (README): restores, builds and runs every test project.
# Services the tests need are started here, so a fresh machine needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
# Spinning OpenMP threads collapse on a shared 2-core machine.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# Azurite (npm, pinned by package-lock.json) for the storage tests: installed into .tools/azurite once; each
# test run starts its own on free ports (tests/Shared/AzuriteFixture.cs).
bash scripts/azurite.sh install
# Headless Chromium (Debian's package; apt-get, skipped when installed) and playwright-core for the watch page's
# browser test, which fails without them.
bash scripts/browser.sh install
dotnet test LoraHub.Functions.sln -c Release --logger "console;verbosity=normal" "$@"
