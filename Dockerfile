# cvdbot: one process next to your Synapse. Build: docker build -t cvdbot .
# Run:   docker run -d --name cvdbot -v cvdbot-data:/data \
#          -v /etc/cvdbot/config.yaml:/config/config.yaml:ro \
#          -e CVDBOT_MATRIX__PASSWORD=... -e CVDBOT_IMAP__PASSWORD=... -e CVDBOT_PGP__PASSPHRASE=... \
#          cvdbot
# In config.yaml point matrix.store_path, pgp.gnupg_home and storage.path at /data/...:
# the crypto store, the gpg home and the database must survive restarts and upgrades.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY storage ./storage
# vodozemac (matrix-nio's crypto) ships wheels: no compiler is needed.
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
# gpg for PGP; tini so SIGTERM reaches cvdbot and it shuts down cleanly.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gnupg tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cvdbot \
    && useradd --system --uid 10001 --gid cvdbot --home-dir /data --shell /usr/sbin/nologin cvdbot \
    && mkdir -p /data /config \
    && chown cvdbot:cvdbot /data \
    && chmod 0700 /data
COPY --from=build /install /usr/local
COPY config.sample.yaml /config/config.sample.yaml
USER cvdbot
ENV PYTHONUNBUFFERED=1 HOME=/data
VOLUME ["/data"]
ENTRYPOINT ["/usr/bin/tini", "--", "cvdbot"]
CMD ["run", "--config", "/config/config.yaml"]
