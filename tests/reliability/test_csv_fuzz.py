"""Audience CSV uploads fuzzed through the real HTTP endpoint (invariant 6): encodings, BOM,
quotes, huge lines, formula-like cells, NUL and invalid UTF-8 get a 200 with a row report
that adds up, or a clear 4xx — and a refused upload writes nothing."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.test_campaign_support import create, info_payload, upload
from tests.web_helpers import Api, running_api

MAX_BYTES = 20_000

valid_numbers = st.integers(0, 9_999_999).map(lambda n: f"7701{n:07d}")
written_forms = valid_numbers.flatmap(
    lambda n: st.sampled_from([n, "+" + n, "8" + n[1:], f"+7 {n[1:4]} {n[4:7]}-{n[7:9]}-{n[9:]}"])
)
bad_numbers = st.sampled_from(["", "12345", "7701", "abc", "+", "77011234567890", "0" * 11])
formula = st.sampled_from(["=1+1", "=cmd|'/C calc'!A0", "+SUM(A1)", "-2+3", "@SUM(1)", "\t=1"])
names = st.one_of(
    st.text(max_size=20),
    formula,
    st.text(alphabet='",;\n\r', max_size=6),
    st.just("Дана"),
    st.just("Айгерім"),
)
row = st.tuples(st.one_of(written_forms, bad_numbers, formula), names)


@st.composite
def csv_bodies(draw: st.DrawFn) -> bytes:
    rows = draw(st.lists(row, max_size=30))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    quote = draw(st.booleans())
    lines = ["msisdn" + delimiter + "name"] if draw(st.booleans()) else []
    for number, name in rows:
        if quote:
            name = '"' + name.replace('"', '""') + '"'
        lines.append(number + delimiter + name)
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1251", "utf-16", "latin-1"]))
    data = text.encode(encoding, errors="replace")
    mutation = draw(st.sampled_from(["none", "invalid-utf8", "nul", "huge-line", "cut"]))
    if mutation == "invalid-utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff\xfe\xc3(" + data[at:]
    elif mutation == "nul":
        data += b"\n7701000000\x001,x"
    elif mutation == "huge-line":
        data += b"\n77010000001," + b"A" * draw(st.sampled_from([5_000, MAX_BYTES + 1]))
    elif mutation == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


async def _check_upload(api: Api, database: Database, data: bytes) -> None:
    cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
    status, body = await upload(api, cid, data)
    written = await database.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE campaign_id = $1", cid
    )
    assert status < 500, body
    event(f"status {status} {body['error']['code'] if status >= 400 else 'report'}")
    if status >= 400:
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
        assert written == 0, "a refused upload wrote rows"
        return
    assert status == 200, body
    rejected = body.get("rejected_total", len(body["rejected"]))
    assert written == body["accepted"]
    assert body["accepted"] + rejected + body["duplicates"] <= body.get("lines", 10**9)
    for r in body["rejected"]:
        assert isinstance(r["line"], int) and r["line"] >= 1 and r["reason"]
    bad = await database.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE campaign_id = $1 AND msisdn !~ '^7[0-9]{10}$'",
        cid,
    )
    assert bad == 0, "a stored number is not a normalised MSISDN"


@hsettings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=csv_bodies())
async def test_fuzzed_csv_uploads_get_a_report_or_a_clear_4xx(
    settings: Settings, clock: ManualClock, database: Database, data: bytes
) -> None:
    """Any CSV body: 200 with a consistent report and only valid numbers stored, or a 4xx
    with the error shape and nothing stored."""
    small = dataclasses.replace(settings, audience_max_bytes=MAX_BYTES)
    async with running_api(small, clock, database) as api:
        await _check_upload(api, database, data)


statuses = st.sampled_from(["active", "blocked", "outgoing_blocked", "recycled", "", "ACTIVE", "x"])
languages = st.sampled_from(["kk", "ru", "en", "", "de", "=1+1"])


@st.composite
def import_bodies(draw: st.DrawFn) -> bytes:
    rows = draw(
        st.lists(
            st.tuples(st.one_of(written_forms, bad_numbers, formula), statuses, languages),
            max_size=20,
        )
    )
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    lines = (
        ["msisdn" + delimiter + "status" + delimiter + "language"] if draw(st.booleans()) else []
    )
    lines += [delimiter.join(r) for r in rows]
    data = "\n".join(lines).encode(
        draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1251", "utf-16"]))
    )
    mutation = draw(st.sampled_from(["none", "invalid-utf8", "nul", "cr", "huge-line", "cut"]))
    if mutation == "invalid-utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff\xfe\xc3(" + data[at:]
    elif mutation == "nul":
        data += b"\n77010000001,act\x00ive,ru"
    elif mutation == "cr":
        data = b"77010000001,act\rive,ru\n" + data
    elif mutation == "huge-line":
        data += b"\n77010000001,active," + b"A" * (MAX_BYTES + 1)
    elif mutation == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


@hsettings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=import_bodies())
async def test_fuzzed_subscriber_imports_get_a_report_or_a_clear_4xx(
    settings: Settings, clock: ManualClock, database: Database, data: bytes
) -> None:
    """Any import body: 200 with a report and only valid numbers and statuses stored, or a
    4xx with the error shape and the subscribers table unchanged."""
    small = dataclasses.replace(settings, audience_max_bytes=MAX_BYTES)
    before = await database.pool.fetch("SELECT * FROM subscribers ORDER BY msisdn")
    async with running_api(small, clock, database) as api:
        headers = {**api.auth(Role.ADMIN), "Content-Type": "text/csv"}
        response = await api.client.post("/api/v1/subscribers/import", data=data, headers=headers)
        body = await response.json()
    assert response.status < 500, body
    event(
        f"status {response.status} {body['error']['code'] if response.status >= 400 else 'report'}"
    )
    if response.status >= 400:
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
        after = await database.pool.fetch("SELECT * FROM subscribers ORDER BY msisdn")
        assert after == before, "a refused import changed subscribers"
        return
    assert response.status == 200
    for r in body["rejected"]:
        assert isinstance(r["line"], int) and r["line"] >= 1 and r["reason"]
    bad = await database.pool.fetchval(
        "SELECT count(*) FROM subscribers WHERE msisdn !~ '^7[0-9]{10}$'"
    )
    assert bad == 0
