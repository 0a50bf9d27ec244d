# Forewarn developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Everything started from this Makefile (servers, demo, tests) is a local development
# deployment: workers may use the built-in development secrets (docs/deployment.md).
export FOREWARN_LOCAL_DEVELOPMENT ?= 1

.PHONY: help venv up down status logs topics doctor lint test test-unit demo bench schemas clean browser

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(INSTALLED) ## Create the virtualenv and install Forewarn with its dev tools

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools warns on every editable install that a folder named like a package may
	@# shadow it (a box of asterisks); that is how this checkout is meant to be used.
	@PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

up: venv ## Start local Kafka and InfluxDB (built once into ~/.cache/forewarn) and create topics
	@bash infra/local/servers.sh up
	@$(BIN)/forewarn topics create

down: ## Stop the local servers; nothing of ours keeps running
	@bash infra/local/servers.sh down

status: ## One line per local server
	@bash infra/local/servers.sh status

logs: ## Tail the local servers' logs
	@bash infra/local/servers.sh logs

doctor: venv ## Check the configured deployment end to end
	@$(BIN)/forewarn doctor

lint: venv ## ruff and mypy --strict
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

browser: ## Debian's chromium for the report page test (installed once; apt keeps the .debs)
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

test-unit: venv browser ## Unit tests only (no servers needed)
	@$(BIN)/pytest -m 'not integration' -q

test: venv up lint browser ## Everything: install, start servers if needed, lint, all tests
	@$(BIN)/pytest -q

# The demo starts the servers but not the default deployment's topics: it has its own.
demo: venv ## The main job: stream the Backblaze sample through a worker and summarise
	@bash infra/local/servers.sh up
	@$(BIN)/forewarn demo $(DEMO_ARGS)

bench: venv ## Engine benchmarks (see docs/benchmarks.md)
	@$(BIN)/python bench/engine_throughput.py

schemas: venv ## Export JSON Schemas of every message to schemas/json/
	@$(BIN)/forewarn schemas --out-dir schemas/json

clean: down ## Stop servers and remove the virtualenv (the build cache stays)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
