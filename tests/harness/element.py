"""A team member's Element, as far as trust goes: `clients/element/element-view.mjs`.

That script runs matrix-js-sdk (Element's SDK) with its Rust crypto; this class starts it as
a child process and speaks its line protocol (one command in, one JSON line out). It needs
Node 20 and `npm`; `ensure_installed()` runs `npm ci` when `node_modules` is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "element"
SCRIPT = CLIENT_DIR / "element-view.mjs"


def ensure_installed() -> None:
    """`npm ci` from the lock file, once: matrix-js-sdk 37.5 and its Rust crypto (wasm)."""
    if (CLIENT_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: the Element check needs Node 20 and npm")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, check=True, timeout=300)


class ElementClient:
    """One matrix-js-sdk device of a room member; `close()` logs it out and ends the process."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self._process = process
        self.log_path = log_path
        self.ready: dict[str, Any] = {}

    @classmethod
    async def start(
        cls,
        *,
        homeserver: str,
        user: str,
        password: str,
        room_id: str,
        bot_user: str,
        bot_device: str,
        log_path: Path,
        cross_sign_self: bool = False,
        isolation: str = "all",
        timeout: float = 60.0,
    ) -> ElementClient:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: the Element check needs Node 20")
        argv = [
            node,
            str(SCRIPT),
            *("--homeserver", homeserver, "--user", user, "--password", password),
            *("--room", room_id, "--bot", bot_user, "--bot-device", bot_device),
            *("--isolation", isolation),
        ]
        if cross_sign_self:
            argv.append("--cross-sign-self")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=CLIENT_DIR,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        client = cls(process, log_path)
        client.ready = await client._answer(timeout)
        assert client.ready.get("ready") is True, client.ready
        return client

    async def _answer(self, timeout: float) -> dict[str, Any]:
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        except TimeoutError:
            message = f"element-view gave no answer in {timeout} s:\n{self._log()}"
            raise TimeoutError(message) from None
        if not line:
            await self._process.wait()
            raise RuntimeError(f"element-view exited ({self._process.returncode}):\n{self._log()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer and "command" not in answer:
            raise RuntimeError(f"element-view failed: {answer['error']}")
        return answer

    def _log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")[-4000:]

    async def command(self, line: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(line.encode() + b"\n")
        await self._process.stdin.drain()
        return await self._answer(timeout)

    async def report(self, event_ids: list[str]) -> dict[str, Any]:
        """Every event as this client decrypts and shields it, plus the bot's trust state."""
        return await self.command("report " + " ".join(event_ids), timeout=30 + 25 * len(event_ids))

    async def close(self) -> None:
        if self._process.returncode is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), 20)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
