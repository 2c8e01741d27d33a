"""Running gpg on a stranger's data with a wall-clock limit and a cap on what it may output.

A compressed OpenPGP message of a few hundred kilobytes can expand to gigabytes, and
python-gnupg keeps all of gpg's output in memory with no time limit. Here gpg's output is
read in chunks and gpg is killed the moment the output passes the cap or the time is up;
gpg's own ``--max-output`` stops it as well should the kill come late.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from typing import IO

MIB = 1024 * 1024
_CHUNK = 64 * 1024
# gpg's status lines and messages; more than this is not a real run's worth.
_MAX_STDERR = 1 * MIB


@dataclass(frozen=True)
class GpgLimits:
    """What one gpg run on incoming data may cost (the ``limits`` config section)."""

    timeout_seconds: float = 30.0
    max_output_bytes: int = 64 * MIB
    max_expansion_ratio: int = 100
    # Below this much output the ratio does not apply: short text compresses well.
    ratio_floor_bytes: int = 1 * MIB

    def output_cap(self, input_size: int) -> int:
        by_ratio = max(self.ratio_floor_bytes, self.max_expansion_ratio * input_size)
        return min(self.max_output_bytes, by_ratio)


@dataclass(frozen=True)
class BoundedRun:
    stdout: bytes
    stderr: str  # latin-1 decoded; holds the [GNUPG:] status lines with --status-fd 2
    returncode: int | None
    exceeded: str | None  # "output" or "time" when gpg was stopped, else None


def run_bounded(
    cmd: list[str], data: bytes, *, env: dict[str, str], cap: int, timeout: float
) -> BoundedRun:
    """Run `cmd` with `data` on stdin; stop it past `cap` bytes of output or `timeout` s."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err = bytearray()
    over = threading.Event()

    def read_stdout(stream: IO[bytes]) -> None:
        while chunk := stream.read(_CHUNK):
            if len(out) + len(chunk) > cap:
                over.set()
                proc.kill()
                return
            out.extend(chunk)

    def read_stderr(stream: IO[bytes]) -> None:
        while chunk := stream.read(_CHUNK):
            if len(err) < _MAX_STDERR:
                err.extend(chunk[: _MAX_STDERR - len(err)])

    def write_stdin(stream: IO[bytes]) -> None:
        try:
            stream.write(data)
        except (BrokenPipeError, OSError):
            pass  # gpg stopped reading (killed, or it failed early)
        finally:
            try:
                stream.close()
            except OSError:
                pass

    threads = [
        threading.Thread(target=read_stdout, args=(proc.stdout,), daemon=True),
        threading.Thread(target=read_stderr, args=(proc.stderr,), daemon=True),
        threading.Thread(target=write_stdin, args=(proc.stdin,), daemon=True),
    ]
    for thread in threads:
        thread.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    for thread in threads:
        thread.join(5)
    proc.stdout.close()
    proc.stderr.close()
    exceeded = "output" if over.is_set() else ("time" if timed_out else None)
    return BoundedRun(bytes(out), err.decode("latin-1"), proc.returncode, exceeded)
