"""`smartd campaign create --trigger … --max-delay …` (issue 15): a triggered campaign from the
command line, refused with the part of the trigger that is wrong, and its status."""

from __future__ import annotations

from tests.test_cli_commands import _created_id, _smartd

TEXTS = ("--text", "kk=Рақмет!", "--text", "ru=Спасибо!")


def test_create_start_and_status_of_a_triggered_campaign(database_url: str) -> None:
    """--trigger 'top_up amount>=1000' --max-delay 12h creates it with no audience; it
    starts, and its status names the trigger and its counts."""
    created = _smartd(
        database_url,
        "campaign",
        "create",
        "--name",
        "Top-up thanks",
        *TEXTS,
        "--trigger",
        "top_up amount>=1000",
        "--max-delay",
        "12h",
    )
    campaign = _created_id(created)
    assert "triggered on top_up where amount >= 1000, stale after 12h" in created.stdout
    started = _smartd(database_url, "campaign", "start", str(campaign))
    assert started.returncode == 0, started.stderr
    assert f"campaign {campaign} is running" in started.stdout
    status = _smartd(database_url, "campaign", "status", str(campaign))
    assert status.returncode == 0, status.stderr
    assert "triggered on top_up where amount >= 1000" in status.stdout
    assert "events matched: 0 numbers; waiting 0, sent 0, stale 0" in status.stdout


def test_bad_triggers_are_named(database_url: str) -> None:
    """A bad condition, event or delay: exit 1, the part named, nothing created."""
    for trigger, delay, said in (
        ("top_up amount>=lots", "12h", "trigger.condition: amount is compared with a number"),
        ("refill", "12h", "trigger.event: expected one of top_up"),
        ("top_up", "3 weeks", "trigger.max_delay: expected an ISO 8601 duration"),
        ("top_up amount is big", "12h", "expected 'field op value'"),
    ):
        result = _smartd(
            database_url,
            "campaign",
            "create",
            "--name",
            "X",
            *TEXTS,
            "--trigger",
            trigger,
            "--max-delay",
            delay,
        )
        assert result.returncode == 1, result.stdout
        assert said in result.stderr, result.stderr
    alone = _smartd(database_url, "campaign", "create", "--name", "X", *TEXTS, "--max-delay", "1h")
    assert alone.returncode == 1
    assert "--max-delay goes with --trigger" in alone.stderr
