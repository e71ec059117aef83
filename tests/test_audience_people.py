"""Audiences as people have them (issue 14): column mapping in any header language, numbers
that cannot receive SMS rejected with their kind, every rejected row kept and downloadable,
and per-variable defaults. Real HTTP into a real database; the number rules also as
properties without one."""

from __future__ import annotations

import csv
import io

import aiohttp
import phonenumbers
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from campaigns.audience import AudienceParser
from campaigns.csvstream import InputRefused
from campaigns.templates import preview, render
from dispatcher.kernel import msisdn as numbers
from dispatcher.kernel.states import Role
from tests.test_campaign_support import BASE, create, info_payload, upload
from tests.web_helpers import running_api


async def _deliveries(database, campaign_id: int) -> dict[str, object]:
    rows = await database.pool.fetch(
        "SELECT msisdn, variables FROM deliveries WHERE campaign_id = $1 ORDER BY id", campaign_id
    )
    return {r["msisdn"]: r["variables"] for r in rows}


async def _upload(api, cid: int, data: bytes, query: str = "") -> tuple[int, dict]:
    headers = {**api.auth(Role.MARKETER), "Content-Type": "text/csv"}
    response = await api.client.post(f"{BASE}/{cid}/audience{query}", data=data, headers=headers)
    return response.status, await response.json()


# ------------------------------------------------------------------ column mapping


async def test_a_cyrillic_header_is_mapped_by_the_operator(settings, clock, database) -> None:
    """An Excel export with `Телефон;Имя` is refused without a mapping, with an error naming
    the headers found and how to map them; with number_column and column.name it loads."""
    csv_bytes = "Телефон;Имя\r\n+7 701 123 45 67;Әлия\r\n87021234567;Иван\r\n".encode()
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        status, body = await _upload(api, cid, csv_bytes)
        assert status == 400, body
        assert body["error"]["code"] == "unmapped_columns"
        message = body["error"]["message"]
        assert "Телефон, Имя" in message and "column.name=" in message, message
        assert await _deliveries(database, cid) == {}
        status, body = await _upload(api, cid, csv_bytes, "?number_column=Телефон&column.name=Имя")
        assert status == 200, body
        assert body["accepted"] == 2 and body["rejected_total"] == 0
        assert await _deliveries(database, cid) == {
            "77011234567": {"name": "Әлия"},
            "77021234567": {"name": "Иван"},
        }


async def test_the_number_column_need_not_be_first(settings, clock, database) -> None:
    """Mapped columns may be anywhere, as multipart fields before the file too."""
    data = "Имя,Город,Телефон\nДана,Алматы,+77051234567\n".encode()
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        form = aiohttp.FormData()
        form.add_field("number_column", "телефон")
        form.add_field("column.name", "ИМЯ")
        form.add_field("file", data, filename="a.csv", content_type="text/csv")
        response = await api.client.post(
            f"{BASE}/{cid}/audience", data=form, headers=api.auth(Role.MARKETER)
        )
        body = await response.json()
        assert response.status == 200, body
        assert await _deliveries(database, cid) == {"77051234567": {"name": "Дана"}}


async def test_headers_match_whatever_their_case_and_spaces(settings, clock, database) -> None:
    """Without a mapping the headers are matched to the variables ignoring case, spaces and
    underscores: `First Name` is first_name."""
    payload = info_payload(
        variables=["first_name"], texts={"kk": "{first_name}!", "ru": "{first_name}!"}
    )
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, payload))["id"]
        status, body = await _upload(api, cid, b" Phone ; First Name \n77011234567;Aigerim\n")
        assert status == 200, body
        assert await _deliveries(database, cid) == {"77011234567": {"first_name": "Aigerim"}}


async def test_a_mapping_to_an_unknown_column_names_the_header(settings, clock, database) -> None:
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        query = "?number_column=Phone&column.name=Имя"
        status, body = await _upload(api, cid, "Телефон;Имя\n77011234567;A\n".encode(), query)
        assert status == 400, body
        assert "no column 'Phone'" in body["error"]["message"]
        assert "Телефон, Имя" in body["error"]["message"]


# ------------------------------------------------------------------ numbers that take SMS


def _kz() -> numbers.MobilePolicy:
    return numbers.MobilePolicy("KZ")


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("87172123456", "fixed-line number"),  # Astana
        ("+4915112345678", "foreign number (+49, Germany)"),
        ("+4930123456", "fixed-line number (+49, Germany)"),
        ("88001234567", "toll-free number"),
        ("+79123456789", "foreign number (+7, Russia)"),
        ("+78091234567", "premium-rate number"),
        ("+77511234567", "VoIP number"),
    ],
)
def test_numbers_that_cannot_take_sms_say_what_they_are(written: str, reason: str) -> None:
    with pytest.raises(numbers.InvalidMsisdn) as refused:
        numbers.mobile_number(written, _kz())
    assert refused.value.reason == reason


def test_the_operators_own_ranges_are_configurable() -> None:
    """Extra prefixes count as mobile; refused prefixes are rejected, on the row-by-row path
    and on the block fast path alike."""
    policy = numbers.MobilePolicy("KZ", mobile=("77172",), refused=("7705",))
    assert numbers.mobile_number("87172123456", policy) == "77172123456"
    with pytest.raises(numbers.InvalidMsisdn, match="refused range"):
        numbers.mobile_number("+77051234567", policy)
    data = b"".join(b"+7705%07d\n+7701%07d\n" % (n, n) for n in range(200))
    for fast in (True, False):
        parser = AudienceParser(
            [], "KZ", max_rows=10_000, max_bytes=10**6, fast=fast, policy=policy
        )
        copied = parser.feed(data).rows + parser.finish().rows
        assert (copied, parser.rejected_total) == (200, 200)
        assert {r.reason for r in parser.rejected} == {"refused range +7705"}


_KZ_MOBILE = st.builds(
    lambda p, rest: p + rest,
    st.sampled_from(["+7700", "8701", "7702", "+7705", "8707", "+7747", "7771", "+7776", "8778"]),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
)
_OTHER = st.builds(
    lambda p, rest: p + rest,
    st.sampled_from(
        [
            "87172",
            "87273",
            "8800",
            "+7809",
            "+7751",
            "+7912",
            "+7495",
            "+49151",
            "+4930",
            "+1201",
            "+44207",
            "+4479",
            "+99650",
            "+99890",
        ]
    ),
    st.text(alphabet="0123456789", min_size=6, max_size=7),
)


@hsettings(max_examples=300)
@given(st.one_of(_KZ_MOBILE, _OTHER))
def test_accepted_numbers_are_home_mobile_numbers(written: str) -> None:
    """Whatever is accepted is a valid mobile number of the home region, by phonenumbers
    itself; whatever is rejected says why, and a valid number is never 'invalid'."""
    number = phonenumbers.parse(written, "KZ")
    valid = phonenumbers.is_valid_number(number)
    kind = phonenumbers.number_type(number)
    try:
        msisdn = numbers.mobile_number(written, _kz())
    except numbers.InvalidMsisdn as exc:
        if valid:
            assert exc.reason != "invalid number"
            home = phonenumbers.region_code_for_number(number) == "KZ"
            assert kind != phonenumbers.PhoneNumberType.MOBILE or not home
        return
    assert valid and kind == phonenumbers.PhoneNumberType.MOBILE
    assert phonenumbers.region_code_for_number(number) == "KZ"
    assert msisdn == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


async def test_uploads_reject_numbers_that_cannot_take_sms(settings, clock, database) -> None:
    """Fixed-line, foreign and toll-free numbers are rejected at upload with their kind
    (they were accepted, then shown as "not member")."""
    rows = b"msisdn,name\n87172123456,A\n+4915112345678,B\n88001234567,C\n77011234567,D\n"
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        status, body = await upload(api, cid, rows)
        assert status == 200, body
        assert body["accepted"] == 1
        assert [(r["line"], r["reason"]) for r in body["rejected"]] == [
            (2, "fixed-line number"),
            (3, "foreign number (+49, Germany)"),
            (4, "toll-free number"),
        ]


# ------------------------------------------------------------------ every rejected row


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_every_rejected_row_is_kept_and_downloadable(settings, clock, database) -> None:
    """5,000 rejected rows: all written in the upload's transaction and all downloadable as
    CSV (not only the first ones listed), equal to the rejected count; cells that a
    spreadsheet would run as formulas are neutralised."""
    bad = [f"bad{n}" for n in range(4_997)] + ["=HYPERLINK(1)", "+4915112345678", "87172123456"]
    good = ["77011234567", "77021234567"]
    data = ("msisdn\n" + "\n".join(good[:1] + bad + good[1:]) + "\n").encode()
    async with running_api(settings, clock, database) as api:
        plain = info_payload(variables=[], texts={"kk": "Сәлем", "ru": "Привет"})
        cid = (await create(api, plain))["id"]
        status, body = await upload(api, cid, data)
        assert status == 200, body
        assert (body["accepted"], body["rejected_total"]) == (2, 5_000)
        assert body["upload_no"] == 1
        link = body["rejected_csv"]
        assert link == f"{BASE}/{cid}/audience/rejected.csv?upload=1"
        response = await api.client.get(link, headers=api.auth(Role.MARKETER))
        assert response.status == 200
        assert response.content_type == "text/csv"
        rows = _csv_rows(await response.text())
        assert rows[0] == ["upload", "line", "value", "reason"]
        assert len(rows) - 1 == body["rejected_total"] == 5_000
        assert [int(r[1]) for r in rows[1:]] == list(range(3, 5_003))
        assert rows[1] == ["1", "3", "bad0", "not a phone number"]
        by_line = {int(r[1]): r for r in rows[1:]}
        assert by_line[5_000][2] == "'=HYPERLINK(1)"
        assert by_line[5_001][2:] == ["'+4915112345678", "foreign number (+49, Germany)"]
        numbers = dict(
            await database.pool.fetch(
                "SELECT line, number FROM audience_rejections WHERE campaign_id = $1"
                " AND line IN (3, 5001, 5002)",
                cid,
            )
        )
        assert numbers == {3: None, 5_001: "4915112345678", 5_002: "77172123456"}
        # A second upload is number 2; without ?upload= both are downloaded.
        status, second = await upload(api, cid, b"msisdn\nnope\n")
        assert (status, second["upload_no"], second["rejected_total"]) == (200, 2, 1)
        everything = await api.client.get(
            f"{BASE}/{cid}/audience/rejected.csv", headers=api.auth(Role.ADMIN)
        )
        assert len(_csv_rows(await everything.text())) - 1 == 5_001
        denied = await api.client.get(link, headers=api.auth(Role.VIEWER))
        assert denied.status == 403
        missing = await api.client.get(
            f"{BASE}/{cid}/audience/rejected.csv?upload=9", headers=api.auth(Role.MARKETER)
        )
        assert missing.status == 404 and "error" in await missing.json()


async def test_a_refused_upload_keeps_no_record(settings, clock, database) -> None:
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload()))["id"]
        status, _ = await upload(api, cid, b"msisdn,name\n77011234567,A\n\xff\n")
        assert status == 400
        count = await database.pool.fetchval(
            "SELECT count(*) FROM audience_uploads WHERE campaign_id = $1", cid
        )
        assert count == 0
        status, body = await upload(api, cid, b"msisdn,name\n77011234567,A\n")
        assert body["upload_no"] == 1


# ------------------------------------------------------------------ defaults


async def test_blank_cells_take_their_variables_default(settings, clock, database) -> None:
    """A blank cell takes its variable's default, an optional variable ("") renders empty,
    a variable absent from the file takes its default, and only a blank variable with
    neither rejects the row, saying which."""
    payload = info_payload(
        variables=["name", "bonus", "city"],
        variable_defaults={"name": "друг", "bonus": ""},
        texts={"kk": "{name}{bonus} {city}", "ru": "{name}, {city}{bonus}"},
    )
    async with running_api(settings, clock, database) as api:
        created = await create(api, payload)
        cid = created["id"]
        assert created["variable_defaults"] == {"name": "друг", "bonus": ""}
        data = "msisdn,name,bonus,city\n77011234567,, ,Алматы\n77021234567,Dana,5,\n".encode()
        status, body = await upload(api, cid, data)
        assert status == 200, body
        assert body["accepted"] == 1
        assert [(r["line"], r["reason"]) for r in body["rejected"]] == [
            (3, "empty value for city (no default)")
        ]
        # A file without the bonus column: the default serves every row.
        status, body = await upload(api, cid, "msisdn,city,name\n77051234567,Астана,\n".encode())
        assert status == 200 and body["accepted"] == 1, body
        assert await _deliveries(database, cid) == {
            "77011234567": {"name": "друг", "bonus": "", "city": "Алматы"},
            "77051234567": {"name": "друг", "bonus": "", "city": "Астана"},
        }
        response = await api.client.post(
            BASE,
            json=info_payload(variable_defaults={"nickname": "x"}),
            headers=api.auth(Role.MARKETER),
        )
        body = await response.json()
        assert response.status == 400
        assert "nickname" in body["error"]["details"]["variable_defaults"]


def test_render_and_preview_use_the_same_rule_for_blanks() -> None:
    defaults = {"name": "друг", "bonus": ""}
    template = "{name}, скидка{bonus}!"
    assert render(template, {"name": " ", "bonus": ""}, defaults) == "друг, скидка!"
    assert render(template, {"name": "Әлия"}, defaults) == "Әлия, скидка!"
    with pytest.raises(KeyError):
        render("{city}", {"city": ""}, defaults)
    counted = preview({"ru": template}, {}, defaults)["ru"]
    assert counted["characters"] == len("друг, скидка!")


def test_the_parser_refuses_a_header_without_a_variable_and_no_default() -> None:
    parser = AudienceParser(["name"], "KZ", max_rows=10, max_bytes=10**6)
    with pytest.raises(InputRefused) as refused:
        parser.feed("Телефон;Имя\n77011234567;A\n".encode())
    assert "found: Телефон, Имя" in refused.value.message
    assert "--map name=" in refused.value.message


async def test_a_segment_may_fill_a_campaign_whose_variables_all_have_defaults(
    settings, clock, database
) -> None:
    """A segment has no columns: allowed once every variable has a default (the engine
    renders the defaults), refused while one has none."""
    async with running_api(settings, clock, database) as api:
        headers = api.auth(Role.MARKETER)
        for defaults, expected in (({"name": "друг"}, 200), ({}, 400)):
            cid = (await create(api, info_payload(variable_defaults=defaults)))["id"]
            response = await api.client.post(
                f"{BASE}/{cid}/audience", json={"segment": "active_subscribers"}, headers=headers
            )
            assert response.status == expected, await response.text()


async def test_the_preview_endpoint_counts_blank_samples_as_their_default(
    settings, clock, database
) -> None:
    body = {
        "texts": {"ru": "{name}, скидка{bonus}!"},
        "variables": {"name": ""},
        "variable_defaults": {"name": "Дорогой покупатель", "bonus": ""},
    }
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(
            f"{BASE}/preview", json=body, headers=api.auth(Role.MARKETER)
        )
        counted = await response.json()
        assert response.status == 200, counted
        assert counted["ru"]["characters"] == len("Дорогой покупатель, скидка!")
