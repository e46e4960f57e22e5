# heslock — every target bootstraps .venv from the lock file first, so a fresh clone needs
# only python3 (>= 3.11) with venv and pip. The stamp is rebuilt when the lock changes.
PYTHON ?= python3
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
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/heslock demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench --quick

bench-full: $(STAMP)
	$(BIN)/python -m bench

vectors: $(STAMP)
	$(BIN)/python tools/gen_test_vectors.py --output docs/test-vectors.json

lock:
	$(PYTHON) -m piptools compile --quiet --generate-hashes --strip-extras --allow-unsafe \
		--extra dev -o $(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
