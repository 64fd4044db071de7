# Two commands matter: `make run` and `make test`. Everything else helps them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS := var/kafka-libs/.fetched
ECHARTS := services/api/static/vendor/echarts.min.js
DEPLOY_SCHEMAS := var/deploy-schemas/.fetched

.PHONY: run test test-faults test-unit test-integration test-long lint bench jars vendor deploy-schemas install clean reset

# The vendored ECharts is package data of services.api.static.vendor: there before the install.
$(STAMP): pyproject.toml $(ECHARTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The official broker jars from Maven Central, once, into git-ignored var/.
$(JARS): deploy/kafka/pom.xml
	mkdir -p var
	cd deploy/kafka && mvn -q -B dependency:copy-dependencies -DoutputDirectory=../../var/kafka-libs -DincludeScope=runtime
	touch $(JARS)

jars: $(JARS)

# Apache ECharts for the audit charts, from the npm registry at the pinned version and
# checksum, into git-ignored services/api/static/vendor/ (deploy/vendor/fetch_echarts.py).
$(ECHARTS): deploy/vendor/fetch_echarts.py
	$(PYTHON) deploy/vendor/fetch_echarts.py

vendor: $(ECHARTS)

# What deploy/kubernetes is validated against, at pinned versions and checksums, into
# git-ignored var/: CloudNativePG's and prometheus-operator's CRDs from the Go module proxy,
# Strimzi's model classes from Maven Central (deploy/kubernetes/validation/fetch.sh).
$(DEPLOY_SCHEMAS): deploy/kubernetes/validation/fetch.sh deploy/kubernetes/validation/pom.xml
	deploy/kubernetes/validation/fetch.sh var/deploy-schemas
	touch $(DEPLOY_SCHEMAS)

deploy-schemas: $(DEPLOY_SCHEMAS)

run: $(STAMP) $(JARS) $(ECHARTS)
	$(BIN)/charity-ledger run

# Unit tests first (fast, no broker, no database server), then the integration
# tests, which share one Kafka broker and one PostgreSQL for the whole run.
test: $(STAMP) $(JARS) $(ECHARTS) $(DEPLOY_SCHEMAS)
	$(BIN)/pytest -q -m "not integration and not faults"
	$(BIN)/pytest -q -m "integration and not faults"

# The fault tests of issue 15 (tests/faults/): each starts the local three-node Kafka
# cluster and PostgreSQL, puts a fault under a steady load of gifts and prints its report.
test-faults: $(STAMP) $(JARS)
	$(BIN)/pytest -q -m faults -rP tests/faults

test-long: $(STAMP) $(JARS) $(DEPLOY_SCHEMAS)
	CHARITY_LONG_TESTS=1 $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench
	$(BIN)/mypy

# Display fan-out and latency, then end to end from the API's 202 to the screens
# (docs/display.md), then giving (a payment notification to its journal entry,
# notifications and donate pages a second), then the ledger: ingest on both backends, then
# rebuild/verify/receipts on 1,000,000 entries, then ingest on one broker against a
# three-node cluster and the API with one and two processes (docs/benchmarks.md). The last
# line is one JSON object with the headline figures of all of them.
bench: $(STAMP) $(JARS)
	$(BIN)/python -m bench.suite

clean:
	rm -rf $(VENV) build *.egg-info

# Stops nothing: stop `make run` with Ctrl-C first. Deletes the local broker's
# data and the SQLite ledger, so the next `make run` starts empty.
reset:
	rm -rf var/kafka var/ledger.db var/ledger.db-wal var/ledger.db-shm var/ledger.db-writers var/*.log var/display
