"""`smartd campaign|import-subscribers|bonus|smsc-sim|token` as an operator runs them: real
processes against a real database."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from campaigns.csvstream import MAX_LINE
from dispatcher.db import Database
from tests.factories import members
from tests.net import free_port, wait_http
from tests.test_cli import _env, _run

MEMBERS = ["77011000001", "77011000002"]


def _smartd(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(*args, env={"SMARTD_DATABASE_URL": database_url})


def _created_id(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("created campaign ")
    return int(first.split()[2])


def test_campaign_create_from_flags_and_from_a_file(database_url: str, tmp_path: Path) -> None:
    """Flags or a JSON spec file create a draft; flags override the file."""
    by_flags = _smartd(
        database_url,
        "campaign",
        "create",
        "--name",
        "Coffee",
        "--text",
        "ru=Кофе -20%",
        "--text",
        "kk=Кофе -20%",
    )
    assert "state draft" in by_flags.stdout
    _created_id(by_flags)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "Tea", "kind": "info", "texts": {"kk": "Шай"}}))
    by_file = _smartd(database_url, "campaign", "create", "--file", str(spec), "--name", "Chai")
    assert "(Chai)" in by_file.stdout
    _created_id(by_file)


def test_campaign_create_reports_each_invalid_field(database_url: str) -> None:
    """An invalid spec names each bad field on stderr and exits 1; nothing is created."""
    result = _smartd(database_url, "campaign", "create", "--text", "de=Hallo")
    assert result.returncode == 1
    assert "name: required text" in result.stderr
    assert "texts: unknown language(s) de" in result.stderr
    assert "nothing was created" in result.stderr


def test_upload_start_and_status(database_url: str, tmp_path: Path) -> None:
    """Upload reports accepted and rejected rows by line (exit 3); start and status follow."""
    campaign = _created_id(
        _smartd(
            database_url,
            "campaign",
            "create",
            "--name",
            "A",
            "--text",
            "ru=Привет",
            "--text",
            "kk=Сәлем",
        )
    )
    audience = tmp_path / "audience.csv"
    audience.write_text(f"msisdn\n{MEMBERS[0]}\nnot-a-number\n{MEMBERS[1]}\n{MEMBERS[0]}\n")
    upload = _smartd(database_url, "campaign", "upload", str(campaign), str(audience))
    assert upload.returncode == 3, upload.stderr
    assert "accepted 2, duplicates 1, rejected 1" in upload.stdout
    assert "line 3: 'not-a-number': not a phone number" in upload.stdout
    started = _smartd(database_url, "campaign", "start", str(campaign))
    assert (started.returncode, started.stdout.strip()) == (0, f"campaign {campaign} is running")
    status = _smartd(database_url, "campaign", "status", str(campaign))
    assert status.returncode == 0, status.stderr
    assert "running" in status.stdout and "queued" in status.stdout
    assert "0/2 done" in status.stdout


def test_upload_refusals_are_clear_and_change_nothing(database_url: str, tmp_path: Path) -> None:
    """Invalid UTF-8 names its line; an unknown campaign and a missing file are errors."""
    campaign = _created_id(
        _smartd(
            database_url,
            "campaign",
            "create",
            "--name",
            "B",
            "--text",
            "ru=Привет",
            "--text",
            "kk=Сәлем",
        )
    )
    broken = tmp_path / "broken.csv"
    broken.write_bytes(f"{MEMBERS[0]}\n{MEMBERS[1]}\n\xff\xfe\n".encode("latin-1"))
    refused = _smartd(database_url, "campaign", "upload", str(campaign), str(broken))
    assert refused.returncode == 1
    assert "line 3 is not valid UTF-8" in refused.stderr and "nothing was added" in refused.stderr
    unknown = _smartd(database_url, "campaign", "upload", "999", str(broken))
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "smartd: no campaign 999")
    missing = _smartd(database_url, "campaign", "upload", str(campaign), "/no/such.csv")
    assert missing.returncode == 2 and "no such file: /no/such.csv" in missing.stderr


def test_import_refuses_a_line_too_long(database_url: str, tmp_path: Path) -> None:
    """A line over the maximum length is refused naming its line, with a hint; exit 1."""
    csv = tmp_path / "long.csv"
    csv.write_bytes(b"77011000001,active,ru\n77011000002,active," + b"r" * (MAX_LINE + 1))
    result = _smartd(database_url, "import-subscribers", str(csv))
    assert result.returncode == 1
    assert f"line 2 is longer than {MAX_LINE} characters; nothing was imported" in result.stderr
    assert "hint: " in result.stderr


def test_start_refused_names_the_state(database_url: str) -> None:
    """Starting a campaign with no audience is refused with the reason; exit 1."""
    campaign = _created_id(
        _smartd(
            database_url,
            "campaign",
            "create",
            "--name",
            "C",
            "--text",
            "ru=Привет",
            "--text",
            "kk=Сәлем",
        )
    )
    result = _smartd(database_url, "campaign", "start", str(campaign))
    assert result.returncode == 1
    assert f"campaign {campaign}: cannot start: the campaign has no audience yet" in result.stderr


async def test_import_subscribers(database_url: str, tmp_path: Path) -> None:
    """Good rows are upserted, bad rows reported by line (exit 3), a re-run changes nothing."""
    csv = tmp_path / "subscribers.csv"
    csv.write_text(
        "msisdn,status,language\n"
        "+7 701 100 00 01,active,kk\n"
        "77011000002,blocked,\n"
        "12345,active,ru\n"
        "77011000003,sleeping,ru\n"
        "77011000004,active,de\n"
    )
    first = _smartd(database_url, "import-subscribers", str(csv))
    assert first.returncode == 3, first.stderr
    assert "inserted 2, updated 0, unchanged 0" in first.stdout
    assert "line 4: '12345': " in first.stdout
    assert "line 5: '77011000003': unknown status 'sleeping'" in first.stdout
    assert "line 6: '77011000004': unknown language 'de'" in first.stdout
    again = _smartd(database_url, "import-subscribers", str(csv))
    assert "inserted 0, updated 0, unchanged 2" in again.stdout
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT msisdn, status::text, language::text FROM subscribers")
    finally:
        await conn.close()
    assert sorted(tuple(r) for r in rows) == [
        ("77011000001", "active", "kk"),
        ("77011000002", "blocked", None),
    ]


def test_import_refuses_a_file_that_is_not_utf8(database_url: str, tmp_path: Path) -> None:
    """A file with invalid UTF-8 is refused whole, naming the line; exit 1."""
    csv = tmp_path / "latin.csv"
    csv.write_bytes("77011000001,active,ru\n77011000002,active,ru\xe9\n".encode("latin-1"))
    result = _smartd(database_url, "import-subscribers", str(csv))
    assert result.returncode == 1
    assert "line 2 is not valid UTF-8; nothing was imported" in result.stderr


async def test_bonus_grant_month_once(database: Database, database_url: str) -> None:
    """The monthly grant runs now for every member; a second run grants nobody."""
    # The command runs on the real clock: these members joined long before its month.
    await members(database, MEMBERS, joined_at=datetime(2020, 1, 1, tzinfo=UTC))
    first = _smartd(database_url, "bonus", "grant-month")
    second = _smartd(database_url, "bonus", "grant-month")
    grants = await database.pool.fetchval("SELECT count(*) FROM bonus_grants")
    assert first.returncode == 0, first.stderr
    assert ": granted 2 members 500 units each" in first.stdout
    assert "nothing granted" in second.stdout
    assert grants == 2


def test_token_list_shows_expiry_and_last_use_and_revoke(database_url: str) -> None:
    """`token list` shows state, expiry and last use; `token revoke ID` revokes once."""
    created = _smartd(
        database_url,
        "token",
        "create",
        "--role",
        "viewer",
        "--name",
        "bi",
        "--expires-in-days",
        "30",
    )
    token_id = created.stdout.split()[2]
    listed = _smartd(database_url, "token", "list").stdout.splitlines()
    assert listed[0] == "id\tname\trole\tstate\tcreated\texpires\tlast used"
    row = listed[1].split("\t")
    assert row[:4] == [token_id, "bi", "viewer", "active"]
    assert row[5] != "never" and row[6] == "never"
    revoked = _smartd(database_url, "token", "revoke", token_id)
    assert revoked.stdout.strip() == f"revoked token {token_id}"
    assert "\trevoked\t" in _smartd(database_url, "token", "list").stdout
    again = _smartd(database_url, "token", "revoke", token_id)
    assert again.returncode == 1 and "no active token" in again.stderr


def test_smsc_sim_listens_and_stops_on_sigterm() -> None:
    """`smartd smsc-sim --port N` serves the simulator and exits 0 on SIGTERM."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "smsc-sim", "--port", str(port), "--tps", "50"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the simulator is listening
        assert line.strip() == f"SMSC simulator listening on 127.0.0.1:{port}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_status_watch_returns_once_the_campaign_is_finished(database_url: str) -> None:
    """`status --watch` of a cancelled campaign prints once and exits; unknown ids exit 1."""
    campaign = _created_id(
        _smartd(
            database_url,
            "campaign",
            "create",
            "--name",
            "D",
            "--text",
            "ru=Привет",
            "--text",
            "kk=Сәлем",
        )
    )
    cancelled = _smartd(database_url, "campaign", "cancel", str(campaign))
    assert cancelled.stdout.strip() == f"campaign {campaign} is cancelled"
    watched = _smartd(database_url, "campaign", "status", str(campaign), "--watch")
    assert watched.returncode == 0 and "— cancelled" in watched.stdout
    unknown = _smartd(database_url, "campaign", "status", "424242")
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "smartd: no campaign 424242")


def test_serve_against_smsc_sim_is_ready_and_reports_the_bind(database_url: str) -> None:
    """`smartd serve` bound to `smartd smsc-sim`: /readyz and /readyz/engine 200 and the
    session state metric."""
    sim_port, http_port = free_port(), free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "smsc-sim", "--port", str(sim_port)],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    serve = None
    try:
        assert sim.stdout is not None and "listening" in sim.stdout.readline()
        env = _env(
            SMARTD_DATABASE_URL=database_url,
            SMARTD_HTTP_PORT=str(http_port),
            SMARTD_SMPP_PORT=str(sim_port),
        )
        serve = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{http_port}"
        assert '"ready"' in wait_http(f"{base}/readyz", serve)
        assert '"smpp": true' in wait_http(f"{base}/readyz/engine", serve)
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'smartd_smpp_session_state{state="bound"} 1.0' in text
        assert "smartd_smpp_binds_total 1.0" in text
    finally:
        for proc in (serve, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
