# The two commands a newcomer needs: `make test` and `make demo`. Both start from nothing:
# they install the system packages (gpg, Dovecot), the virtualenv and every Python package.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.installed

.PHONY: test demo lint typecheck unit integration bench chaos system-deps install clean

test: system-deps $(STAMP) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

demo: system-deps $(STAMP)
	$(BIN)/python -m demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: system-deps $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: system-deps $(STAMP)
	$(BIN)/pytest -q tests/integration

bench: system-deps $(STAMP)
	$(BIN)/python -m bench.command_roundtrip
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.sla_scale

# Not part of `make test`: several minutes of faults around a running bot, then exact counts
# (README, "Reliability"). Stops by itself; exit 1 when an invariant failed.
chaos: system-deps $(STAMP)
	$(BIN)/python -m bench.chaos

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the real servers need: gpg for PGP, Dovecot as the test IMAP server.
system-deps:
	@if ! command -v gpg >/dev/null || ! test -x /usr/sbin/dovecot; then \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
			gnupg dovecot-imapd; \
	fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
