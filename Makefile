# Everyday tasks. `make test` is the README's test command; CI runs .ci/run.
PY := .venv/bin/python

.PHONY: setup test unit lint bench run

setup:            ## Debian packages and the virtualenv
	scripts/bootstrap

test: setup       ## the whole suite, real Asterisk and Chromium included
	$(PY) -m pytest

unit: setup       ## the fast part: no Asterisk, no browser
	$(PY) -m pytest -q --ignore=tests/integration --ignore=tests/browser

lint: setup       ## what CI checks besides the tests
	.venv/bin/ruff check .
	.venv/bin/ruff format --check ctm_pbx

bench: setup      ## the benchmarks that need no Asterisk (see bench/README.md for the rest)
	$(PY) bench/source_resolution.py
	$(PY) bench/visit_api.py
	$(PY) bench/reports.py

run: setup        ## the daemon with the example config on a local Asterisk
	scripts/run-example
