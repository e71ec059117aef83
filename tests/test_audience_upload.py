"""Audience uploads over real HTTP into a real database: CSV forms, bad rows, limits, segments."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest

from campaigns.audience import AudienceParser, upload_audience
from campaigns.csvstream import MAX_LINE, InputRefused
from campaigns.repository import CampaignRepository, CopyRows, copy_rows
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
            "upload_no": 1,
            "rejected_csv": f"{BASE}/{cid}/audience/rejected.csv?upload=1",
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


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_uploads_to_one_campaign_run_one_at_a_time(settings, clock, database) -> None:
    """Two uploads to one campaign at once: the second waits for the first's transaction
    (lock_for_audience), then counts the first's numbers as duplicates — no unique-key
    failure, no number queued twice (the insert dedupes by anti-join, not ON CONFLICT)."""
    repository = CampaignRepository(database.pool)
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
    limits = {"region": "KZ", "max_rows": 100, "max_bytes": 10_000, "now": clock.now()}
    async with repository.audience_load(cid) as first:
        copied = await first.copy(
            _chunk_records([(1, "77011234567", None), (2, "77021234567", None)])
        )
        second = asyncio.create_task(
            upload_audience(
                repository, cid, _chunks(b"77021234567\n77051234567\n77051234567\n"), **limits
            )
        )
        # the second upload reaches the campaign's lock and waits there (or, were uploads not
        # serialised, would run its insert while the first has not committed)
        for _ in range(1000):
            waiting = await database.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting or second.done():
                break
            await asyncio.sleep(0.01)
        assert await first.queue() == copied == 2
    result = await second
    assert (result.accepted, result.duplicates) == (1, 2)
    assert sorted(await _deliveries(database, cid)) == [
        "77011234567",
        "77021234567",
        "77051234567",
    ]


async def _chunk_records(
    records: list[tuple[int, str, list[str] | None]],
) -> AsyncIterator[CopyRows]:
    """``(line, msisdn, values)`` records as the parser hands them over, one chunk each."""
    for _, msisdn, values in records:
        yield copy_rows([(msisdn, values)])


async def test_a_failure_after_the_insert_leaves_nothing(settings, clock, database) -> None:
    """One transaction: an error after the rows are queued rolls every one of them back."""
    repository = CampaignRepository(database.pool)
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
    with pytest.raises(RuntimeError):
        async with repository.audience_load(cid) as load:
            await load.copy(_chunk_records([(1, "77011234567", None), (2, "77011234567", None)]))
            assert await load.queue() == 1
            raise RuntimeError("failed mid-way")
    assert await _deliveries(database, cid) == {}


async def test_deliveries_still_reference_their_campaign(database) -> None:
    """Migration 0021 replaced the per-row foreign key with set-based triggers: a delivery
    of an unknown campaign, a changed campaign_id, or deleting a campaign that has
    deliveries are still refused with 23503."""
    pool = database.pool
    cid = await pool.fetchval(
        "INSERT INTO campaigns (name, kind, scope, texts) "
        "VALUES ('c', 'info', 'smart', '{\"ru\": \"x\"}') RETURNING id"
    )
    other = await pool.fetchval(
        "INSERT INTO campaigns (name, kind, scope, texts) "
        "VALUES ('d', 'info', 'smart', '{\"ru\": \"x\"}') RETURNING id"
    )
    insert = "INSERT INTO deliveries (campaign_id, msisdn) SELECT unnest($1::bigint[]), '7701'"
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(insert, [cid + 1000])
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(
            "INSERT INTO deliveries (campaign_id, msisdn) VALUES ($1, '7701'), ($2, '7702')",
            cid,
            cid + 1000,
        )
    await pool.execute(insert, [cid])
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("UPDATE deliveries SET campaign_id = $1", other)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("DELETE FROM campaigns WHERE id = $1", cid)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("UPDATE campaigns SET id = $1 WHERE id = $2", cid + 1000, cid)
    await pool.execute("DELETE FROM campaigns WHERE id = $1", other)  # no deliveries: allowed
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 1


async def test_batches_keep_the_first_occurrence_across_batches(settings, clock, database) -> None:
    """AudienceLoad.load queues a batch while the next is parsed: with batches of 2 rows, a
    number repeated in a later batch is a duplicate, and its first row's variables stay."""
    repository = CampaignRepository(database.pool)
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
    records = [
        (2, "77011234567", ["First"]),
        (3, "77021234567", ["B"]),
        (4, "77051234567", ["C"]),
        (5, "77011234567", ["Second"]),
        (6, "77021234567", ["Again"]),
    ]
    async with repository.audience_load(cid) as load:
        assert await load.load(_chunk_records(records), batch_rows=2) == (5, 3)
    assert await _deliveries(database, cid) == {
        "77011234567": {"name": "First"},
        "77021234567": {"name": "B"},
        "77051234567": {"name": "C"},
    }


async def test_a_refusal_while_a_batch_is_queued_leaves_nothing(settings, clock, database) -> None:
    """A file refused after earlier batches were queued (here: too many rows, found while
    a batch is being inserted) writes nothing: all batches are one transaction."""
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        repository = CampaignRepository(database.pool)
        parser_limits = {"region": "KZ", "max_rows": 5, "max_bytes": 10_000}
        body = b"".join(b"7701%07d\n" % i for i in range(8))
        with pytest.raises(InputRefused):
            async with repository.audience_load(cid) as load:
                parser = AudienceParser([], **parser_limits)
                await load.load(parser.records(_chunks(body[:24], body[24:])), batch_rows=2)
    assert await _deliveries(database, cid) == {}


async def test_deliveries_are_queued_in_msisdn_order(settings, clock, database) -> None:
    """An upload queues its deliveries (their ids, the order the engine claims them in) in
    msisdn order, whatever plan the database picks for the duplicate check: the browser
    flow's chart counts on a number sorting last being claimed last. The order is fixed by
    the statement's outermost ORDER BY; a hash anti-join under it used to leave the rows in
    hash order (the upload of this test came out scrambled)."""
    numbers = [f"7701555{n:04d}" for n in range(40)] + ["77015559999"]
    shuffled = numbers[::3] + numbers[1::3] + numbers[2::3]
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        await upload(api, cid, "\n".join(["77015550005", "77015550017"]).encode())
        status, body = await upload(api, cid, "\n".join(shuffled).encode())
        assert status == 200 and body["accepted"] == len(numbers) - 2
    queued = list(await _deliveries(database, cid))
    assert queued[:2] == ["77015550005", "77015550017"]
    assert queued[2:] == sorted(set(numbers) - {"77015550005", "77015550017"})


async def test_the_first_row_of_a_number_wins_within_a_batch(settings, clock, database) -> None:
    """Within one batch the upload table has no line column: the first of duplicate rows is
    the one COPY wrote first (ctid). Numbers repeated across many pages of the batch, in
    both written forms (block fast path and row by row), keep their first row's values."""
    rows = [
        (f"+7701{n:07d}" if k % 2 else f"8 701 {n:07d}", f"v{n}-{k}")
        for k in range(60)
        for n in range(50)
    ]
    body = "msisdn,name\n" + "".join(f"{m},{v}\n" for m, v in rows)
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        status, result = await upload(api, cid, body.encode())
        assert status == 200, result
        assert (result["accepted"], result["duplicates"]) == (50, 50 * 59)
    assert await _deliveries(database, cid) == {
        f"7701{n:07d}": {"name": f"v{n}-0"} for n in range(50)
    }
