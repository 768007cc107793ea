# aimesh developer commands. The two that matter: `make demo` (run the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
AIMESH := $(VENV)/bin/aimesh
PARTS := libs/api libs/core libs/devstack services/ingest services/feature services/training services/inference services/monitor examples
STAMP := $(VENV)/.installed
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GO_MOD := tests/clients/go
GO_STAMP := .aimesh/go/.installed

.PHONY: setup up up-infra down status demo demo-scenario test test-unit test-faults lint proto proto-go docs clean

setup: $(STAMP) $(GO_STAMP)  ## Create .venv and install every part (editable) with pinned versions; install PostgreSQL and Redis if missing; fetch the Go client's modules.

$(STAMP): constraints.txt pyproject.toml $(addsuffix /pyproject.toml,$(PARTS))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet "pip==25.3"
	$(PIP) install --progress-bar on -c constraints.txt $(addprefix -e ,$(PARTS)) --group dev
	bash deploy/local/postgres/install.sh
	bash deploy/local/redis/install.sh
	@touch $(STAMP)

# The Go client (tests/clients/go): its modules in Go's module cache and the pinned protoc plugins in .aimesh/go/bin.
$(GO_STAMP): $(STAMP) $(GO_MOD)/go.mod $(GO_MOD)/go.sum
	@test -x "$(GO)" || { echo "Go 1.26+ not found (GO=$(GO)): https://go.dev/dl/ (tests/clients/go needs it)"; exit 1; }
	cd $(GO_MOD) && GOTOOLCHAIN=local GOFLAGS=-mod=readonly "$(GO)" mod download
	GO="$(GO)" $(PY) scripts/gen_proto_go.py --plugins-only
	@touch $(GO_STAMP)

up: setup  ## Start Kafka, Elasticsearch, PostgreSQL, Redis, Triton and the five services; wait until healthy.
	$(AIMESH) up

up-infra: setup  ## Start only the infrastructure the tests need.
	$(AIMESH) up --infra-only

down:  ## Stop everything `up` started.
	@test -x $(AIMESH) && $(AIMESH) down || true

status:
	$(AIMESH) status

SCENARIO ?= all
demo: demo-scenario up  ## The main job: the bank's fraud and the retailer's next-item scenarios through all five services, with summaries; SCENARIO=banking|retail runs one.
	$(AIMESH) status
	@if [ "$(SCENARIO)" != retail ]; then $(PY) -m aimesh.examples.banking demo; fi
	@if [ "$(SCENARIO)" != banking ]; then $(PY) -m aimesh.examples.retail demo; fi

demo-scenario:  # refuses an unknown SCENARIO before anything is started
	@case "$(SCENARIO)" in banking|retail|all) ;; *) echo "SCENARIO must be banking, retail or all (got '$(SCENARIO)')" >&2; exit 2;; esac

lint: setup  ## ruff (lint + format check) and mypy (strict).
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test-unit: setup  ## Unit tests only: no servers needed.
	$(PY) -m pytest -m "not integration and not e2e and not faults" -q

FAULTS := GRPC_ENABLE_FORK_SUPPORT=false $(PY) -m pytest tests/faults -m faults -q -s -rA --durations=20

test: up-infra lint  ## The whole suite: lint, unit, integration, end-to-end, then the fault suite (real Kafka, Elasticsearch, Triton, PostgreSQL).
	$(PY) -m pytest -m "not faults" -rA -q --durations=15
	$(FAULTS)

test-faults: setup  ## The fault suite alone (tests/faults, ~12 min): a private stack under load; outages, kill -9, hostile input, fuzz.
	$(FAULTS)

proto: setup  ## Regenerate libs/api and tests/clients/go/gen from proto/.
	$(PY) scripts/gen_proto.py
	GO="$(GO)" $(PY) scripts/gen_proto_go.py

proto-go: setup  ## Regenerate only the Go client's code (tests/clients/go/gen) from proto/.
	GO="$(GO)" $(PY) scripts/gen_proto_go.py

docs: setup  ## Regenerate the README's settings tables from the settings classes.
	$(PY) scripts/settings_doc.py

.PHONY: bench bench-ingest bench-feature bench-recommend bench-inference bench-tools
bench: bench-ingest bench-feature  ## Both benchmarks (bench/README.md); BENCH_ARGS=--quick for a smoke run.

bench-ingest: up-infra  ## Ingest benchmark vs an aiokafka passthrough (bench/ingest).
	$(PY) -m bench.ingest $(BENCH_ARGS)

bench-feature: up-infra  ## Feature store benchmark vs Feast's Python feature server (bench/feature).
	$(PY) -m bench.feature $(BENCH_ARGS)

bench-recommend: up-infra  ## Recommend vs a direct Triton call of the same exported model (bench/recommend).
	$(PY) -m bench.recommend $(BENCH_ARGS)

bench-inference: up-infra  ## Score and ScoreBatch vs Triton direct, perf_analyzer and GetOnlineFeatures + Triton by hand (bench/inference).
	$(PY) -m bench.inference $(BENCH_ARGS)

bench-tools:  ## Triton's perf_analyzer for bench/inference in .aimesh/tools/perf_analyzer (tritonclient 2.50.0's binary, its own venv; apt-get libb64-0d).
	PYTHON=$(PYTHON) bash bench/tools/install_perf_analyzer.sh

.PHONY: bench-monitor-tools bench-monitor-drift
bench-monitor-tools: setup  ## Evidently's own virtualenv (.aimesh/tools/evidently-venv, pinned by bench/monitor/drift-evidently-requirements.txt).
	$(PY) -m bench.monitor.drift_evidently_env

bench-monitor-drift: bench-monitor-tools  ## Monitor's drift math vs Evidently's DataDriftPreset, and the streaming rate (bench/monitor/drift.py).
	$(PY) -m bench.monitor.drift $(BENCH_ARGS)

clean: down
	rm -rf .aimesh $(VENV)
