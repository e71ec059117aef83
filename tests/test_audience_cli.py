"""`smartd campaign create --default`, `upload --number-column --map` and `campaign rejected`
(issue 14) as an operator runs them: real processes against a real database."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.test_cli_commands import _created_id, _smartd


def _campaign(database_url: str, *extra: str) -> int:
    return _created_id(
        _smartd(
            database_url,
            "campaign",
            "create",
            "--name",
            "Spring",
            "--variable",
            "name",
            "--text",
            "ru=Привет, {name}",
            "--text",
            "kk=Сәлем, {name}",
            *extra,
        )
    )


def test_upload_with_a_mapping_and_every_rejected_row(database_url: str, tmp_path: Path) -> None:
    campaign = _campaign(database_url)
    audience = tmp_path / "export.csv"
    rows = ["Телефон;Имя", "+77010000001;Әлия", "87172123456;Болат"]
    rows += [f"bad{n};X" for n in range(120)]
    audience.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    refused = _smartd(database_url, "campaign", "upload", str(campaign), str(audience))
    assert refused.returncode == 1
    assert "found: Телефон, Имя" in refused.stderr and "--map name=" in refused.stderr
    upload = _smartd(
        database_url,
        "campaign",
        "upload",
        str(campaign),
        str(audience),
        "--number-column",
        "Телефон",
        "--map",
        "name=Имя",
    )
    assert upload.returncode == 3, upload.stderr
    assert "upload 1: accepted 1, duplicates 0, rejected 121" in upload.stdout
    assert f"smartd campaign rejected {campaign} --upload 1" in upload.stdout
    output = tmp_path / "rejected.csv"
    saved = _smartd(database_url, "campaign", "rejected", str(campaign), "--output", str(output))
    assert saved.returncode == 0, saved.stderr
    assert f"121 rejected rows written to {output}" in saved.stdout
    lines = list(csv.reader(output.open(encoding="utf-8", newline="")))
    assert lines[0] == ["upload", "line", "value", "reason"]
    assert lines[1] == ["1", "3", "87172123456", "fixed-line number"]
    assert len(lines) - 1 == 121
    printed = _smartd(database_url, "campaign", "rejected", str(campaign), "--upload", "1")
    assert printed.returncode == 0 and printed.stdout.count("not a phone number") == 120
    missing = _smartd(database_url, "campaign", "rejected", str(campaign), "--upload", "7")
    assert missing.returncode == 1 and "has no upload 7" in missing.stderr


def test_create_with_defaults(database_url: str, tmp_path: Path) -> None:
    campaign = _campaign(database_url, "--default", "name=друг")
    audience = tmp_path / "a.csv"
    audience.write_text("msisdn,name\n77010000001,\n77010000002,Dana\n", encoding="utf-8")
    upload = _smartd(database_url, "campaign", "upload", str(campaign), str(audience))
    assert upload.returncode == 0, upload.stderr
    assert "accepted 2, duplicates 0, rejected 0" in upload.stdout
    bad = _smartd(database_url, "campaign", "create", "--name", "X", "--default", "oops")
    assert bad.returncode == 1 and "expected NAME=TEXT" in bad.stderr
