#!/usr/bin/env bash
# Wheels for a GPU machine with its own CUDA PyTorch and no package registry (for example a
# lent benchmark machine): the packages langmerge's trainer and merger import that such an
# image lacks or holds at another version, at uv.lock's versions, for CPython 3.12 on x86-64.
# torch, accelerate, safetensors, tokenizers, huggingface-hub and numpy stay the image's own.
#   bash hack/offline_wheels.sh [DIR]    (default .whl), then on that machine:
#   LANGMERGE_PYTHON=python3 LANGMERGE_WHEELS=.whl bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=${1:-.whl}
PACKAGES=(transformers peft pydantic pydantic-core annotated-types typing-inspection
  typing-extensions regex)

locked_version() {  # the version uv.lock pins for package $1
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' uv.lock
}

mkdir -p "$DIR"
requirements=()
for package in "${PACKAGES[@]}"; do
  version=$(locked_version "$package")
  [ -n "$version" ] || { echo "uv.lock pins no $package" >&2; exit 1; }
  requirements+=("$package==$version")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$DIR" "${requirements[@]}"
ls "$DIR"
