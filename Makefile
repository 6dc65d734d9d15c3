# convbench: `make bench` runs the default grid and builds the report, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
GRID ?= default
BIN := $(VENV)/bin
# One stamp per torch spec: changing TORCH_SPEC or pyproject.toml reinstalls, otherwise nothing runs.
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC)' | tr -c 'A-Za-z0-9._-' '_')

.PHONY: install test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/convbench workloads

clean:
	rm -rf $(VENV) html report .pytest_cache .hypothesis
