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

# deploy/requirements.lock: the production image's dependencies, resolved in a clean venv without the sandbox.
lock:
	rm -rf .lock-venv && $(PY) -m venv .lock-venv
	.lock-venv/bin/pip install -q .
	{ echo "# What the production image installs (deploy/Dockerfile), pinned: \`make lock\` makes it from a clean Python 3.11 venv"; \
	  echo "# with \`pip install .\` (no sandbox, no dev tools), then \`pip freeze --exclude keap-orders\`."; \
	  .lock-venv/bin/pip freeze --exclude keap-orders; } > deploy/requirements.lock
	rm -rf .lock-venv

.PHONY: install demo test lock
