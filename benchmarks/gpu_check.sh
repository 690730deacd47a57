#!/usr/bin/env bash
# Trains and merges on a GPU and prints the figures; under 8 minutes on one H100/H200.
# Run wherever a GPU is available:  bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV=$(command -v uv || echo "$HOME/.local/bin/uv")
[ -x "$UV" ] || python3 -m pip install --user --quiet "uv==0.13.8"
UV_PYTHON_DOWNLOADS=never "$UV" sync --frozen --quiet
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec .venv/bin/python benchmarks/gpu_check.py "$@"
