# heslock — every target bootstraps .venv from the lock file first, so a fresh clone needs
# only python3 (>= 3.11) with venv and pip. The stamp is rebuilt when the lock changes.
#
# Interpreter: a distribution's python3.11+ (Debian, Ubuntu, Fedora) is built with PGO and
# LTO; a default pyenv/source build is not, and runs the frame path ~1.6x slower
# (docs/benchmarks.md). So the first distribution interpreter found is preferred, then
# whatever python3 is on PATH. Override with `make PYTHON=/path/to/python3 ...`.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.1[1-9] /usr/bin/python3.[2-9][0-9]) python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.heslock-installed
LOCK   := requirements/dev.txt

.PHONY: demo test lint bench bench-full lock vectors clean help

help:
	@echo "make demo    run the whole system on the embedded defaults"
	@echo "make test    run every test (service-backed tests skip with a reason unless CI=true)"
	@echo "make lint    ruff + mypy --strict"
	@echo "make bench   quick benchmark subset; figures go to docs/benchmarks.md"
	@echo "make lock    recompile $(LOCK) from pyproject.toml (needs the registry)"

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/heslock demo

# Two pytest-xdist workers: most integration tests wait on sockets, radios and child
# processes, so two share the two cores well (one worker alone took 13.5 min).
# `make test TEST_WORKERS=0` runs everything in one process. worksteal: a worker that runs
# out of tests takes queued ones from the other, so the run does not end on one worker
# working through a queue of long tests (CLI, demo, restarts) while the other core idles.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools examples
	$(BIN)/ruff format --check src tests bench tools examples
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench --quick

bench-full: $(STAMP)
	$(BIN)/python -m bench

vectors: $(STAMP)
	$(BIN)/python tools/gen_test_vectors.py --output docs/test-vectors.json

# Compile on the OLDEST supported interpreter (3.11.2 here), so that dependencies behind
# version markers (async-timeout below 3.11.3) are in the lock for every 3.11 build.
# pip-tools runs from a throw-away venv (.lockenv) on that interpreter, so the project's own
# venv and the system Python stay untouched.
lock:
	@test -x .lockenv/bin/python || $(PYTHON) -m venv .lockenv
	.lockenv/bin/python -m pip install --quiet --disable-pip-version-check pip-tools
	.lockenv/bin/python -m piptools compile --quiet --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --extra dev -o $(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) .lockenv .pytest_cache .mypy_cache .ruff_cache .hypothesis
