"""The image's HEALTHCHECK (`python -m bot.ops.healthcheck`) against a real HTTP endpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.ops.healthcheck import main, probe_url
from tests.harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config.sample.yaml"


class _Endpoint(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"healthy\nok sync: 1 s ago\n" if self.status == 200 else b"unhealthy\nFAILED sync\n"
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Endpoint.status = 200


def listen_env(server: ThreadingHTTPServer, host: str = "127.0.0.1") -> dict[str, str]:
    return {"CVDBOT_MONITORING__LISTEN": f"{host}:{server.server_address[1]}"}


def test_probe_url_asks_a_wildcard_address_on_loopback() -> None:
    assert probe_url("127.0.0.1:9464") == "http://127.0.0.1:9464/healthz"
    assert probe_url("0.0.0.0:9464") == "http://127.0.0.1:9464/healthz"
    assert probe_url("[::]:9464") == "http://[::1]:9464/healthz"
    assert probe_url("[::1]:9464") == "http://[::1]:9464/healthz"
    assert probe_url("cvdbot.internal:9464") == "http://cvdbot.internal:9464/healthz"


def test_healthy_is_exit_0_and_prints_the_answer(
    endpoint: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    wildcard = listen_env(endpoint, "0.0.0.0")  # noqa: S104 - asked on loopback
    assert main(["--config", str(SAMPLE)], wildcard) == 0
    assert "ok sync" in capsys.readouterr().out


def test_unhealthy_or_unreachable_is_exit_1(
    endpoint: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _Endpoint.status = 503
    assert main(["--config", str(SAMPLE)], listen_env(endpoint)) == 1
    assert "FAILED sync" in capsys.readouterr().out
    closed = {"CVDBOT_MONITORING__LISTEN": f"127.0.0.1:{free_port()}"}
    assert main(["--config", str(SAMPLE)], closed) == 1
    assert "no answer" in capsys.readouterr().out


def test_without_monitoring_listen_it_says_so_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SAMPLE.read_text(encoding="utf-8")
    assert '  listen: "127.0.0.1:9464"\n' in text
    config = tmp_path / "config.yaml"
    config.write_text(text.replace('  listen: "127.0.0.1:9464"\n', ""), encoding="utf-8")
    assert main(["--config", str(config)], {}) == 0
    assert "monitoring.listen is not set" in capsys.readouterr().out


def test_a_broken_config_is_unhealthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "missing.yaml")], {}) == 1
    assert "file not found" in capsys.readouterr().out
