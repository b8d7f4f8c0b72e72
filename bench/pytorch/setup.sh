#!/usr/bin/env bash
# Debian's PyTorch, at /usr/bin/python3 (a pyenv python3 earlier on PATH does not see it) (python3-torch, 1.13 with OpenBLAS) for the bench's plain-PyTorch comparisons; idempotent.
set -euo pipefail
if /usr/bin/python3 -c "import torch" 2>/dev/null; then exit 0; fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
/usr/bin/python3 -c "import torch; print('python3-torch', torch.__version__)"
