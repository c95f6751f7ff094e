# keel: `make run` (offline demo) and `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

export LANGGRAPH_CLI_NO_ANALYTICS := 1
export LANGGRAPH_NO_VERSION_CHECK := true
export ANONYMIZED_TELEMETRY := False
export LANGSMITH_TRACING ?= false

.PHONY: install run demo test test-fast bench bench-quick bench-render bench-keel bench-keel-record mutate dev serve serve-now lint imports fmt clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: install
	$(BIN)/keel demo

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: install
	$(BIN)/python -m pytest -q -x -m "not slow"

# The shared peer harness (read-only, beside the project): found at ../shared/bench, then /work/shared/bench;
# empty when neither exists (a clone elsewhere), and then bench-quick runs keel's own steps only.
PEER_BENCH ?= $(firstword $(wildcard ../shared/bench/peer_bench.py /work/shared/bench/peer_bench.py))
export PEER_BENCH

# `make bench`: the targets of issue 14 measured (the shared harness with keel's plug-in, profile_run,
# cold start, replicas; JSONs in benchmarks/results/) and the targets table recorded in
# benchmarks/RESULTS.md (about 20-30 minutes). `make bench-quick`: the same steps on reduced sizes into a
# temp folder, the table printed, nothing written; fails only when a step fails (CI runs it).
bench: install
	$(BIN)/python -m benchmarks.suite --record

bench-quick: install
	$(BIN)/python -m benchmarks.suite --quick

# The table again from benchmarks/results/ (after writing a reason in benchmarks/targets_notes.md), recorded.
bench-render: install
	$(BIN)/python -m benchmarks.suite --from benchmarks/results --record

# keel's own benchmarks: `make bench-keel` prints the tables and writes no file;
# `make bench-keel-record [BENCH="overhead guards memory"]` appends the run to benchmarks/history.json and
# re-renders benchmarks/RESULTS.md from it.
bench-keel: install
	$(BIN)/python -m benchmarks $(BENCH)

bench-keel-record: install
	$(BIN)/python -m benchmarks --record $(BENCH)

# One-line breaks of the guarantees (docs/security.md), each against the tests that must catch it (not in `test`).
mutate: install
	$(BIN)/python scripts/mutate.py

# KEEL_HOME outside the project: files written while `langgraph dev` runs must not make it reload.
# The workspace starts with the demo's files (`keel workspace seed`, as `keel demo` does).
dev: install
	export KEEL_HOME=$${KEEL_HOME:-$${TMPDIR:-/tmp}/keel-dev}; \
	$(BIN)/keel workspace seed && $(BIN)/langgraph dev --no-browser --port $${PORT:-2024}

# `make serve`: keel on Aegra (aegra.json; docs/deployment.md, "Aegra") over PostgreSQL on $PORT (default 8000).
# Needs DATABASE_URL (Aegra's threads, runs, checkpoints) and KEEL_DATABASE_URL (keel's records: another
# database, both keep an `alembic_version` table), KEEL_REDIS_URL and KEEL_API_KEYS_FILE. Replicas: start
# one, then the others (each migrates both databases at start). `serve-now` skips the install check.
serve: install serve-now

serve-now:
	@test -n "$$DATABASE_URL" || { echo "make serve: set DATABASE_URL (postgresql://...) for Aegra's tables" >&2; exit 2; }
	@test -n "$$KEEL_DATABASE_URL" || { echo "make serve: set KEEL_DATABASE_URL (postgresql://...) for keel's records" >&2; exit 2; }
	@test "$$KEEL_DATABASE_URL" != "$$DATABASE_URL" || { echo "make serve: KEEL_DATABASE_URL must name another database than DATABASE_URL" >&2; exit 2; }
	@test -n "$$KEEL_API_KEYS_FILE" || { echo "make serve: set KEEL_API_KEYS_FILE (your hashed API keys; docs/deployment.md)" >&2; exit 2; }
	AEGRA_CONFIG=aegra.json KEEL_PROFILE=$${KEEL_PROFILE:-postgres} \
	SQLALCHEMY_POOL_SIZE=$${SQLALCHEMY_POOL_SIZE:-10} LANGGRAPH_MAX_POOL_SIZE=$${LANGGRAPH_MAX_POOL_SIZE:-10} \
	exec $(BIN)/uvicorn aegra_api.main:app --host $${HOST:-0.0.0.0} --port $${PORT:-8000}

# The layer contract (.importlinter) over the installed layout: builds the wheel, lints the unpacked keel.
imports: install
	$(BIN)/python scripts/lint_imports.py

lint: install imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf .keel .pytest_cache .ruff_cache
