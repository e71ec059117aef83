"""POST /api/v1/subscribers/import: streamed CSV, COPY + one upsert, R12 on recycling."""

from __future__ import annotations

import dataclasses
from typing import Any

from campaigns.csvstream import MAX_LINE
from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.web_helpers import Api, running_api

A, B, C = "77011000001", "77011000002", "77011000003"


async def _import(api: Api, body: bytes | str) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(
        "/api/v1/subscribers/import",
        data=body.encode() if isinstance(body, str) else body,
        headers={**api.auth(Role.ADMIN), "Content-Type": "text/csv"},
    )
    return response.status, await response.json()


async def _rows(database: Database) -> dict[str, tuple[str, str | None]]:
    rows = await database.pool.fetch("SELECT msisdn, status::text, language::text FROM subscribers")
    return {r["msisdn"]: (r["status"], r["language"]) for r in rows}


async def test_upsert_counts_and_last_row_wins(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Inserts, updates and status events; a repeated number's last row wins."""
    async with running_api(settings, clock, database) as api:
        status, first = await _import(api, f"{A},active,kk\n{B},active,ru\n{B},blocked,en\n")
        assert status == 200
        assert (first["inserted"], first["duplicates"], first["rejected"]) == (2, 1, [])
        status, second = await _import(
            api, f"{A},outgoing_blocked,\n{C},active,en\n{B},blocked,en\n"
        )
        assert status == 200
    assert (second["inserted"], second["updated"], second["unchanged"]) == (1, 1, 1)
    assert await _rows(database) == {
        A: ("outgoing_blocked", "kk"),  # an empty language keeps the known one
        B: ("blocked", "en"),
        C: ("active", "en"),
    }
    events = await database.pool.fetch(
        "SELECT msisdn, payload->>'status' AS status FROM subscriber_events ORDER BY id"
    )
    assert [(e["msisdn"], e["status"]) for e in events] == [
        (A, "active"),
        (B, "blocked"),
        (A, "outgoing_blocked"),
        (C, "active"),
    ]  # status changes only (new numbers included), in msisdn order per import


async def test_header_in_any_order_and_semicolons(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A header names the columns in any order; the delimiter is sniffed."""
    async with running_api(settings, clock, database) as api:
        status, result = await _import(api, f"\ufefflanguage;msisdn;status\r\nkk;+{A};active\r\n")
    assert status == 200 and result["inserted"] == 1
    assert await _rows(database) == {A: ("active", "kk")}


async def test_recycling_ends_the_old_owners_membership(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """R12: a number imported as recycled loses membership; the consent ledger says so."""
    async with running_api(settings, clock, database) as api:
        join = {"msisdn": A, "session_id": "s", "input": "*555*1#"}
        joined = await api.client.post("/gateway/ussd", json=join, headers=api.auth(Role.GATEWAY))
        assert joined.status == 200
        status, result = await _import(api, f"{A},recycled,\n")
        assert (status, result["recycled"], result["updated"]) == (200, 1, 0)
        view = await api.client.get(f"/api/v1/subscribers/{A}", headers=api.auth(Role.VIEWER))
        subscriber = await view.json()
    assert subscriber["status"] == "recycled" and subscriber["member"] is False
    open_memberships = await database.pool.fetchval(
        "SELECT count(*) FROM memberships WHERE msisdn = $1 AND left_at IS NULL", A
    )
    assert open_memberships == 0


async def test_bad_rows_are_reported_and_skipped(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Invalid number, missing status, unknown language: line and reason each."""
    body = f"msisdn,status,language\n{A},active,ru\nabc,active,ru\n{B},,ru\n{C},active,fr\n"
    async with running_api(settings, clock, database) as api:
        status, result = await _import(api, body)
    assert status == 200
    assert result["inserted"] == 1 and result["rejected_total"] == 3
    assert [(r["line"], r["reason"]) for r in result["rejected"]] == [
        (3, "not a phone number"),
        (4, "missing status"),
        (5, "unknown language 'fr'"),
    ]


async def test_refused_files_change_nothing(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Not UTF-8, no data rows, a header without status: 400, and nothing is written."""
    async with running_api(settings, clock, database) as api:
        latin = f"{A},active,ru\n{B},active,ru\xe9\n".encode("latin-1")
        for body, code in [
            (latin, "invalid_encoding"),
            (b"", "empty_import"),
            (f"msisdn,lang\n{A},ru\n".encode(), "invalid_header"),
        ]:
            status, result = await _import(api, body)
            assert (status, result["error"]["code"]) == (400, code)
    assert await _rows(database) == {}


async def test_a_bare_cr_ends_a_line(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A bare CR (old Mac files) ends a line as LF and CRLF do, so the lines after it keep
    their numbers (it used to make its line a malformed row)."""
    async with running_api(settings, clock, database) as api:
        status, result = await _import(api, f"{A},active,kk\r{B},active,ru\r\nabc,active,ru\n")
    assert status == 200 and result["inserted"] == 2 and result["lines"] == 3
    assert [(r["line"], r["value"]) for r in result["rejected"]] == [(3, "abc")]


async def test_a_line_too_long_is_400_naming_it(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A line longer than MAX_LINE characters is a 400 naming the line; nothing is written."""
    body = f"{A},active,kk\n{B},active,".encode() + b"k" * (MAX_LINE + 1)
    async with running_api(settings, clock, database) as api:
        status, result = await _import(api, body)
    assert status == 400 and result["error"]["code"] == "line_too_long"
    assert result["error"]["details"]["line"] == 2
    assert await _rows(database) == {}


async def test_oversized_import_is_413(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A body over the upload limit is refused with 413 in the error shape."""
    small = dataclasses.replace(settings, audience_max_bytes=100)
    body = "".join(f"7701{n:07d},active,ru\n" for n in range(20))
    async with running_api(small, clock, database) as api:
        status, result = await _import(api, body)
    assert status == 413 and result["error"]["code"] == "import_too_large"
    assert await _rows(database) == {}
