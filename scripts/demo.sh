#!/usr/bin/env bash
# The project's main job (README): builds the `lorahub` command and runs the toy-hub demo on local folders.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/LoraHub.Cli -c Release -v quiet -nologo >&2   # stdout stays the demo's own output
exec dotnet src/LoraHub.Cli/bin/Release/net10.0/lorahub.dll demo "$@"
