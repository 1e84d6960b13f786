# The README's two commands live here: `make run` and `make test`.
# Both set up .venv themselves and are idempotent (stamp files skip work already done).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
CHROMIUM ?= /usr/bin/chromium

.PHONY: run dev test lint pytest node-test bench bench-quick chromium postgresql clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Serving only: the cpu extra (OpenVINO + onnxruntime), never torch.
$(VENV)/.serve: pyproject.toml | $(PY)
	sh scripts/serve.sh install $(PY) cpu
	touch $@

# Development: torch==2.13.0 first. Here pip resolves it to the CPU wheel the machine provides (pip config
# find-links); elsewhere add --index-url https://download.pytorch.org/whl/cpu, as any other spec or index pulls a
# multi-GB CUDA build.
$(VENV)/.dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[cpu,train,dev,scale]'
	touch $@ $(VENV)/.serve

dev: $(VENV)/.dev

run: $(VENV)/.serve
	sh scripts/serve.sh start $(PY) $(HOST) $(PORT)

# Debian chromium for the real-browser tests (never `playwright install`: it downloads).
chromium:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian PostgreSQL for the database tests: they run its binaries on a throwaway data dir, never its service.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

node-test:
	@if ls frontend/*.test.js >/dev/null 2>&1; then node --test frontend/; fi

# The whole suite on the default runtime (OpenVINO) with the embedded SQLite, then the server suite again on the
# onnxruntime fallback with PostgreSQL instead of SQLite (a fresh database per test): each runtime and each
# database once, in two runs instead of three, which keeps CI under 30 minutes.
# The trainer's tests get a pytest process of their own: a training run with DataLoader workers in a process where
# OpenVINO had run in bf16 (server, eval and runtime tests open it in-process) died with SIGSEGV, in either order;
# `collage train` never loads OpenVINO, so only a shared test process mixes the two.
pytest: $(VENV)/.dev chromium postgresql
	$(VENV)/bin/pytest tests/models/test_train.py
	$(VENV)/bin/pytest --ignore=tests/models/test_train.py
	COLLAGE_RUNTIME=onnxruntime COLLAGE_TEST_DATABASE=postgresql $(VENV)/bin/pytest -q tests/server

test: lint node-test pytest

bench: $(VENV)/.dev
	$(PY) -m benchmarks.run

bench-quick: $(VENV)/.dev
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
