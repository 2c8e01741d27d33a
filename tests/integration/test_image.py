"""The container image against the real servers (opt in: `make image-test`, see README
"The container image"): `make image` builds it, then inside it, as the image's non-root user
with /data mounted and the secrets from the environment, `cvdbot check-config` and
`cvdbot doctor` pass, and `cvdbot run` under tini turns a mailed report into one thread,
turns healthy through the image's HEALTHCHECK, and stops cleanly on `docker stop`.

Marked `image`: pyproject's addopts leave it out of `make test` (which needs no Docker);
`pytest -m image` asks for it. It needs a running Docker daemon and, for the Debian base,
root and debootstrap. The containers use the host's network to reach the test servers on
loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.bot import IMAP_LINE, READY_LINE, CvdDeployment
from tests.harness.gpg_agents import stop_agents_under
from tests.harness.ports import free_port
from tests.harness.quiescence import wait_quiescent_and_seen
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report

# A first `make image` builds the Debian base and downloads every package: minutes.
pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("CVDBOT_IMAGE", "cvdbot:latest")
IMAGE_UID = 10001  # the Dockerfile's cvdbot user
DATA = "/data"
CHECK_LINE = re.compile(r"^(ok|warning|failed)\s+(\S+(?: room)?)\s")  # as test_operator.py


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def image() -> str:
    """The image of the code under test: `make image` (cached layers make a rebuild quick)."""
    if shutil.which("docker") is None or docker("info", check=False).returncode != 0:
        pytest.fail("the image test needs a running Docker daemon (README 'The container image')")
    started = time.monotonic()
    build = subprocess.run(
        ["make", "image", f"IMAGE={IMAGE}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    size = int(docker("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout)
    print(f"make image: {time.monotonic() - started:.1f} s, {IMAGE} {size / 1e6:.0f} MB")
    return IMAGE


def container_config(d: CvdDeployment, monitor_port: int) -> dict[str, Any]:
    """The deployment's config as an operator writes it for the image: every path below the
    /data volume, the secrets left out (they come from the environment)."""
    config = d.config()
    config["matrix"]["store_path"] = f"{DATA}/matrix-store"
    config["pgp"]["gnupg_home"] = f"{DATA}/gnupg"
    config["storage"]["path"] = f"{DATA}/cvdbot.sqlite3"
    del config["matrix"]["password"], config["imap"]["password"], config["pgp"]["passphrase"]
    config["monitoring"] = {"listen": f"127.0.0.1:{monitor_port}", "stall_after_seconds": 60}
    return config


def run_args(d: CvdDeployment, config_path: Path) -> list[str]:
    """`docker run` options: the host's network (the servers listen on loopback), /data and
    the config mounted as README says, the secrets as CVDBOT_* variables."""
    secrets = {
        "CVDBOT_MATRIX__PASSWORD": d.bot_password,
        "CVDBOT_IMAP__PASSWORD": d.mailbox_password,
        "CVDBOT_PGP__PASSPHRASE": "bot-passphrase",
    }
    args = ["--network", "host", "-v", f"{d.workdir / 'data'}:{DATA}"]
    args += ["-v", f"{config_path}:/config/config.yaml:ro"]
    for name, value in secrets.items():
        args += ["-e", f"{name}={value}"]
    if os.geteuid() != 0:  # files made by this user: run as it, still not root
        args += ["--user", f"{os.getuid()}:{os.getgid()}"]
    return args


def hand_data_to_image_user(d: CvdDeployment) -> None:
    """The gpg home was made on the host: stop its agent, give /data to the image's user."""
    stop_agents_under(d.workdir)
    if os.geteuid() == 0:
        for path in [d.workdir / "data", *(d.workdir / "data").rglob("*")]:
            os.chown(path, IMAGE_UID, IMAGE_UID, follow_symlinks=False)


def wait_logged(name: str, text: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while True:
        logs = docker("logs", name, check=False)
        output = logs.stdout + logs.stderr
        if text in output:
            return output
        state = docker("inspect", name, "--format", "{{.State.Status}}", check=False).stdout
        if state.strip() == "exited" or time.monotonic() > deadline:
            raise AssertionError(
                f"{name} did not log {text!r} ({state.strip()}):\n{output[-4000:]}"
            )
        time.sleep(0.2)


def health_status(name: str) -> dict[str, Any]:
    return json.loads(docker("inspect", name, "--format", "{{json .State.Health}}").stdout)


async def test_the_image_checks_runs_and_stops_cleanly(
    image: str, make_deployment: MakeDeployment
) -> None:
    timings: dict[str, float] = {}
    d = await make_deployment()
    monitor_port = free_port()
    config_path = d.workdir / "container-config.yaml"
    config_path.write_text(yaml.safe_dump(container_config(d, monitor_port)), encoding="utf-8")
    hand_data_to_image_user(d)
    args = run_args(d, config_path)

    started = time.monotonic()
    checked = docker("run", "--rm", *args, image, "check-config", "--config", "/config/config.yaml")
    assert "configuration is valid" in checked.stdout, checked.stdout + checked.stderr
    timings["check-config"] = time.monotonic() - started

    name = f"cvdbot-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    docker("run", "-d", "--name", name, "--health-interval", "2s", *args, image)
    try:
        wait_logged(name, READY_LINE)
        wait_logged(name, IMAP_LINE)
        timings["run until ready"] = time.monotonic() - started
        assert docker("exec", name, "id", "-u").stdout.strip() != "0"
        assert (d.store_path).stat().st_uid == (IMAGE_UID if os.geteuid() == 0 else os.getuid())

        started = time.monotonic()
        # As an operator checks a running deployment: the device exists, the room is joined.
        doctor = docker(
            "exec", name, "cvdbot", "doctor", "--config", "/config/config.yaml", check=False
        )
        timings["doctor"] = time.monotonic() - started
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        verdicts = dict(
            (match.group(2), match.group(1))
            for match in map(CHECK_LINE.match, doctor.stdout.splitlines())
            if match
        )
        for check in ("homeserver", "login", "case room", "imap", "smtp", "gpg", "calendar"):
            assert verdicts.get(check) == "ok", doctor.stdout
        assert "failed" not in verdicts.values(), doctor.stdout

        subject = "Open redirect in the container test"
        started = time.monotonic()
        d.append_mail(report(subject=subject, body=ENGLISH_BODY))
        root = await d.team.wait_for_message(
            d.room_id,
            lambda m: m.thread_root is None and "New report" in m.body and subject in m.body,
            timeout=60,
        )
        timings["report to thread"] = time.monotonic() - started
        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        roots = [
            m for m in d.team.messages(d.room_id) if m.thread_root is None and subject in m.body
        ]
        assert [m.event_id for m in roots] == [root.event_id]
        assert any(m.thread_root == root.event_id for m in d.team.messages(d.room_id))
        assert d.team.undecryptable(d.room_id) == []

        deadline = time.monotonic() + 60
        while (health := health_status(name))["Status"] != "healthy":
            assert time.monotonic() < deadline, health
            time.sleep(0.5)
        assert health["Log"][-1]["ExitCode"] == 0
        assert "healthy" in health["Log"][-1]["Output"]
        url = f"http://127.0.0.1:{monitor_port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200

        started = time.monotonic()
        docker("stop", "-t", "30", name, timeout=60)
        timings["docker stop"] = time.monotonic() - started
        state = json.loads(docker("inspect", name, "--format", "{{json .State}}").stdout)
        logs = docker("logs", name).stderr + docker("logs", name).stdout
        assert state["ExitCode"] == 0, logs[-4000:]
        assert "cvdbot stopped" in logs, logs[-4000:]
    finally:
        docker("rm", "-f", name, check=False)
    print("image test: " + ", ".join(f"{step} {secs:.1f} s" for step, secs in timings.items()))
