# litforge: every command a user needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
POETRY := $(shell [ -x .tools/poetry/bin/poetry ] && echo .tools/poetry/bin/poetry || command -v poetry)
PROJECTS := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard projects/*/pyproject.toml)))))
# Every package's and project's tests/ (an empty one is not in a git clone: left out) and tests/.
TEST_DIRS := $(wildcard packages/*/tests $(addsuffix /tests,$(addprefix projects/,$(PROJECTS))) tests)
# Extra arguments for training, e.g. make train-cifar10 ARGS="--trainer.max_epochs=5"
ARGS ?=
DATA ?=

.PHONY: help init lock test test-all test-dirs quality style clean new-project bench bench-gpu bench-stream _venv
.PHONY: docs docs-serve docs-images

help: ## list the targets
	@echo "litforge: make <target>"
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-18s %s\n", $$1, $$2}'
	@echo "projects: $(PROJECTS)"

init: ## set everything up: poetry, .venv from poetry.lock, pre-commit hooks (Python >= 3.11)
	@PYTHON=$(PYTHON) bash scripts/init.sh

lock: ## after editing dependencies in any pyproject.toml: poetry lock, then .venv from the new lock
	@PYTHON=$(PYTHON) bash scripts/init.sh --lock

_venv:
	@[ -x $(PY) ] || { echo "error: no .venv here; run 'make init' first" >&2; exit 1; }

# Two test processes with one thread each: two processes of two threads on two cores would
# oversubscribe the CPU, which slows torch's kernels many times over.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# DIR=<folder>: only the tests of one package or project (its tests/) or of tests/: CI's matrix.
DIR ?=
SELECTED = $(if $(DIR),$(if $(wildcard $(DIR)/tests),$(DIR)/tests,$(DIR)),$(TEST_DIRS))
# pytest exits with 5 when it selected no test. That passes only where there is no test file at
# all (a new project without tests yet: said, not failed); where test files are, it fails: their
# tests were not collected, or the marker deselected every one. Any other failure fails too.
define run_tests
	@for d in $(SELECTED); do [ -d "$$d" ] || { echo "error: no folder $$d" >&2; exit 2; }; done; \
	echo "pytest $(1) $(SELECTED)"; \
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadfile -q $(1) $(SELECTED); rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  files=$$(find $(SELECTED) -name 'test_*.py' -o -name '*_test.py' | head -3 | tr '\n' ' '); \
	  if [ -z "$$files" ]; then echo "note: no tests in $(SELECTED) yet: nothing to run"; rc=0; \
	  else echo "error: pytest selected no test in $(SELECTED), which has test files ($$files...)" >&2; fi; \
	fi; exit $$rc
endef

test: _venv ## the fast tier (tests not marked slow; 83 s on 2 cores) [DIR=projects/foo]
	$(call run_tests,-m "not slow")

test-all: _venv ## every test, the slow ones too (DDP, signals, real data): what CI runs [DIR=...]
	$(call run_tests,)

test-dirs: ## the test folders, one a line: one CI job each (.github/workflows/ci.yml)
	@printf '%s\n' $(TEST_DIRS)

test-%: _venv ## a project's tests and the shared ones for it (make test-cifar10; by path), else those whose names match: make test-extremes
	$(TEST_ENV) $(PY) -m pytest -q $(if $(wildcard projects/$*/.),$(wildcard projects/$*/tests) tests --project="$*",$(TEST_DIRS) -k "$*")

test-pdb-%: _venv ## the same, stopping in the debugger at the first failure
	$(PY) -m pytest -q $(TEST_DIRS) -k "$*" --pdb -p no:xdist

quality: _venv ## ruff check, ruff format --check, mypy, import layers (.importlinter), poetry.lock in sync
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	@POETRY="$(POETRY)" bash scripts/check-lock.sh
	@echo "quality: all checks passed"

style: _venv ## format and fix what can be fixed automatically
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# DATA=path becomes --data.root=path: a folder or a file, whichever the project's data module
# reads (its input argument is named root: docs/tasks/index.md).
train-%: _venv ## train a project: make train-cifar10 [DATA=folder or file: --data.root] [ARGS="..."]
	@if [ ! -f projects/$*/pyproject.toml ]; then echo "error: no project '$*'; projects: $(PROJECTS)" >&2; exit 2; fi
	$(PY) -m $$(basename $$(dirname $$(ls projects/$*/src/*/__main__.py))) fit $(if $(DATA),--data.root='$(DATA)') $(ARGS)

prepare-%: _venv ## write a project's data as chunks for --data.stream=true, once: make prepare-cifar10 [DATA=...] [ARGS="..."] (docs/data.md)
	@if [ ! -f projects/$*/pyproject.toml ]; then echo "error: no project '$*'; projects: $(PROJECTS)" >&2; exit 2; fi
	$(PY) -m $$(basename $$(dirname $$(ls projects/$*/src/*/__main__.py))) prepare $(if $(DATA),--data.root='$(DATA)') $(ARGS)

runs-%: _venv ## list a project's runs: status, time, differing settings, metrics, runs.csv [ARGS="--plot KEY"]
	@if [ ! -f projects/$*/pyproject.toml ]; then echo "error: no project '$*'; projects: $(PROJECTS)" >&2; exit 2; fi
	$(PY) -m $$(basename $$(dirname $$(ls projects/$*/src/*/__main__.py))) runs $(ARGS)

# Sweeps and seed groups (litforge.experiments): WORKERS runs at once, one GPU each when there
# are GPUs; LAUNCHER=local|slurm submits each run as a submitit job; ARGS go to every run's fit.
WORKERS ?= 1
SEEDS ?= 5
LAUNCHER ?= process
EXPERIMENT_OPTS = --workers $(WORKERS) --launcher $(LAUNCHER)

sweep-%: _venv ## Optuna sweep of configs/sweeps/SWEEP.yaml; the same command resumes it: make sweep-template SWEEP=quick [WORKERS=2] [ARGS="..."]
	@if [ ! -f projects/$*/pyproject.toml ]; then echo "error: no project '$*'; projects: $(PROJECTS)" >&2; exit 2; fi
	@[ -n "$(SWEEP)" ] || { echo "error: name the sweep: make sweep-$* SWEEP=<name> (configs/sweeps/<name>.yaml); here: $$(ls projects/$*/src/*/configs/sweeps/ 2>/dev/null | sed 's/\.yaml//' | tr '\n' ' ')" >&2; exit 2; }
	$(PY) -m $$(basename $$(dirname $$(ls projects/$*/src/*/__main__.py))) sweep $(SWEEP) $(EXPERIMENT_OPTS) $(if $(ARGS),-- $(ARGS))

repeat-%: _venv ## one config with seeds 0..SEEDS-1, then mean, std, 95% interval: make repeat-template SEEDS=5 [WORKERS=2] [ARGS="..."]
	@if [ ! -f projects/$*/pyproject.toml ]; then echo "error: no project '$*'; projects: $(PROJECTS)" >&2; exit 2; fi
	$(PY) -m $$(basename $$(dirname $$(ls projects/$*/src/*/__main__.py))) repeat --seeds $(SEEDS) $(EXPERIMENT_OPTS) $(if $(ARGS),-- $(ARGS))

new-project: _venv ## new task from projects/template (copy, rename, register, install, test): make new-project NAME=foo
	@[ -n "$(NAME)" ] || { echo "error: give a name: make new-project NAME=foo" >&2; exit 2; }
	$(PY) scripts/new_project.py $(NAME)
	@PYTHON=$(PYTHON) bash scripts/init.sh --lock
	$(PY) -m pytest -q projects/$(NAME)/tests

bench: _venv ## benchmarks: (a) Trainer vs raw loop, (b) device augmentation vs DataLoader, (c) time to accuracy, (d) budget vs airbench94 [DATA=...] [ARGS="--only d"]
	$(PY) -m cifar10_demo.bench $(if $(DATA),--data '$(DATA)') $(ARGS)

bench-gpu: _venv ## the GPU benchmark: 10 seeds of the GPU recipe (time, accuracy, peak memory), Trainer vs raw [DATA=...]
	$(PY) -m cifar10_demo.bench_gpu $(if $(DATA),--data '$(DATA)') $(ARGS)

.PHONY: bench-diagnostics diagnostics-images
bench-diagnostics: _venv ## fit time with and without the diagnostics, side by side, as a ratio (not a test) [ARGS="--tasks template --rounds 5"]
	$(PY) scripts/bench_diagnostics.py $(ARGS)

diagnostics-images: _venv ## remake docs/images/diagnostics-*.png (docs/diagnostics.md) from real runs, ~5 min [ARGS="--runs template,denoise"]
	$(PY) scripts/diagnostics_images.py $(ARGS)

.PHONY: bench-serve
bench-serve: _venv ## requests/s and p50/p99 latency of `serve` (LitServe, batched) against the model in a plain loop, side by side (not a test) [ARGS="--requests 400 --concurrency 32"]
	$(PY) scripts/bench_serve.py $(ARGS)

bench-stream: _venv ## streamed vs in-memory training images/s; a streamed epoch's peak memory at 0.2 and 2 GB of images [DATA=...] [ARGS="--sizes 0.2,2"]
	$(PY) -m cifar10_demo.bench_stream $(if $(DATA),--data $(DATA)) $(ARGS)

# Material's notice of its end of life is nothing a reader of the build can act on: not shown.
DOCS_ENV := NO_MKDOCS_2_WARNING=1

docs: _venv ## build the documentation site into site/ (mkdocs build --strict: a warning is an error)
	$(DOCS_ENV) $(VENV)/bin/mkdocs build --strict

docs-serve: _venv ## serve the documentation at http://127.0.0.1:8000, rebuilt as you edit (warnings shown, not fatal)
	$(DOCS_ENV) $(VENV)/bin/mkdocs serve --no-strict

# The pictures of the README and the docs, from real runs: the demos' (scripts/docs_images.py,
# cifar10 too with DATA=...) and those of docs/diagnostics.md (scripts/diagnostics_images.py).
docs-images: _venv ## remake docs/images/ from real runs (~10 min on 2 cores) [DATA=cifar10 folder] [ARGS="-- fit args"]
	$(PY) scripts/docs_images.py $(if $(DATA),--data $(DATA)) $(ARGS)
	$(PY) scripts/diagnostics_images.py

clean: ## remove caches and build outputs (keeps .venv, runs/ and data caches)
	rm -rf .mypy_cache .ruff_cache .pytest_cache build dist site
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
