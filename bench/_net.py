"""Loopback helpers shared by the benchmarks."""

from __future__ import annotations

import os
import socket
from pathlib import Path

#: A serve child's clock: 17:00 Astana, inside the send window.
CLOCK_START = "2026-11-23T12:00:00+00:00"
#: The simulator's credential for the serve children (``smartd:benchpw``).
SMPP_PASSWORD = "benchpw"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_env(
    url: str, http_port: int, smpp_port: int, data_dir: Path, **settings: str
) -> dict[str, str]:
    """The environment of a ``smartd serve`` child on loopback: this process's environment
    without its ``SMARTD_`` settings, the database at ``url``, HTTP on ``http_port``, the
    simulator on ``smpp_port`` with :data:`SMPP_PASSWORD`, the clock pinned at
    :data:`CLOCK_START`, no scheduler, warnings only; ``settings`` (``SMARTD_…``) on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    return env | {
        "SMARTD_DATABASE_URL": url,
        "SMARTD_HTTP_HOST": "127.0.0.1",
        "SMARTD_HTTP_PORT": str(http_port),
        "SMARTD_SMPP_HOST": "127.0.0.1",
        "SMARTD_SMPP_PORT": str(smpp_port),
        "SMARTD_SMPP_SYSTEM_ID": "smartd",
        "SMARTD_SMPP_PASSWORD": SMPP_PASSWORD,
        "SMARTD_CLOCK_START": CLOCK_START,
        "SMARTD_SCHEDULER_ENABLED": "false",
        "SMARTD_LOG_LEVEL": "warning",
        "SMARTD_DATA_DIR": str(data_dir),
        **settings,
    }
