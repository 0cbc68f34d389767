# Everything a fresh clone needs: `make demo`, `make test`, `make run`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast run bench lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/otklik demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Unit tier only (no database, sandbox, server or subprocess); tiers: tests/conftest.py.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m unit

run: $(STAMP)
	$(BIN)/otklik run

bench: $(STAMP)
	$(BIN)/otklik bench

lint: $(STAMP)
	$(BIN)/ruff check bot handlers storage tests
	$(BIN)/mypy bot handlers storage
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) otklik.db *.egg-info
