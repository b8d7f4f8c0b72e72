#!/usr/bin/env bash
# Mutation testing with Stryker.NET (docs/mutation-testing.md). Not part of ./scripts/test.sh: a run takes minutes
# to an hour on a loaded machine. Usage:
#   scripts/mutation.sh [core|functions|storage] [file-or-glob …]
#     files are relative to the source project (Lora/MergedAdapter.cs, 'Tensors/*.cs', Requests/ExampleIntake.cs);
#     none: the project's default set below. Scope runs to a few files: every mutant is one more test run.
#   MUTATION_TESTS='FullyQualifiedName~.Lora.'  the tests Stryker runs (overrides the config's test-case-filter);
#                                               with perTest coverage each mutant runs only the tests that reach it.
#   MUTATION_CONCURRENCY=2                       test processes in parallel (default 1: the machine is shared).
#   MUTATION_COVERAGE=all                        every mutant runs every selected test (default perTest: only the
#                                               tests that reached it). perTest scores are lower bounds: it
#                                               reports survivors that the selected tests kill (a cached object's
#                                               construction is credited to the one test that built it first,
#                                               and some mutants get no coverage recorded at all). Give final
#                                               numbers from an `all` run with a tight MUTATION_TESTS.
#   MUTATION_TEST_PROJECT=tests/LoraHub.Experiments.Tests
#                                               run another project's tests against the same source project
#                                               (CharTokenizer's tests live beside the toy worlds that use it).
# Settings common to every run are in tests/<Project>/stryker-config.json. Reports (HTML + JSON) go to
# .mutation/<project>/<time>-<files>/reports/; the score and wall time are printed and appended to .mutation/runs.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

which="${1:-core}"
[ $# -gt 0 ] && shift
# What is never mutated, and why (the --mutate list is given here, not in the configs: Stryker does not combine a
# command line list with the config's):
#   Optimization/Cobyla.cs   a port of Powell's COBYLA checked step by step against recorded reference traces
#   Composition/Report.cs    a chart: colours, labels and layout; ReportTests check the image, not its styling
#   Toy/, Training/, Evaluation/  applications and training loops, measured by their slow end-to-end tests
case "$which" in
  core)
    tests=tests/LoraHub.Core.Tests
    defaults=('**/Lora/*.cs' '**/Composition/*.cs' '**/Tensors/*.cs' '**/Optimization/*.cs')
    excludes=('!**/Optimization/Cobyla.cs' '!**/Composition/Report.cs'
      '!**/Toy/**/*.cs' '!**/Training/**/*.cs' '!**/Evaluation/**/*.cs') ;;
  functions)
    tests=tests/LoraHub.Functions.Tests
    defaults=('**/Requests/*.cs' '**/Activities/*.cs')
    excludes=() ;;
  storage)
    tests=tests/LoraHub.Storage.Tests
    defaults=('**/*.cs')
    excludes=() ;;
  *) echo "mutation.sh: unknown project '$which' (core, functions or storage)" >&2; exit 2 ;;
esac
if [ "$which" != core ]; then bash scripts/azurite.sh install; fi
config="$root/$tests/stryker-config.json"
tests="${MUTATION_TEST_PROJECT:-$tests}"

dotnet tool restore >/dev/null

args=(--config-file "$config" --skip-version-check --concurrency "${MUTATION_CONCURRENCY:-1}")
label=default
if [ $# -gt 0 ]; then
  label=$(printf '%s+' "$@" | tr '/*' '_x' | cut -c1-60)
  label=${label%+}
  for f in "$@"; do args+=(--mutate "**/$f"); done
else
  for f in "${defaults[@]}"; do args+=(--mutate "$f"); done
fi
for f in ${excludes[@]+"${excludes[@]}"}; do args+=(--mutate "$f"); done
if [ -n "${MUTATION_TESTS:-}" ]; then args+=(--test-case-filter "$MUTATION_TESTS"); fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$root/.mutation/$which/$stamp-$label"
mkdir -p "$out"
if [ -n "${MUTATION_COVERAGE:-}" ]; then
  # coverage-analysis is a config setting only (no command line option): run from a copy that changes it.
  python3 - "$config" "$out/stryker-config.json" "$MUTATION_COVERAGE" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["stryker-config"]["coverage-analysis"] = sys.argv[3]
json.dump(config, open(sys.argv[2], "w"), indent=2)
PY
  args[1]="$out/stryker-config.json"
fi
start=$(date +%s)
status=0
(cd "$tests" && dotnet stryker "${args[@]}" --output "$out") || status=$?
seconds=$(( $(date +%s) - start ))
score=$(python3 - "$out" <<'PY' 2>/dev/null || echo "no report"
import json, sys, glob
report = json.load(open(glob.glob(sys.argv[1] + "/reports/*.json")[0]))
killed = survived = nocov = 0
for f in report["files"].values():
    for m in f["mutants"]:
        s = m["status"]
        if s in ("Killed", "Timeout"): killed += 1
        elif s == "Survived": survived += 1
        elif s == "NoCoverage": nocov += 1
total = killed + survived + nocov
print(f"{100 * killed / total:.1f}% ({killed} killed, {survived} survived, {nocov} no coverage)" if total else "no mutants")
PY
)
mkdir -p "$root/.mutation"
printf '%s\t%s\t%s\t%ss\t%s\n' "$stamp" "$which" "${*:-default}" "$seconds" "$score" >> "$root/.mutation/runs.tsv"
echo "mutation.sh: $which ${*:-default}: $score in ${seconds}s; report $out/reports/mutation-report.html"
exit $status
