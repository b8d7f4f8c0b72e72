#!/usr/bin/env bash
# Compiles the Bicep templates (infra/) with the Bicep CLI from NuGet, so that CI catches errors in them.
#
#   scripts/bicep.sh          build (and lint) infra/*.bicep and infra/*.bicepparam into .tools/bicep/out;
#                             exits non-zero on any error or warning
#   scripts/bicep.sh path     print the bicep executable (restores it first if needed)
#   scripts/bicep.sh run ARGS run the bicep CLI with ARGS
#
# The CLI is the NuGet package Azure.Bicep.CommandLine.linux-x64 (pinned below), restored by `dotnet restore` of a
# throw-away tools project into .tools/bicep/packages: no other download. The Functions tests run this script
# (tests/LoraHub.Functions.Tests/InfraTests.cs, with BICEP set to the same package restored along with the tests),
# so the README's test command and CI compile the Bicep.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="0.49.2"
tools="$root/.tools/bicep"
exe="$tools/packages/azure.bicep.commandline.linux-x64/$version/tools/bicep"

# BICEP=/path/to/bicep uses that CLI (the tests pass the copy restored with them) instead of restoring one.
if [[ -n "${BICEP:-}" ]]; then
  exe="$BICEP"
  [[ -f "$exe" && ! -x "$exe" ]] && chmod +x "$exe"
fi

restore() {
  [[ -x "$exe" ]] && return 0
  [[ -n "${BICEP:-}" ]] && { echo "bicep.sh: BICEP=$BICEP is not an executable file" >&2; exit 1; }
  mkdir -p "$tools"
  exec 9>"$tools.lock"
  flock 9
  if [[ ! -x "$exe" ]]; then
    # Empty Directory.Build.* / Directory.Packages.props stop MSBuild from importing the repository's own.
    echo '<Project />' > "$tools/Directory.Build.props"
    echo '<Project />' > "$tools/Directory.Build.targets"
    echo '<Project />' > "$tools/Directory.Packages.props"
    cat > "$tools/bicep-tools.csproj" <<PROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net10.0</TargetFramework>
    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
  </PropertyGroup>
  <ItemGroup>
    <PackageDownload Include="Azure.Bicep.CommandLine.linux-x64" Version="[$version]" />
  </ItemGroup>
</Project>
PROJ
    echo "bicep.sh: restoring Azure.Bicep.CommandLine.linux-x64 $version into $tools/packages" >&2
    dotnet restore "$tools/bicep-tools.csproj" --packages "$tools/packages" --nologo -v quiet >&2
    chmod +x "$exe"
  fi
  flock -u 9
  [[ -x "$exe" ]] || { echo "bicep.sh: $exe is missing after the restore" >&2; exit 1; }
}

case "${1:-build}" in
  path)
    restore
    echo "$exe"
    ;;
  run)
    shift
    restore
    exec "$exe" "$@"
    ;;
  build)
    restore
    out="$tools/out"
    mkdir -p "$out"
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    status=0
    for template in "$root"/infra/*.bicep; do
      "$exe" build "$template" --outdir "$out" 2>>"$log" || status=1 # runs the linter too
    done
    for params in "$root"/infra/*.bicepparam; do
      [[ -e "$params" ]] || continue
      "$exe" build-params "$params" --outfile "$out/$(basename "${params%.bicepparam}").parameters.json" 2>>"$log" || status=1
    done
    cat "$log" >&2
    if [[ $status -ne 0 ]] || grep -qiE ': (error|warning) ' "$log"; then
      echo "bicep.sh: infra/ does not compile cleanly" >&2
      exit 1
    fi
    echo "bicep.sh: infra/ compiles ($("$exe" --version)); ARM JSON in $out"
    ;;
  *)
    echo "usage: scripts/bicep.sh [build] | path | run ARGS..." >&2
    exit 2
    ;;
esac
