#!/usr/bin/env bash
# Debian's PyTorch (python3-torch, 1.13 with OpenBLAS) for the bench's plain-PyTorch comparisons; idempotent.
set -euo pipefail
if python3 -c "import torch" 2>/dev/null; then exit 0; fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-torch python3-numpy >/dev/null
python3 -c "import torch; print('python3-torch', torch.__version__)"
