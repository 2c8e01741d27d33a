"""The baseline: a bare matrix-nio E2EE client, the least any bot must do to answer a message.

It answers every `!status` in its room with a threaded reply, and on request (a line
`burst N TAG` on stdin) sends N plain encrypted messages one after another, printing
`sent TAG` when the last is accepted. It prints `ready` once it has joined and synced.
Nothing else: no database, no outbox, no parsing. The benchmarks run it as its own process,
as the bot is, so both pay for their own event loop and interpreter.

    BENCH_BASELINE_PASSWORD=P python -m bench.echo_client --homeserver URL \
        --user @u:localhost --room '!r:localhost' --store DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    MatrixRoom,
    RoomMessageText,
    RoomSendResponse,
    SyncError,
)

log = logging.getLogger("bench.echo_client")

# The same filter as the bot (bot/matrix/client.py): a large timeline limit and no presence, so the
# two sync loops receive the same amount of data for the same traffic.
SYNC_FILTER: dict[str, Any] = {
    "room": {"timeline": {"limit": 500}, "state": {"lazy_load_members": False}},
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
}
SYNC_TIMEOUT_MS = 30_000
COMMAND = "!status"
REPLY = "status: ok (baseline echo)"
PASSWORD_ENV = "BENCH_BASELINE_PASSWORD"  # noqa: S105 - the variable's name


class EchoClient:
    def __init__(self, homeserver: str, user_id: str, store: Path, room_id: str) -> None:
        store.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
        self.client = AsyncClient(homeserver, user_id, store_path=str(store), config=config)
        self.room_id = room_id
        # Like the bot: key operations of the sync loop and of a send never overlap.
        self._keys_lock = asyncio.Lock()

    async def start(self, password: str) -> None:
        client = self.client
        login = await client.login(password, device_name="bench-baseline")
        if not isinstance(login, LoginResponse):
            raise RuntimeError(f"baseline login failed: {login}")
        # Keys before joining: a member who sends first must find this device's keys.
        if client.should_upload_keys:
            await client.keys_upload()
        joined = await client.join(self.room_id)
        if not isinstance(joined, JoinResponse):
            raise RuntimeError(f"baseline could not join {self.room_id}: {joined}")
        first = await client.sync(timeout=0, sync_filter=SYNC_FILTER, full_state=True)
        if isinstance(first, SyncError):
            raise RuntimeError(f"baseline first sync failed: {first.message}")
        await self._housekeeping()
        # Registered after the first sync: what happened before is history, as for the bot.
        client.add_event_callback(self._on_message, RoomMessageText)

    async def sync_forever(self) -> None:
        while True:
            response = await self.client.sync(timeout=SYNC_TIMEOUT_MS, sync_filter=SYNC_FILTER)
            if isinstance(response, SyncError):
                log.warning("sync failed: %s", response.message)
                await asyncio.sleep(0.5)
                continue
            await self._housekeeping()

    async def _housekeeping(self) -> None:
        client = self.client
        async with self._keys_lock:
            await client.send_to_device_messages()
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if room.room_id != self.room_id or event.sender == self.client.user_id:
            return
        if event.body.strip() != COMMAND:
            return
        relates = event.source.get("content", {}).get("m.relates_to") or {}
        root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        content = {
            "msgtype": "m.notice",
            "body": REPLY,
            "m.mentions": {},
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root or event.event_id,
                "is_falling_back": False,
                "m.in_reply_to": {"event_id": event.event_id},
            },
        }
        await self.send(content)

    async def send(self, content: dict[str, Any]) -> str:
        async with self._keys_lock:
            if self.client.should_query_keys:
                await self.client.keys_query()
            response = await self.client.room_send(
                self.room_id, "m.room.message", content, ignore_unverified_devices=True
            )
        if not isinstance(response, RoomSendResponse):
            raise RuntimeError(f"baseline send failed: {response}")
        return str(response.event_id)

    async def burst(self, count: int, tag: str) -> None:
        for index in range(count):
            await self.send({"msgtype": "m.notice", "body": f"{tag} {index:04d}"})

    async def close(self) -> None:
        # close(), not logout(): like the bot, keep the device.
        await self.client.close()


async def _read_commands(echo: EchoClient) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            return  # EOF or quit: the benchmark is done with us
        words = line.split()
        if words[0] == "burst" and len(words) == 3:
            await echo.burst(int(words[1]), words[2])
            print(f"sent {words[2]}", flush=True)
        else:
            print(f"error unknown command {line!r}", flush=True)


async def main_async(args: argparse.Namespace) -> None:
    echo = EchoClient(args.homeserver, args.user, Path(args.store), args.room)
    try:
        # From the environment, not argv: other local users can read a command line.
        await echo.start(os.environ[PASSWORD_ENV])
        sync = asyncio.create_task(echo.sync_forever())
        print("ready", flush=True)
        commands = asyncio.create_task(_read_commands(echo))
        done, _ = await asyncio.wait([sync, commands], return_when=asyncio.FIRST_COMPLETED)
        for task in (sync, commands):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        await echo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homeserver", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("nio").setLevel(logging.ERROR)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
