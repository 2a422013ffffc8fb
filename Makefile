# Two commands a newcomer types: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# System tools the test suite drives for real, as COMMAND:PACKAGE (installed only when missing).
APT_TOOLS := git:git docker-registry:docker-registry skopeo:skopeo chromium:chromium \
             pg_ctlcluster:postgresql

.PHONY: demo test test-soak lint typecheck unit sysdeps venv clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	@missing=""; for t in $(APT_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

demo: $(STAMP) sysdeps
	$(BIN)/conveyor demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP) sysdeps
	$(BIN)/pytest

test: lint typecheck unit

# The reliability tests at the issue's full size (1,000 promotions; 100 releases under
# kills; a longer database outage): minutes, not part of `make test`.
test-soak: $(STAMP) sysdeps
	CONVEYOR_SOAK=1 $(BIN)/pytest tests/engine/test_several_engines.py

bench: $(STAMP) sysdeps
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/gitops.py
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/health.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/cli.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
