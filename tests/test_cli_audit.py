"""`smartd campaign approve` and `smartd audit` as operators run them (issue 15): real
processes against a real database, the clock pinned by SMARTD_CLOCK_START (2026-11-23 17:00
Astana). The CLI acts as ``cli:<os user>`` (getpass: $LOGNAME, $USER), so two host users are
two people: the maker cannot approve their own campaign, a second user can."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.test_cli import _run

CLOCK = "2026-11-23T12:00:00+00:00"


def _as(user: str, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "SMARTD_DATABASE_URL": database_url,
        "SMARTD_CLOCK_START": CLOCK,
        "SMARTD_APPROVAL_REQUIRED": "true",
        "LOGNAME": user,
        "USER": user,
    }
    return _run(*args, env=env)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_maker_then_checker_at_the_command_line(database_url: str, tmp_path: Path) -> None:
    """aida creates and uploads; her start and her own approval are refused; bolat approves
    the version he reviewed; aida starts; `smartd audit --campaign` lists it all, newest
    first, in Astana time without microseconds."""
    created = _ok(
        _as(
            "aida",
            database_url,
            *("campaign", "create", "--name", "Coffee", "--text", "kk=Кофе", "--text", "ru=Кофе"),
        )
    )
    campaign = created.split()[2]
    audience = tmp_path / "audience.csv"
    audience.write_text("77010000001\n77010000002\n")
    _ok(_as("aida", database_url, "campaign", "upload", campaign, str(audience)))

    start = _as("aida", database_url, "campaign", "start", campaign)
    assert start.returncode == 1
    assert "needs an approval by someone other than its creator" in start.stderr

    own = _as("aida", database_url, "campaign", "approve", campaign)
    assert own.returncode == 1
    assert "its creator cannot approve it" in own.stderr and "(self_approval)" in own.stderr

    stale = _as("bolat", database_url, "campaign", "approve", campaign, "--version", "1")
    assert stale.returncode == 1 and "(content_changed)" in stale.stderr

    approved = _ok(_as("bolat", database_url, "campaign", "approve", campaign, "--version", "2"))
    assert approved == f"campaign {campaign} (Coffee) approved by cli:bolat, content version 2\n"
    assert _ok(_as("aida", database_url, "campaign", "start", campaign)) == (
        f"campaign {campaign} is running\n"
    )

    lines = _ok(_as("bolat", database_url, "audit", "--campaign", campaign)).splitlines()
    assert [line.split("  ")[2:4] for line in lines] == [
        ["cli:aida (admin)", "start"],
        ["cli:bolat (admin)", "approve"],
        ["cli:aida (admin)", "upload"],
        ["cli:aida (admin)", "create"],
    ]
    assert all("  2026-11-23 17:00:00  " in line for line in lines)
    assert '{"content_version": 2}' in lines[1]


def test_audit_filters_pages_and_tokens(database_url: str) -> None:
    """Token create and revoke are recorded (never the token); --action and --limit filter
    and page; a bad filter is a usage error."""
    created = _ok(
        _as("aida", database_url, "token", "create", "--role", "viewer", "--name", "partner-x")
    )
    secret = created.splitlines()[1]
    token_id = created.split()[2]
    _ok(_as("aida", database_url, "token", "revoke", token_id))
    out = _ok(_as("aida", database_url, "audit", "--limit", "1"))
    first, more = out.splitlines()
    assert f"cli:aida (admin)  token_revoke  token:{token_id}" in first
    assert more.startswith("older: smartd audit --before ")
    created_line = _ok(_as("aida", database_url, "audit", "--action", "token_create"))
    assert '"name": "partner-x"' in created_line and '"role": "viewer"' in created_line
    assert secret not in created_line
    assert _ok(_as("aida", database_url, "audit", "--actor", "nobody")) == "no events\n"
    bad = _as("aida", database_url, "audit", "--since", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
