# convbench: `make bench` runs the default grid and builds the report, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
GRID ?= default
RUN_ARGS ?=
BIN := $(VENV)/bin
# One stamp per torch spec: changing TORCH_SPEC or pyproject.toml reinstalls, otherwise nothing runs.
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC)' | tr -c 'A-Za-z0-9._-' '_')

.PHONY: install test bench lint venv-torch clean

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

# `convbench run` exits 3 when some combinations failed: the rest is saved, and the report is still built
# (then `make bench` exits 3 too). Any other failure stops here (README: exit codes).
bench: install
	@status=0; $(BIN)/convbench run --grid $(GRID) $(RUN_ARGS) || status=$$?; \
	  if [ $$status -ne 0 ] && [ $$status -ne 3 ]; then exit $$status; fi; \
	  $(BIN)/convbench report || exit $$?; \
	  exit $$status

# Another torch beside the default one, at a stable path: its own asv environment.
# make venv-torch TORCH_VERSION=2.14.1 ; then convbench run --python .venvs/torch-2.14.1/bin/python
venv-torch:
	@test -n "$(TORCH_VERSION)" || { echo "usage: make venv-torch TORCH_VERSION=X.Y.Z"; exit 2; }
	@test -x .venvs/torch-$(TORCH_VERSION)/bin/python || $(PYTHON) -m venv .venvs/torch-$(TORCH_VERSION)
	.venvs/torch-$(TORCH_VERSION)/bin/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	.venvs/torch-$(TORCH_VERSION)/bin/python -m pip install --quiet -e .

clean:
	rm -rf $(VENV) html report .pytest_cache .hypothesis
