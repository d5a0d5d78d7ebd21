# Two commands do all set-up on a fresh machine with Python 3.11+ and make:
#   make demo   install uv if missing, sync the locked environment, run the pipeline, print results
#               (--compile-bytecode: every stage is a fresh process; without .pyc files, e.g. under
#               PYTHONDONTWRITEBYTECODE=1, each one recompiles torch and mlflow: ~5 s a stage)
#   make claims the claims profile (profiles/claims.yaml) for seeds 0, 1, 2 -> runs/claims/claims.md
#   make test   same set-up, then the test suite (slow tests excluded; `make test-slow` runs them)
#   make lint   ruff (lint and format check) on everything, mypy on the library packages
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
export DVC_NO_ANALYTICS := 1

.PHONY: setup demo claims test test-slow lint clean

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --locked --compile-bytecode

demo: setup
	$(UV) run dvc repro
	$(UV) run cgankd report

claims: setup
	$(UV) run cgankd claims -p profiles/claims.yaml -s 0 -s 1 -s 2 --workers 3 --out runs/claims

test: setup
	$(UV) run pytest

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

test-slow: setup
	$(UV) run pytest -m slow

clean:
	rm -rf data models .dvc/tmp .dvc/cache
