# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
# Tests wait on servers and clocks more than they compute: three workers on two cores halve the run.
PYTEST_WORKERS ?= 3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-full demo lint typecheck servers venv clean bench bench-latency bench-sizing install uninstall

servers:
	@command -v mosquitto >/dev/null && command -v influxd >/dev/null && command -v mosquitto_pub >/dev/null \
	  && command -v busybox >/dev/null || { \
	  echo "installing mosquitto, mosquitto-clients, busybox and influxdb from Debian packages"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends \
	    mosquitto mosquitto-clients busybox influxdb; }

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check collector schemas simulators tests bench
	$(BIN)/ruff format --check collector schemas simulators tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: servers $(STAMP) lint typecheck
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The full default-scale simulated day against the truth (tests/kpi/test_full_day.py): about half an
# hour on 2 cores, so not part of `make test`.
test-full: servers $(STAMP)
	CITY_TELEMETRY_FULL_DAY=1 $(BIN)/pytest -q -s -m fullday tests/kpi/test_full_day.py $(PYTEST_ARGS)

demo: servers $(STAMP)
	$(BIN)/city-telemetry demo --state-dir .demo

bench: servers $(STAMP)
	$(BIN)/python -m bench.ingest

# Publish-to-queryable latency under load (docs/performance.md); BASE=<checkout> also measures that
# code, interleaved in the same run (e.g. BASE=../main); LATENCY_ARGS="--rates 1500 --seconds 10".
bench-latency: servers $(STAMP)
	$(BIN)/python -m bench.latency $(if $(BASE),--base $(BASE)) $(LATENCY_ARGS)

# The figures to size a deployment, in one run (docs/performance.md, "Sizing"): about an hour with the
# defaults; shorten every phase with e.g. SIZING_ARGS="--step-seconds 30 --soak-seconds 60 --outage-s 60".
bench-sizing: servers $(STAMP)
	$(BIN)/python -m bench.sizing $(SIZING_ARGS)

# Install as deploy/systemd/city-telemetry.service expects it (docs/operations.md, "Install"):
#   sudo make install [PREFIX=/opt/city-telemetry] [DESTDIR=/staging]; sudo make uninstall [PURGE=1]
PREFIX ?= /opt/city-telemetry
INSTALL_VARS = PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" PYTHON="$(PY)" PURGE="$(PURGE)"

install:
	$(INSTALL_VARS) sh deploy/install.sh install

uninstall:
	$(INSTALL_VARS) sh deploy/install.sh uninstall

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
