"""One tenant can't starve another (issue 13): slow audience uploads against USSD, the pool's
acquire timeout, and the preview cache's byte bound. Real HTTP on 127.0.0.1, a real
database; the deadlines are set small, and every wait has a generous bound that only a
hang reaches (nothing asserts a latency)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.db import Database, create_pool
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings, load_settings
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from dispatcher.web.keys import Handler
from tests.test_campaign_support import BASE, info_payload
from tests.web_helpers import Api

POOL = 4  # connections in the app's pool here
SLOW = 10  # slow uploads at once
HANG = 20.0  # seconds: only a hang gets near this
USSD = {"msisdn": "77011234567", "session_id": "s1", "input": "*111*3#"}


@pytest.fixture
def tight(tmp_path: Path, database_url: str) -> Settings:
    """Small deadlines (the environment way, so the fixture builds on any version)."""
    env = {
        "SMARTD_UPLOAD_IDLE_TIMEOUT": "0.5",
        "SMARTD_UPLOAD_BODY_TIMEOUT": "2",
        "SMARTD_UPLOAD_MAX_CONCURRENT": "2",
        "SMARTD_DB_ACQUIRE_TIMEOUT": "2",
    }
    return load_settings(env, data_dir=tmp_path, database_url=database_url)


@pytest.fixture
async def small_pool(database_url: str) -> AsyncIterator[Database]:
    pool = await create_pool(database_url, min_size=1, max_size=POOL)
    try:
        yield Database(pool=pool, url=database_url)
    finally:
        await pool.close()


class Entered:
    """Counts requests past authentication (an innermost middleware)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.endswith("/audience"):
            self.count += 1
            self.changed.set()
        return await handler(request)

    async def reach(self, n: int) -> None:
        while self.count < n:
            self.changed.clear()
            await self.changed.wait()


@asynccontextmanager
async def serving(
    settings: Settings, clock: ManualClock, database: Database, entered: Entered
) -> AsyncIterator[Api]:
    repo = TokenRepository(database.pool)
    tokens = {role: (await repo.create(f"test-{role}", role))[0] for role in Role}
    app = create_app(settings, clock=clock, database=database)
    app.middlewares.append(entered.middleware)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Api(client, tokens)


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if x)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, json.loads(body) if body else None


async def _slow_upload(api: Api, campaign_id: int) -> tuple[int, dict[str, str], Any]:
    """Declare a megabyte, send 12 bytes, stall; the server's answer."""
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(
            (
                f"POST {BASE}/{campaign_id}/audience HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {api.tokens[Role.MARKETER]}\r\n"
                "Content-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n"
            ).encode()
            + b"77011234567\n"
        )
        await writer.drain()
        return await _response(reader)
    finally:
        writer.close()


async def test_slow_uploads_do_not_starve_ussd(tight, clock, small_pool) -> None:
    """Ten uploads that stall after 12 bytes, against a pool of four: USSD still answers;
    uploads past the cap get 503 with Retry-After at once, the admitted ones 408 once their
    body stalls; none of them holds the campaign's lock while it waits."""
    statuses, answers = await _stall_and_ask(tight, clock, small_pool)
    assert statuses == [408] * 2 + [503] * (SLOW - 2)
    for status, headers, body in answers:
        assert set(body["error"]) == {"code", "message", "details"}
        if status == 503:
            assert body["error"]["code"] == "uploads_busy"
            assert int(headers["retry-after"]) >= 1
        else:
            assert body["error"]["code"] == "body_timeout"


async def _stall_and_ask(
    tight: Settings, clock: ManualClock, small_pool: Database
) -> tuple[list[int], list[tuple[int, dict[str, str], Any]]]:
    """Start the slow uploads, ask USSD, check the lock; the uploads' answers."""
    entered = Entered()
    async with serving(tight, clock, small_pool, entered) as api:
        created = await api.client.post(
            BASE, json=info_payload(variables=[], texts={"kk": "Hi"}), headers=api.auth(Role.ADMIN)
        )
        cid = (await created.json())["id"]
        uploads = [asyncio.create_task(_slow_upload(api, cid)) for _ in range(SLOW)]
        try:
            async with asyncio.timeout(HANG):
                await entered.reach(SLOW)
                for _ in range(3):
                    response = await api.client.post(
                        "/gateway/ussd", json=USSD, headers=api.auth(Role.GATEWAY)
                    )
                    assert response.status == 200, await response.text()
                # Nothing waiting on a client holds the campaign (FOR SHARE) nor a connection.
                async with small_pool.pool.acquire() as conn, conn.transaction():
                    locked = await conn.fetchval(
                        "SELECT id FROM campaigns WHERE id = $1 FOR UPDATE NOWAIT", cid
                    )
                    assert locked == cid
                answers = await asyncio.gather(*uploads)
        finally:  # a hang fails the test; the stalled clients go with it
            for task in uploads:
                task.cancel()
    return sorted(status for status, _, _ in answers), answers


async def test_a_request_that_cannot_get_a_connection_gets_503(tight, clock, small_pool) -> None:
    """With every connection taken, a request waits db_acquire_timeout, then answers 503 with
    Retry-After in the error shape; it does not hang."""
    entered = Entered()
    async with serving(tight, clock, small_pool, entered) as api:
        held = [await small_pool.pool.acquire() for _ in range(POOL)]
        try:
            async with asyncio.timeout(HANG):
                response = await api.client.post(
                    "/gateway/ussd", json=USSD, headers=api.auth(Role.GATEWAY)
                )
                body = await response.json()
        finally:
            for conn in held:
                await small_pool.pool.release(conn)
        assert response.status == 503, body
        assert body["error"]["code"] == "database_busy"
        assert int(response.headers["Retry-After"]) >= 1
        response = await api.client.post("/gateway/ussd", json=USSD, headers=api.auth(Role.GATEWAY))
        assert response.status == 200


async def test_a_spooled_upload_loads_as_before(tight, clock, small_pool) -> None:
    """A body that arrives whole (in several chunks, multipart too) is loaded as before."""
    entered = Entered()
    async with serving(tight, clock, small_pool, entered) as api:
        created = await api.client.post(
            BASE, json=info_payload(variables=[], texts={"kk": "Hi"}), headers=api.auth(Role.ADMIN)
        )
        cid = (await created.json())["id"]
        numbers = [f"7701{n:07d}" for n in range(20_000)]

        async def body() -> AsyncIterator[bytes]:
            data = "\n".join(numbers).encode()
            for at in range(0, len(data), 7_000):
                yield data[at : at + 7_000]

        headers = {**api.auth(Role.MARKETER), "Content-Type": "text/csv"}
        response = await api.client.post(f"{BASE}/{cid}/audience", data=body(), headers=headers)
        result = await response.json()
        assert response.status == 200, result
        assert result["accepted"] == len(numbers)


def test_settings_refuse_an_upload_cap_that_fills_the_pool(tmp_path: Path) -> None:
    from dispatcher.settings import ConfigError

    with pytest.raises(ConfigError, match="SMARTD_UPLOAD_MAX_CONCURRENT"):
        load_settings(
            {"SMARTD_UPLOAD_MAX_CONCURRENT": "10", "SMARTD_DB_POOL_MAX": "10"}, data_dir=tmp_path
        )


# ---------------------------------------------------------------- the preview cache


def test_previews_of_distinct_texts_keep_bounded_memory() -> None:
    """Issue 13: distinct large texts previewed one after another used to stay cached
    whole (an ``lru_cache(4096)`` keyed on the text). What stays allocated after 1,500
    distinct 12 KiB texts (18 MiB of text) is bounded (measured by tracemalloc, no clock)."""
    import gc
    import tracemalloc

    from campaigns.templates import preview

    texts = [f"{n:06d} {{name}} " + "x" * (12 << 10) for n in range(1500)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in texts:
            assert preview({"ru": text}, {"name": "A"})["ru"]["characters"] > 12 << 10
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 8 << 20, f"{kept / 2**20:.1f} MiB kept"


def test_parsed_template_cache_is_bounded_by_bytes() -> None:
    """The cache never holds more than CACHE_BYTES; a text over CACHE_ENTRY_BYTES is parsed
    but not kept; the least recently used go first; results are the same either way."""
    from campaigns import templates

    cache = templates._ParsedCache(limit=10_000, entry_limit=3_000)
    texts = [f"{n} {{a}} " + "y" * 1_000 for n in range(50)]
    for text in texts:
        cache.put(text, templates._parse(text))
        assert cache.bytes <= 10_000
    assert 0 < len(cache) < 10
    assert cache.get(texts[0]) is None and cache.get(texts[-1]) is not None
    recent = texts[-len(cache)]
    assert cache.get(recent) is not None  # now the most recently used
    cache.put("z{a}" * 10, templates._parse("z{a}" * 10))
    assert cache.get(recent) is not None
    big = "w" * 5_000
    cache.put(big, templates._parse(big))
    assert cache.get(big) is None and cache.bytes <= 10_000

    module = templates._PARSED
    assert (
        module.limit == templates.CACHE_BYTES and module.entry_limit == templates.CACHE_ENTRY_BYTES
    )
    huge = "{name} " + "q" * (templates.CACHE_ENTRY_BYTES + 1)
    assert templates.render(huge, {"name": "N"}) == "N " + "q" * (templates.CACHE_ENTRY_BYTES + 1)
    assert templates.parse_template(huge) == templates._parse(huge)
    assert module.get(huge) is None and module.bytes <= templates.CACHE_BYTES


# ---------------------------------------------------------------- a line that never ends


async def test_a_line_without_end_stops_the_spool_early(tight) -> None:
    """Spooling reads no further than 4 × MAX_LINE bytes into a line without a break (64 MiB
    offered); what it kept is refused by the reader with the line's number, and the spool's
    end refuses it too (a cut body is never loaded whole)."""
    import io

    from campaigns.csvstream import MAX_LINE, CsvReader, LineTooLong
    from dispatcher.web.uploads import _spool

    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b"77011234567\r\n77021234567\n"
        for _ in range(1024):
            pulled += 1
            yield b"7" * 65536

    spool = await _spool(body(), io.BytesIO(), tight, "audience", 1 << 30)
    assert spool.cut_at_line == 3
    assert pulled <= 4 * MAX_LINE // 65536 + 1 and spool.size <= 4 * MAX_LINE + 2 * 65536
    reader = CsvReader("audience", max_bytes=1 << 30)
    with pytest.raises(LineTooLong) as caught:
        async for _ in reader.rows(spool.chunks()):
            pass
    assert caught.value.line == 3
    with pytest.raises(LineTooLong):  # the spool's own end, whatever reads it
        async for _ in spool.chunks():
            pass


async def test_a_16_mb_line_over_http_is_400_naming_it(tight, clock, small_pool) -> None:
    entered = Entered()
    async with serving(tight, clock, small_pool, entered) as api:
        created = await api.client.post(
            BASE, json=info_payload(variables=[], texts={"kk": "Hi"}), headers=api.auth(Role.ADMIN)
        )
        cid = (await created.json())["id"]

        async def body() -> AsyncIterator[bytes]:
            yield b"77011234567\n"
            for _ in range(256):
                yield b"7" * 65536

        headers = {**api.auth(Role.MARKETER), "Content-Type": "text/csv"}
        response = await api.client.post(f"{BASE}/{cid}/audience", data=body(), headers=headers)
        result = await response.json()
        assert response.status == 400, result
        assert result["error"]["code"] == "line_too_long"
        assert result["error"]["details"]["line"] == 2


async def test_the_console_upload_past_the_cap_is_503_with_retry_after(
    settings, clock, database
) -> None:
    """The console's upload goes through the same gate: past the cap, a 503 page with
    Retry-After, and nothing loaded."""
    from dispatcher.web.uploads import UPLOADS
    from tests.test_console import _create_form, api_campaign, sign_in
    from tests.web_helpers import running_api

    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api)
        csrf = await sign_in(api, Role.MARKETER)
        gate = api.client.server.app[UPLOADS]
        gate.active = gate.limit  # every slot taken
        form = _create_form(csrf, {}, "77010000001\n")
        response = await api.client.post(f"/console/campaigns/{campaign_id}/audience", data=form)
        assert response.status == 503 and "retry shortly" in await response.text()
        assert int(response.headers["Retry-After"]) >= 1
        gate.active = 0
        form = _create_form(csrf, {}, "77010000001\n")
        response = await api.client.post(f"/console/campaigns/{campaign_id}/audience", data=form)
        assert response.status == 200
        count = await database.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE campaign_id = $1", campaign_id
        )
        assert count == 1
