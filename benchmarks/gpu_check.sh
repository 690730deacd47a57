#!/usr/bin/env bash
# Trains and merges on a GPU and prints the figures; under 8 minutes on one H100/H200.
# Run wherever a GPU is available:  bash benchmarks/gpu_check.sh [--json PATH]
# On a machine with its own CUDA PyTorch and no package registry, name that interpreter and
# the wheels of hack/offline_wheels.sh instead of syncing the locked virtualenv:
#   LANGMERGE_PYTHON=python3 LANGMERGE_WHEELS=.whl bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -n "${LANGMERGE_PYTHON:-}" ]; then
  PYTHON=$LANGMERGE_PYTHON
  if [ -n "${LANGMERGE_WHEELS:-}" ]; then
    site=$(mktemp -d -t langmerge-site-XXXXXX)
    trap 'rm -rf "$site"' EXIT
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target "$site" \
      "$LANGMERGE_WHEELS"/*.whl
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  fi
  # the workspace's packages from source, as the locked virtualenv installs them (editable)
  export PYTHONPATH=$PWD/common/src:$PWD/trainer/src:$PWD/merger/src:$PYTHONPATH
else
  UV=$(command -v uv || echo "$HOME/.local/bin/uv")
  [ -x "$UV" ] || python3 -m pip install --user --quiet "uv==0.13.8"
  UV_PYTHON_DOWNLOADS=never "$UV" sync --frozen --quiet
  PYTHON=.venv/bin/python
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c 'import torch, transformers, peft; print("torch", torch.__version__,
  "transformers", transformers.__version__, "peft", peft.__version__)'
"$PYTHON" benchmarks/gpu_check.py "$@"
