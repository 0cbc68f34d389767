# Everything a fresh clone needs: `make demo`, `make test`, `make run`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser demo test test-fast run bench lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The dashboard's browser tests drive Debian's chromium through chromedriver (as root on a
# fresh machine; elsewhere install both packages by hand, or the browser tests are skipped).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update && apt-get install -y chromium chromium-driver; \
	else echo "chromium and chromium-driver are missing: browser tests will be skipped"; fi

demo: $(STAMP)
	$(BIN)/otklik demo

test: $(STAMP) browser
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
	$(BIN)/python scripts/import_cycles.py

clean:
	rm -rf $(VENV) otklik.db *.egg-info
