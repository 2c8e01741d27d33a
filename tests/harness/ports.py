"""Loopback port helpers: pick a free port at run time and wait until a server listens on it."""

from __future__ import annotations

import signal
import socket
import subprocess
import time


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The kernel picks it (bind to port 0), so parallel runs do not collide on fixed numbers.
    The socket is closed before returning; there is a tiny window in which another process
    could take the port, which is acceptable for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port is accepted right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Block until host:port accepts TCP connections; raise TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if port_is_open(host, port):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.1f} s")
        time.sleep(0.05)


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM a server process, wait, SIGKILL if it hangs. No-op when it already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
