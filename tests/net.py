"""Loopback helpers for tests: a free port, and waiting for a started process to answer."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[Any], deadline_s: float = 30.0) -> str:
    """Poll ``url`` until the freshly started ``proc`` answers it with a success; returns the
    body. Start-up, not work, is awaited: fails at once if ``proc`` exits."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.communicate()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:  # refused while starting, or an HTTP error such as 503 not ready
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {deadline_s}s")
