"""Audience uploads over real HTTP into a real database: CSV forms, bad rows, limits, segments."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import aiohttp

from campaigns.csvstream import MAX_LINE
from dispatcher.kernel.states import Role
from tests.factories import dnc, members, subscribers
from tests.test_campaign_support import BASE, action, create, info_payload, upload
from tests.web_helpers import running_api


async def _deliveries(database, campaign_id: int) -> dict[str, object]:
    rows = await database.pool.fetch(
        "SELECT msisdn, variables FROM deliveries WHERE campaign_id = $1 ORDER BY id", campaign_id
    )
    return {r["msisdn"]: r["variables"] for r in rows}


async def test_csv_with_header_bad_rows_and_duplicates(settings, clock, database) -> None:
    """Good rows are queued with their variables; bad rows come back with line and reason;
    a number repeated (in another written form) counts as a duplicate."""
    csv = (
        b"msisdn,name,city\n"
        b"+7 701 123-45-67,Aigerim,Almaty\n"
        b"87011234567,Again,Astana\n"
        b"12345,Bad,X\n"
        b"77021234567,,Astana\n"
        b"77051234567\n"
        b"77071234567,Dana,Shymkent\n"
    )
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        status, body = await upload(api, cid, csv)
        assert status == 200, body
        assert body["accepted"] == 2 and body["duplicates"] == 1
        assert [(r["line"], r["value"]) for r in body["rejected"]] == [
            (4, "12345"),
            (5, "77021234567"),
            (6, "77051234567"),
        ]
        assert "empty value for name" in body["rejected"][1]["reason"]
        assert "missing column name" in body["rejected"][2]["reason"]
        assert await _deliveries(database, cid) == {
            "77011234567": {"name": "Aigerim"},
            "77071234567": {"name": "Dana"},
        }


async def test_multipart_bom_crlf_semicolon_quotes(settings, clock, database) -> None:
    """A multipart field 'file' with a BOM, CRLF, ';' delimiter and quoted fields works."""
    csv = '\ufeff"Phone";"Name"\r\n"77011234567";"Smith; John"\r\n77021234567;"Ann ""A"""\r\n'
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        form = aiohttp.FormData()
        form.add_field("file", csv.encode(), filename="a.csv", content_type="text/csv")
        response = await api.client.post(
            f"{BASE}/{cid}/audience", data=form, headers=api.auth(Role.MARKETER)
        )
        body = await response.json()
        assert response.status == 200, body
        assert body.pop("timing").keys() == {"copy_s", "queue_s"}
        assert body == {
            "accepted": 2,
            "rejected": [],
            "rejected_total": 0,
            "rejected_truncated": False,
            "duplicates": 0,
            "lines": 3,
        }
        assert await _deliveries(database, cid) == {
            "77011234567": {"name": "Smith; John"},
            "77021234567": {"name": 'Ann "A"'},
        }


async def test_no_header_maps_columns_in_declared_order(settings, clock, database) -> None:
    """Without a header the columns after the msisdn are the declared variables, in order."""
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=["name", "city"])))["id"]
        status, body = await upload(api, cid, b"77011234567,Ann,Almaty\n\n77021234567,Bo,Oral")
        assert status == 200 and body["accepted"] == 2 and body["lines"] == 3
        assert (await _deliveries(database, cid))["77021234567"] == {"name": "Bo", "city": "Oral"}


async def test_invalid_utf8_rejects_everything_with_line(settings, clock, database) -> None:
    """A cp1251 line is a 400 naming its line, and no row of the file is kept."""
    data = b"msisdn,name\n77011234567,Ann\n77021234567," + "Дана".encode("cp1251") + b"\n"
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        status, body = await upload(api, cid, data)
        assert status == 400
        assert body["error"]["code"] == "invalid_encoding"
        assert body["error"]["details"] == {"line": 3}
        assert await _deliveries(database, cid) == {}


async def test_oversized_upload_is_413_and_writes_nothing(settings, clock, database) -> None:
    """Past audience_max_bytes: 413, whether the size is announced or found while streaming."""
    small = dataclasses.replace(settings, audience_max_bytes=2000)
    rows = b"".join(b"7701%07d\n" % i for i in range(400))  # 4,800 bytes
    async with running_api(small, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        status, body = await upload(api, cid, rows)
        assert status == 413 and body["error"]["code"] == "audience_too_large"

        async def stream():  # chunked: no Content-Length, found while streaming
            for start in range(0, len(rows), 500):
                yield rows[start : start + 500]

        headers = {**api.auth(Role.MARKETER), "Content-Type": "text/csv"}
        response = await api.client.post(f"{BASE}/{cid}/audience", data=stream(), headers=headers)
        assert response.status == 413
        assert await _deliveries(database, cid) == {}


async def test_a_line_too_long_is_400_naming_it(settings, clock, database) -> None:
    """A line longer than MAX_LINE characters (a line that never ends, say) is a 400 in the
    error shape naming the line; nothing of the upload is kept."""
    data = b"77011234567\n77021234567," + b"A" * (MAX_LINE + 1) + b"\n77051234567\n"
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        status, body = await upload(api, cid, data)
        assert status == 400 and body["error"]["code"] == "line_too_long"
        assert body["error"]["details"] == {"line": 2, "limit": MAX_LINE}
        assert body["error"]["message"].startswith(f"line 2 is longer than {MAX_LINE} characters")
        assert await _deliveries(database, cid) == {}


async def test_too_many_rows_is_400_and_writes_nothing(settings, clock, database) -> None:
    """Past audience_max_rows the whole upload is refused."""
    small = dataclasses.replace(settings, audience_max_rows=3)
    async with running_api(small, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        data = b"".join(b"7701%07d\n" % i for i in range(4))
        status, body = await upload(api, cid, data)
        assert status == 400 and body["error"]["code"] == "too_many_rows"
        assert await _deliveries(database, cid) == {}


async def test_duplicates_against_earlier_upload(settings, clock, database) -> None:
    """A second upload counts numbers already queued for the campaign as duplicates."""
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        await upload(api, cid, b"77011234567\n77021234567\n")
        status, body = await upload(api, cid, b"77021234567\n77051234567\n")
        assert status == 200 and body["accepted"] == 1 and body["duplicates"] == 1


async def test_header_missing_a_variable_column(settings, clock, database) -> None:
    """A header without a column the texts use is a 400 naming it."""
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        status, body = await upload(api, cid, b"msisdn,city\n77011234567,Almaty\n")
        assert status == 400 and body["error"]["details"]["missing"] == ["name"]


async def test_no_upload_to_a_running_campaign(settings, clock, database) -> None:
    """Once running, the audience is closed: 409."""
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        await upload(api, cid, b"77011234567\n")
        await action(api, cid, "start")
        status, body = await upload(api, cid, b"77021234567\n")
        assert status == 409 and body["error"]["code"] == "invalid_transition"


async def _add_subscribers(database) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    await subscribers(database, ["77010000001", "77010000002", "77010000004"])
    await subscribers(database, ["77010000003"], status="blocked")
    await members(database, ["77010000001", "77010000003", "77010000004"], joined_at=now)
    await dnc(database, ["77010000004"], at=now)


async def test_segment_audiences(settings, clock, database) -> None:
    """Segments queue current members / active subscribers, minus blocked and 1204 numbers."""
    await _add_subscribers(database)
    async with running_api(settings, clock, database) as api:
        headers = api.auth(Role.MARKETER)
        expected = {
            "smart_members": {"77010000001"},
            "active_subscribers": {"77010000001", "77010000002"},
        }
        for segment, numbers in expected.items():
            cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
            url = f"{BASE}/{cid}/audience"
            response = await api.client.post(url, json={"segment": segment}, headers=headers)
            body = await response.json()
            assert response.status == 200 and body["accepted"] == len(numbers)
            assert set(await _deliveries(database, cid)) == numbers
        response = await api.client.post(url, json={"segment": "everyone"}, headers=headers)
        assert response.status == 400


async def test_segment_refused_when_texts_use_variables(settings, clock, database) -> None:
    """A segment has no variable columns, so a campaign whose texts need them refuses it."""
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        response = await api.client.post(
            f"{BASE}/{cid}/audience",
            json={"segment": "smart_members"},
            headers=api.auth(Role.MARKETER),
        )
        assert response.status == 400
