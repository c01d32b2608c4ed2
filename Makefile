# One entry point for newcomers, developers and CI. Everything installs itself (idempotent).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN_DIR ?= .run/dev
TEST_RUN_DIR ?= .run/test
PYTEST_ARGS ?=

.PHONY: help install run test test-unit test-faults lint format contracts bench bench-eventstore \
        bench-roster bench-media bench-application bench-review bench-ops bench-request-text stack-up stack-down stack-status clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

install: ## install Python deps (uv), the Kafka broker jars (Maven) and check the JDK
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet
	@$(UV) run --frozen devstack install

run: install ## start the whole system locally (stack + services), print the URLs; Ctrl-C stops it
	@$(UV) run --frozen devstack run --run-dir $(RUN_DIR)

test: install lint ## start a stack on free ports, run every test lane, stop the stack
	@$(UV) run --frozen devstack exec --run-dir $(TEST_RUN_DIR) -- \
		$(UV) run --frozen pytest -m "(unit or integration) and not faults" $(PYTEST_ARGS)

test-faults: install ## the fault lane, full run: 100+ faults under a seeded workload (FAULTS_SEED=1)
	@FAULTS_PROFILE=full $(UV) run --frozen pytest tests/faults -s --timeout 5400 $(PYTEST_ARGS)

test-unit: ## unit tests only (no stack)
	@$(UV) run --frozen pytest -m unit $(PYTEST_ARGS)

lint: ## ruff + mypy (strict on libs/ and contracts/) + stale contract schemas
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen mypy libs/eventkit/src libs/servicekit/src contracts/src tools/devstack/src tools/ops/src \
		tools/sandboxes/src
	@$(UV) run --frozen mypy services/*/src
	@$(UV) run --frozen contracts check
	@$(UV) run --frozen contracts compat

format: ## apply ruff's fixes and formatting
	@$(UV) run --frozen ruff check --fix .
	@$(UV) run --frozen ruff format .

contracts: ## regenerate JSON Schemas and the AsyncAPI document from the event models
	@$(UV) run --frozen contracts generate

bench: bench-eventstore bench-roster bench-media bench-application bench-review bench-ops bench-request-text ## every benchmark

bench-eventstore: install ## eventkit append and replay vs eventsourcing vs raw SQL
	@$(UV) run --frozen devstack exec --run-dir .run/bench -- \
		$(UV) run --frozen python bench/eventstore.py

bench-roster: install ## identity: import 300,000 roster rows, then re-import with 1% changed
	@$(UV) run --frozen devstack exec --run-dir .run/bench-roster -- \
		$(UV) run --frozen python bench/roster_import.py

bench-application: install ## application: 1,000 candidates draft, add a certificate and submit over HTTP
	@$(UV) run --frozen devstack exec --run-dir .run/bench-application -- \
		$(UV) run --frozen python bench/application_submit.py

bench-review: install ## review: the queue's queries, then the reviewer UI's queue page over HTTP, 10,000 cases waiting
	@$(UV) run --frozen devstack exec --run-dir .run/bench-review -- \
		$(UV) run --frozen python bench/review_queue.py
	@$(UV) run --frozen devstack exec --run-dir .run/bench-review -- \
		$(UV) run --frozen python bench/review_queue_page.py

bench-ops: install ## ops: the review queue (20,000 applications) rebuilt from Kafka beside its live consumer, compared, swapped
	@$(UV) run --frozen devstack exec --run-dir .run/bench-ops -- \
		$(UV) run --frozen python bench/ops_rebuild.py

bench-media: install ## media: the photo pipeline on a 3 MB 12-megapixel JPEG (one core), then whole uploads to S3
	@$(UV) run --frozen python bench/media_pipeline.py
	@$(UV) run --frozen devstack exec --run-dir .run/bench-media -- \
		$(UV) run --frozen python bench/media_upload.py

bench-request-text: install ## servicekit: what the request text rule costs a 60-course body (in process)
	@$(UV) run --frozen python bench/request_text.py

stack-up: install ## start PostgreSQL, Kafka and SeaweedFS in the background (fixed ports)
	@$(UV) run --frozen devstack up --run-dir $(RUN_DIR) --fixed-ports

stack-down: ## stop the background stack
	@$(UV) run --frozen devstack down --run-dir $(RUN_DIR)

stack-status: ## is each part of the background stack alive and healthy?
	@$(UV) run --frozen devstack status --run-dir $(RUN_DIR)

clean: stack-down ## stop the stack and remove run directories
	rm -rf .run
