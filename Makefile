# The menu. `make setup` once, then `make test`; `make help` lists every target.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3.11

.PHONY: help setup test test-fast lint generate generate-check bench bench-quick demo demo-uci package deploy clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup:  ## create .venv and install everything (checks Python 3.11 and Java 17)
	./scripts/setup.sh

test:  ## the whole suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest -q

test-fast:  ## the quick loop: everything but tests marked slow
	$(PY) -m pytest -q -m "not slow"

lint:  ## ruff (lint + format check), the import-direction check and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) scripts/check_layers.py
	$(VENV)/bin/mypy

generate:  ## write every generated file: schemas/ from the contracts, the templates' generated parts
	$(VENV)/bin/demand schemas export --out schemas
	$(PY) infra/generate.py

generate-check:  ## fail if a generated file is stale (the test suite runs the same checks)
	$(VENV)/bin/demand schemas export --out schemas --check
	$(PY) infra/generate.py --check

bench:  ## every benchmark (JSON lines on stdout)
	$(PY) -m bench all

bench-quick:  ## every benchmark on small data (under a minute each)
	$(PY) -m bench all --quick

demo:  ## the pipeline on the local embedded runtime, on generated data (about 3 minutes)
	./scripts/demo.sh

demo-uci:  ## the pipeline on the real UCI Online Retail II year in ../shared/data (about 10 minutes)
	./scripts/demo-uci.sh

package:  ## build artefacts/: Flink application zip, Glue scripts, Lambda bundle
	./scripts/package.sh

deploy:  ## upload artefacts and deploy the CloudFormation stack (needs an AWS account; see infra/README.md)
	./scripts/deploy.sh

clean:  ## remove local data, caches and build output (keeps .venv)
	rm -rf .demand .demand-uci artefacts .pytest_cache .ruff_cache .mypy_cache .hypothesis
