#!/usr/bin/env bash
# Fuzzes one reader of untrusted files for N minutes (docs/hostile-inputs-publish.md, "Fuzzing").
#   scripts/fuzz.sh TARGET MINUTES [afl|loop]
# TARGET: safetensors, pytorch-bin, examples, spiece, tokenizer-json, config.
# afl (default): AFL++ from Debian (apt-get install afl++) driving SharpFuzz; LoraHub.Core.dll is instrumented with the
#   sharpfuzz tool (NuGet SharpFuzz.CommandLine, installed into .tools/). loop: a plain in-process random-mutation loop
#   (no AFL++, no instrumentation: blind, but runs anywhere .NET does).
# Seeds come from tests/fixtures; findings land in fuzz/findings/TARGET/. Copy each crash that is a real bug into
# tests/fuzz-corpus/TARGET/ (the default test run replays that folder: every file must end in a typed error).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/fuzz.sh TARGET MINUTES [afl|loop]}"
minutes="${2:?usage: scripts/fuzz.sh TARGET MINUTES [afl|loop]}"
mode="${3:-afl}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

out="fuzz/LoraHub.Fuzz/bin/Release/net10.0"
dotnet build fuzz/LoraHub.Fuzz -c Release -v quiet -nologo
work="fuzz/work/$target"
findings="fuzz/findings/$target"
rm -rf "$work/seeds"
mkdir -p "$work" "$findings"
dotnet "$out/LoraHub.Fuzz.dll" seeds "$target" tests/fixtures "$work/seeds"

if [ "$mode" = loop ]; then
  dotnet "$out/LoraHub.Fuzz.dll" loop "$target" "$((minutes * 60))" "$work/seeds" "$findings" "${FUZZ_SEED:-1}"
  exit 0
fi

if ! command -v afl-fuzz >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++
fi
if [ ! -x .tools/sharpfuzz/sharpfuzz ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path .tools/sharpfuzz
fi
# Instrument a private copy of the build output (the build itself stays clean for the tests).
inst="$work/bin"
rm -rf "$inst" && cp -r "$out" "$inst"
.tools/sharpfuzz/sharpfuzz "$inst/LoraHub.Core.dll"

# .NET is not an AFL-compiled binary and starts slowly: skip the binary check; the first runs JIT and load natives,
# so allow FUZZ_TIMEOUT_MS per run (default 30 s; AFL++ calibrates its own tighter limit for later runs only with -t N+).
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1
afl-fuzz -i "$work/seeds" -o "$work/afl" -t "${FUZZ_TIMEOUT_MS:-30000}+" -m none -V "$((minutes * 60))" \
  -- dotnet "$inst/LoraHub.Fuzz.dll" afl "$target" || true
stats="$work/afl/default/fuzzer_stats"
[ -f "$stats" ] && grep -E '^(execs_done|run_time|saved_crashes|saved_hangs|execs_per_sec) ' "$stats"
cp "$work"/afl/default/crashes/id:* "$findings"/ 2>/dev/null || true
echo "findings: $(ls "$findings" | wc -l) file(s) in $findings"
