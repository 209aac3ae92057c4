# Two entry points for a fresh clone: `make demo` and `make test` (both install into .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/keap-orders: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,sandbox]'
	touch $@

install: $(BIN)/keap-orders

demo: install
	$(BIN)/keap-orders demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: install demo test
