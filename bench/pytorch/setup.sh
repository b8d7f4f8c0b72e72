#!/usr/bin/env bash
# Debian's PyTorch (python3-torch 1.13) with OpenBLAS, at /usr/bin/python3 (a pyenv python3 earlier on PATH does not
# see it), for the bench's plain-PyTorch comparison; idempotent. Without libopenblas0 (a Recommends, skipped by
# --no-install-recommends) torch falls back to the reference BLAS and one T5 evaluation took 284 s instead of ~8.
set -euo pipefail
if /usr/bin/python3 -c "import torch" 2>/dev/null && dpkg -s libopenblas0-pthread >/dev/null 2>&1; then exit 0; fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-torch libopenblas0-pthread >/dev/null
/usr/bin/python3 -c "import torch; print('python3-torch', torch.__version__)"
