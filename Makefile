# ward-kiosk: `make run` starts the agent on demo defaults, `make test` runs the whole suite.
# Both install whatever is missing first (Debian packages through apt when root/sudo, then a .venv).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := python3-venv mosquitto mosquitto-clients libzbar0 libportaudio2 espeak-ng chromium sox systemd cage fonts-dejavu-core coturn nftables
STAMP_APT := $(VENV)/.apt-stamp
STAMP_PY := $(VENV)/.py-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] && echo "" || (command -v sudo >/dev/null && echo sudo -n))

.PHONY: run test lint typecheck unit deps apt venv bench install clean demo-broker

deps: $(STAMP_APT) $(STAMP_PY)

# apt: only packages that are not installed yet; `apt-get update` only when something is missing.
$(STAMP_APT): Makefile
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ] && [ -z "$(SUDO)" ]; then \
	    echo "missing Debian packages:$$missing -- run as root, or: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

$(STAMP_PY): pyproject.toml | $(STAMP_APT)
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

lint: deps
	$(BIN)/ruff check agent devices central tests bench
	$(BIN)/mypy

unit: deps
	$(BIN)/python -m pytest -q tests

test: lint unit

# The demo: a local broker on 127.0.0.1:1883 (if none runs), the central ingest, and the agent.
run: deps
	$(BIN)/python -m agent.demo

bench: deps
	$(BIN)/python bench/queue.py

install: deps
	bash systemd/install.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
