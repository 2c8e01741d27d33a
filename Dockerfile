# cvdbot: one process next to your Synapse. README "The container image" has the commands;
# `make image` builds it (and, where no registry is reachable, a Debian base first).
#
#   docker build -t cvdbot .                                        # official Python base
#   docker build --build-arg BASE_IMAGE=cvdbot-base:bookworm -t cvdbot .   # Debian base
#
# The base is any Debian bookworm image: the official python:3.11-slim-bookworm (its own
# Python in /usr/local), or plain Debian (container/debian-base.sh), which gets Debian's
# python3 from apt here. Both stages use the same base, so the virtualenv's Python is the
# same file in the build and in the final image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN set -eux; \
    if ! command -v python3 >/dev/null; then \
        apt-get update; \
        apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \
    fi; \
    python3 -m venv /opt/cvdbot
WORKDIR /src
# The dependencies first, in their own layer: a code change does not download them again.
# Every dependency ships wheels (vodozemac is matrix-nio's crypto): no compiler is needed.
# container/wheels is empty (PyPI then) unless `make image` filled it from the host's pip;
# PIP_NO_INDEX=1 (a build argument, which pip reads) then keeps the build off the network.
ARG PIP_NO_INDEX
COPY pyproject.toml container/requirements.py ./
COPY container/wheels/ /wheels/
RUN python3 requirements.py pyproject.toml > requirements.txt \
    && /opt/cvdbot/bin/pip install --find-links /wheels -r requirements.txt
COPY README.md ./
COPY bot ./bot
COPY commands ./commands
COPY storage ./storage
# pip and setuptools only install: the running bot needs neither.
RUN /opt/cvdbot/bin/pip install --find-links /wheels --no-deps . \
    && /opt/cvdbot/bin/pip uninstall -q -y pip setuptools \
    && /opt/cvdbot/bin/cvdbot --help >/dev/null

FROM ${BASE_IMAGE}
# gpg and gpg-agent for PGP (no dirmngr: the bot never asks a keyserver); tini as PID 1 so
# SIGTERM reaches cvdbot, which then finishes or safely abandons in-flight work; tzdata
# for the policy's time zone; python3 only when the base has no Python of its own.
RUN set -eux; \
    packages="gpg gpg-agent tini tzdata ca-certificates"; \
    command -v python3 >/dev/null || packages="$packages python3"; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    groupadd --system --gid 10001 cvdbot; \
    useradd --system --uid 10001 --gid cvdbot --home-dir /data --shell /usr/sbin/nologin cvdbot; \
    mkdir -p /data /config; \
    chown cvdbot:cvdbot /data; \
    chmod 0700 /data
COPY --from=build /opt/cvdbot /opt/cvdbot
COPY config.sample.yaml /config/config.sample.yaml
ENV PATH=/opt/cvdbot/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 HOME=/data
USER cvdbot
WORKDIR /data
# The crypto store, the gpg home and the database: point matrix.store_path, pgp.gnupg_home
# and storage.path below /data. A new crypto store is a new device nobody shares keys with.
VOLUME ["/data"]
# GET /healthz on monitoring.listen (a wildcard address is asked on loopback). Without
# monitoring.listen the check says so and passes: the container then ends when cvdbot does,
# and that is all Docker can see. A config elsewhere: --health-cmd with its --config.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python3", "-m", "bot.ops.healthcheck", "--config", "/config/config.yaml"]
ENTRYPOINT ["/usr/bin/tini", "--", "cvdbot"]
CMD ["run", "--config", "/config/config.yaml"]
