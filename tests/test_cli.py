"""The `smartd` command line as an operator runs it: real processes, real database."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from dispatcher.cli_common import run_loop
from dispatcher.embedded import traversable_tempdir
from tests.net import free_port, wait_http


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without any SMARTD_* of the developer's, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    return {**base, **extra}


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_with_no_database_configured_uses_embedded() -> None:
    """With no URL, `smartd migrate` creates and migrates an embedded server; again is a no-op."""
    # Not pytest's tmp_path, which is under a 0700 directory: as root, the embedded server
    # (run as its own user) could not reach it, and smartd refuses to loosen it.
    home = traversable_tempdir("smartd-cli-")
    try:
        env = {"SMARTD_DATA_DIR": str(home / "data")}
        first = _run("migrate", env=env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("applied 0001_schema.sql")
        assert (home / "data" / "pgdata" / "PG_VERSION").exists()
        second = _run("migrate", env=env)
        assert (second.returncode, second.stdout) == (0, "database is up to date\n")
        pid_file = home / "data" / "pgdata" / "postmaster.pid"
        assert not pid_file.exists(), "the embedded server is stopped when the last user exits"
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_token_create_prints_token_last(database_url: str) -> None:
    """`smartd token create` prints the token alone on its last line; list never shows it."""
    env = {"SMARTD_DATABASE_URL": database_url}
    created = _run("token", "create", "--role", "marketer", "--name", "ops", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("smartd_") and " " not in token
    listed = _run("token", "list", env=env)
    assert "ops\tmarketer\tactive" in listed.stdout and token not in listed.stdout
    assert token not in created.stderr


def test_token_create_rejects_unknown_role(database_url: str) -> None:
    """An unknown role is a usage error naming the choices."""
    result = _run(
        "token",
        "create",
        "--role",
        "root",
        "--name",
        "x",
        env={"SMARTD_DATABASE_URL": database_url},
    )
    assert result.returncode == 2 and "invalid choice: 'root'" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_health_and_stops_cleanly(database_url: str, sig: signal.Signals) -> None:
    """`smartd serve` with no SMSC is alive and ready for HTTP, its engine not ready (503), and
    it exits 0 on SIGTERM or SIGINT."""
    port = free_port()
    env = _env(
        SMARTD_DATABASE_URL=database_url,
        SMARTD_HTTP_PORT=str(port),
        SMARTD_SMPP_PORT=str(free_port()),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert '"ok"' in wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        # No SMSC to bind to: ready for HTTP (USSD is still answered), the engine is not.
        assert '"ready"' in wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz/engine", timeout=5)
        assert not_ready.value.code == 503
        body = json.loads(not_ready.value.read())
        assert body["checks"] == {"database": True, "smpp": False}
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "shutting down" in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_stopped_while_starting_exits_cleanly() -> None:
    """A SIGTERM while `smartd serve` is still starting (here: its database accepts the
    connection and never answers) stops it with status 0, as a started one would; before,
    the signal's default action killed it (status -15: a replacement replica told to stop
    before it came up, tests/reliability/test_kill.py)."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "serve"],
            env=_env(
                SMARTD_DATABASE_URL=f"postgresql://smartd@127.0.0.1:{port}/smartd",
                SMARTD_HTTP_PORT=str(free_port()),
                SMARTD_SMPP_PORT=str(free_port()),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            silent.settimeout(60)
            connection, _ = silent.accept()  # serve is inside its start-up, waiting on it
            with connection:
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert "shutting down" in err
            assert "serving" not in err
        finally:
            if proc.poll() is None:
                proc.kill()


def test_serve_catches_sigterm_from_its_first_line() -> None:
    """`smartd serve` catches SIGTERM before its imports (a second or more of start-up on a
    busy host, where a replica stopped at once used to die of the signal, status -15:
    tests/reliability/test_kill.py), and exits 0 on it; other commands keep the default."""
    probe = (
        "import signal, sys; sys.argv[1:] = {argv!r}; import dispatcher.cli as cli; "
        "print(signal.getsignal(signal.SIGTERM) is cli._stopped_while_importing)"
    )
    for argv, caught in ((["serve"], "True"), (["migrate"], "False")):
        run = subprocess.run(
            [sys.executable, "-c", probe.format(argv=argv)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.stdout.strip() == caught, run.stderr
    stopped = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; sys.argv[1:] = ['serve']; import dispatcher.cli; "
            "os.kill(os.getpid(), signal.SIGTERM); print('not stopped')",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (stopped.returncode, stopped.stdout) == (0, ""), stopped.stderr


def test_commands_run_on_the_configured_event_loop() -> None:
    """SMARTD_EVENT_LOOP: uvloop (the default) or Python's own loop."""
    import uvloop

    async def running_loop() -> type:
        return type(asyncio.get_running_loop())

    assert issubclass(run_loop(running_loop(), "uvloop"), uvloop.Loop)
    assert not issubclass(run_loop(running_loop(), "asyncio"), uvloop.Loop)
