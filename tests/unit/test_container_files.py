"""The image's files agree with each other and with the package (no Docker needed): what
the Dockerfile copies, what .dockerignore lets through, the paths compose.yaml mounts.
`tests/integration/test_image.py` (opt in) builds and runs the image itself."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
CONFIG_IN_IMAGE = "/config/config.yaml"


def instructions(name: str) -> list[str]:
    """The arguments of every `NAME ...` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line[len(name) + 1 :] for line in joined.splitlines() if line.startswith(name + " ")]


def test_the_base_image_is_a_build_argument_defaulting_to_the_official_python() -> None:
    assert instructions("ARG")[0] == "BASE_IMAGE=python:3.11-slim-bookworm"
    assert instructions("FROM") == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]


def test_every_package_is_copied_and_passes_dockerignore() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    allowed = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    copies = instructions("COPY")
    for package in packages:
        assert f"{package} ./{package}" in copies, package
        assert f"!{package}" in allowed, package
    assert pyproject["project"]["readme"] == "README.md" and "!README.md" in allowed


def test_non_root_tini_one_volume_and_a_healthcheck_on_the_run_config() -> None:
    assert instructions("USER") == ["cvdbot"]
    assert instructions("VOLUME") == ['["/data"]']
    assert instructions("ENTRYPOINT") == ['["/usr/bin/tini", "--", "cvdbot"]']
    assert instructions("CMD")[-1] == f'["run", "--config", "{CONFIG_IN_IMAGE}"]'
    [healthcheck] = instructions("HEALTHCHECK")
    assert f'"bot.ops.healthcheck", "--config", "{CONFIG_IN_IMAGE}"' in healthcheck


def test_compose_example_puts_the_bot_beside_synapse() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"synapse", "cvdbot"}
    assert services["synapse"]["image"].startswith("matrixdotorg/synapse:")
    bot = services["cvdbot"]
    assert bot["build"]["context"] == "."
    assert "BASE_IMAGE" in bot["build"]["args"]
    assert bot["depends_on"]["synapse"]["condition"] == "service_healthy"
    mounts = dict(volume.split(":", 1) for volume in bot["volumes"])
    assert mounts["cvdbot-data"] == "/data" and "cvdbot-data" in compose["volumes"]
    assert mounts["./config.yaml"] == f"{CONFIG_IN_IMAGE}:ro"
    assert "env_file" in bot, "secrets come from the environment, not config.yaml"
    header = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert 'matrix.homeserver: "http://synapse:8008"' in header
