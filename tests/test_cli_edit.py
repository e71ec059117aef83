"""`smartd campaign edit|duplicate` as an operator runs them: real processes against a real
database, the clock pinned by SMARTD_CLOCK_START (2026-11-23 17:00 Astana)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.test_cli import _run

CLOCK = "2026-11-23T12:00:00+00:00"


def _smartd(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(*args, env={"SMARTD_DATABASE_URL": database_url, "SMARTD_CLOCK_START": CLOCK})


def _created(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("created campaign "), result.stdout
    return int(first.split()[2])


def _draft(database_url: str) -> int:
    return _created(
        _smartd(
            database_url,
            "campaign",
            "create",
            "--name",
            "Coffee",
            "--partner",
            "Kofe",
            "--text",
            "kk=Кофе -20%",
            "--text",
            "ru=Кофе -20%",
        )
    )


def test_edit_changes_a_draft_and_warns_of_its_schedule(database_url: str, tmp_path: Path) -> None:
    """Flags (or a JSON file of fields) change a draft; a start outside the window is warned
    in local time, without microseconds."""
    campaign = _draft(database_url)
    edited = _smartd(
        database_url,
        "campaign",
        "edit",
        str(campaign),
        "--name",
        "Coffee 2",
        "--text",
        "en=Coffee -20%",
        "--start-at",
        "2026-11-24T08:30:00.250+05:00",
    )
    assert edited.returncode == 0, edited.stderr
    lines = edited.stdout.splitlines()
    assert lines[0] == f"saved campaign {campaign} (Coffee 2), state draft"
    assert "  en: GSM7, 1 SMS part, 11 characters" in lines
    assert "starts 2026-11-24 08:30:00 (Asia/Almaty)" in edited.stdout
    assert (
        "warning: start_at 2026-11-24 08:30 is outside the send window 10:00-21:00 "
        "(Asia/Almaty): nothing is sent before it opens at 2026-11-24 10:00"
    ) in edited.stdout
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps({"priority": 4, "start_at": None, "partner": "Kofe Boom"}))
    again = _smartd(database_url, "campaign", "edit", str(campaign), "--file", str(fields))
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stdout and "starts when started" in again.stdout


def test_edit_refuses_an_invalid_draft_or_a_running_campaign(
    database_url: str, tmp_path: Path
) -> None:
    """A refused edit names each bad field and exits 1; a running campaign cannot be edited
    and the message says what to do instead."""
    campaign = _draft(database_url)
    invalid = _smartd(
        database_url, "campaign", "edit", str(campaign), "--text", "kk=", "--end-at", "2020-01-01"
    )
    assert invalid.returncode == 1
    assert "end_at:" in invalid.stderr and "nothing was changed" in invalid.stderr
    audience = tmp_path / "a.csv"
    audience.write_text("77011000001\n77011000002\n")
    assert _smartd(database_url, "campaign", "upload", str(campaign), str(audience)).returncode == 0
    assert _smartd(database_url, "campaign", "start", str(campaign)).returncode == 0
    refused = _smartd(database_url, "campaign", "edit", str(campaign), "--name", "X")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"smartd: cannot edit campaign {campaign}: it is running; only a draft can be edited "
        f"(copy it with: smartd campaign duplicate {campaign})"
    )
    missing = _smartd(database_url, "campaign", "edit", "999", "--name", "X")
    assert (missing.returncode, missing.stderr.strip()) == (1, "smartd: no campaign 999")


def test_duplicate_copies_a_running_campaign_into_a_draft(
    database_url: str, tmp_path: Path
) -> None:
    """`duplicate ID` prints the new draft's id, named "… (copy)"; the copy has no audience
    and can be edited."""
    campaign = _draft(database_url)
    audience = tmp_path / "a.csv"
    audience.write_text("77011000001\n")
    assert _smartd(database_url, "campaign", "upload", str(campaign), str(audience)).returncode == 0
    assert _smartd(database_url, "campaign", "start", str(campaign)).returncode == 0
    result = _smartd(database_url, "campaign", "duplicate", str(campaign))
    copy = _created(result)
    assert copy != campaign
    assert result.stdout.splitlines()[0] == (
        f"created campaign {copy} (Coffee (copy)), state draft, a copy of campaign {campaign}"
    )
    status = _smartd(database_url, "campaign", "status", str(copy))
    assert "draft" in status.stdout and "0/0 done" in status.stdout
    assert _smartd(database_url, "campaign", "edit", str(copy), "--name", "Tea").returncode == 0
    missing = _smartd(database_url, "campaign", "duplicate", "999")
    assert (missing.returncode, missing.stderr.strip()) == (1, "smartd: no campaign 999")
