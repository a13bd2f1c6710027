# Two commands do everything on a fresh machine:
#   make demo   set up, then run `atoll demo` on the embedded default
#   make test   set up, then run the whole test suite
# Every target is idempotent and quick when already set up.

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
CONSOLE := src/atoll/web/console
DIST    := src/atoll/web/static/dist/index.html
PYTHON  ?= python3

.PHONY: demo up test check setup console system-deps bench lock

demo: setup console
	$(VENV)/bin/atoll demo

up: setup console
	$(VENV)/bin/atoll up

test: setup console system-deps
	$(VENV)/bin/pytest -n 2 --dist loadgroup -q

# Lint, format and type check, and the import boundaries (layers, no cycles; tests/test_layers.py,
# a few seconds): what CI enforces before the tests. mypy's settings and the packages it checks
# are in pyproject.toml, its cache in .mypy_cache.
check: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -p no:randomly tests/test_layers.py

setup: $(STAMP)

# Every package comes from requirements.lock, pinned with hashes (the whole tree, test tools
# included); the project itself is then installed without resolving anything.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Atoll needs Python >= 3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Re-pin after changing a dependency in pyproject.toml (pip-tools, itself pinned).
lock:
	test -x $(VENV)/bin/pip-compile || $(PY) -m pip install -q pip-tools==7.6.2
	$(VENV)/bin/pip-compile -q --generate-hashes --extra test --extra edge --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

console: $(DIST)

$(DIST): $(wildcard $(CONSOLE)/package*.json $(CONSOLE)/vite.config.js) $(shell find $(CONSOLE)/src $(CONSOLE)/index.html -type f 2>/dev/null)
	@if [ -f $(CONSOLE)/package.json ]; then \
		cd $(CONSOLE) && npm ci --no-audit --no-fund --loglevel=error && npm run build; \
	fi

# Debian packages the tests drive for real: Chromium (console tests) and Mosquitto (external broker).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

bench: setup
	$(VENV)/bin/atoll bench ingest --json bench/results/ingest.json
