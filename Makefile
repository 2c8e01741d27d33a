# The two commands a newcomer needs: `make test` and `make demo`. Both start from nothing:
# they install the system packages (gpg, Dovecot), the virtualenv and every Python package.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.installed

.PHONY: test demo lint typecheck unit integration bench chaos system-deps install clean image image-test \
	neomutt-check element-check

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
	$(BIN)/python -m bench.input_sizes

# Not part of `make test`: several minutes of faults around a running bot, then exact counts
# (README, "Reliability"). Stops by itself; exit 1 when an invariant failed.
chaos: system-deps $(STAMP)
	$(BIN)/python -m bench.chaos

install: $(STAMP)

# The container image (README "The container image"). Not part of `make test`: it needs a
# running Docker daemon. BASE_IMAGE defaults to a Debian bookworm made with debootstrap
# (root; built only when missing), for machines that reach apt mirrors but no registry;
# `make image BASE_IMAGE=python:3.11-slim-bookworm` uses the official Python image. The
# wheels come from the host's pip into container/wheels, so the build needs no package index.
IMAGE      ?= cvdbot:latest
BASE_IMAGE ?= cvdbot-base:bookworm
WHEELS     := container/wheels

image: $(STAMP)
	@docker image inspect $(BASE_IMAGE) >/dev/null 2>&1 \
		|| [ "$(BASE_IMAGE)" != cvdbot-base:bookworm ] \
		|| $(SUDO) container/debian-base.sh $(BASE_IMAGE)
	mkdir -p build
	$(BIN)/python container/requirements.py > build/image-requirements.txt
	$(BIN)/pip wheel -q --disable-pip-version-check -w $(WHEELS) \
		-r build/image-requirements.txt 'setuptools>=77'
	docker build --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg PIP_NO_INDEX=1 -t $(IMAGE) .
	@docker image inspect $(IMAGE) --format '$(IMAGE): {{.Size}} bytes'

# The opt-in image test: builds with `make image`, then check-config, doctor and a real
# run inside the image against the test servers.
image-test: system-deps $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m image -s tests/integration/test_image.py

# The opt-in mail-client check (README "Read in neomutt"): the reporter reads the bot's
# receipt for an encrypted report in neomutt (GPGME) under tmux; prints the captured screens.
# Not part of `make test`: it needs the neomutt and tmux packages (installed here if missing).
neomutt-check: system-deps $(STAMP)
	@if ! command -v neomutt >/dev/null || ! command -v tmux >/dev/null; then \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
			neomutt tmux; \
	fi
	$(BIN)/pytest -q -p no:cacheprovider -m neomutt -s tests/integration/test_neomutt.py

# The opt-in Element check (README "Element and the bot's identity"): two team members on
# matrix-js-sdk 37.5 with its Rust crypto (Element's SDK; Node 20 and npm, `npm ci` in
# clients/element when node_modules is missing) watch a cross-signed bot and an unsigned one;
# one of them verifies the bot by emoji (SAS), as Element's "Verify" does.
element-check: system-deps $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m element -s tests/integration/test_element.py

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
	rm -f $(WHEELS)/*.whl $(WHEELS)/*.tar.gz
