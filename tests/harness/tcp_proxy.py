"""A TCP proxy in front of a real server that a test can make misbehave, like the network
and reverse proxies of a real deployment do.

Modes (switch at any time with `set_mode`):

* ``forward``: bytes pass both ways unchanged.
* ``bad_gateway``: every new connection gets ``HTTP/1.1 502 Bad Gateway`` and is closed,
  as nginx answers while the homeserver behind it restarts. Connections already open are
  closed too.
* ``freeze``: a silent network (a NAT that forgot the connection): open connections stay
  open but nothing passes, new connections are accepted and hear nothing. Leaving `freeze`
  closes every frozen connection, as the real peer would eventually reset them.

`stop()` closes the listener: connecting is then refused. `start()` listens again on the
same port. Runs its own event loop in a thread, so synchronous and async tests can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from typing import Any

from tests.harness.ports import free_port

_BODY = b"<h1>502 Bad Gateway</h1>"
BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
    + f"Content-Length: {len(_BODY)}\r\n".encode()
    + b"Connection: close\r\n\r\n"
    + _BODY
)
MODES = ("forward", "bad_gateway", "freeze")


class TcpProxy:
    host = "127.0.0.1"

    def __init__(self, upstream_host: str, upstream_port: int, *, mode: str = "forward") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.mode = mode
        self.connections_seen = 0
        self.bad_gateway_answers = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=30)

    def start(self) -> None:
        self._call(self._start())

    def stop(self) -> None:
        """Close the listener and every connection: connecting is refused from now on."""
        self._call(self._stop())

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self._call(self._set_mode(mode))

    def close(self) -> None:
        """Stop and end the proxy's thread (the end of a test)."""
        with contextlib.suppress(Exception):
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._close_all()

    async def _set_mode(self, mode: str) -> None:
        old, self.mode = self.mode, mode
        if old == "freeze" or mode == "bad_gateway":
            self._close_all()

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_seen += 1
        self._writers.add(writer)
        try:
            if self.mode == "bad_gateway":
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                self.bad_gateway_answers += 1
                writer.write(BAD_GATEWAY)
                with contextlib.suppress(OSError):
                    await writer.drain()
                return
            if self.mode == "freeze":
                await reader.read()  # hear nothing, say nothing, until closed
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                # The upstream is down: a reverse proxy answers 502 rather than refusing.
                self.bad_gateway_answers += 1
                writer.write(BAD_GATEWAY)
                with contextlib.suppress(OSError):
                    await writer.drain()
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                while self.mode == "freeze":
                    # Nothing passes while frozen; leaving freeze aborts this connection.
                    await asyncio.sleep(0.05)
                    if writer.transport.is_closing():
                        return
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()
