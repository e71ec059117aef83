"""The forecast before a start (issue 15, "Forecast before start"; issue 14, the parts counter
with the audience's values): over real HTTP, PostgreSQL and the SMPP simulator, the forecast
agrees with what sending then does — suppressions by reason exactly, and each recipient's
parts and encoding as the SMSC received them."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests import factories
from tests.dispatch_helpers import dispatch_rig
from tests.test_campaign_support import BASE, action, create, info_payload, survey_payload, upload
from tests.test_cli_commands import _smartd
from tests.web_helpers import Api, running_api

# 72 characters of English around the name: GSM-7, one part with a Latin name; with a
# Cyrillic one the whole message is UCS-2 (70 a part, 67 when split): two parts.
EN = "{name}, your SMART bonus of 500 tenge is waiting: dial *111*3# today to use it"
TEXTS = {
    "kk": "{name}, SMART бонусыңыз дайын",
    "ru": "{name}, ваш бонус SMART ждёт",
    "en": EN,
}
LATIN = [f"7701000{n:04d}" for n in range(6)]  # members, English, Latin names
CYRILLIC = [f"7701100{n:04d}" for n in range(12)]  # members, English, Cyrillic names
RUSSIAN = [f"7701200{n:04d}" for n in range(3)]  # members, Russian
STRANGER = [f"7702000{n:04d}" for n in range(2)]  # subscribers who never joined
LEFT = [f"7702100{n:04d}" for n in range(3)]  # joined and left
UNKNOWN = [f"7702200{n:04d}" for n in range(1)]  # not a subscriber at all
DNC = [f"7702300{n:04d}" for n in range(2)]  # 1204, never joined
BLOCKED = [f"7702400{n:04d}" for n in range(1)]
RECYCLED = [f"7702500{n:04d}" for n in range(2)]
CAPPED = [f"7702600{n:04d}" for n in range(4)]  # members whose info cap this month is used


async def _audience(database: Database) -> None:
    await factories.members(database, LATIN + CYRILLIC + RUSSIAN + BLOCKED + RECYCLED + CAPPED)
    await factories.subscribers(database, LATIN + CYRILLIC, language="en")
    await factories.subscribers(database, RUSSIAN, language="ru")
    await factories.subscribers(database, STRANGER + DNC)
    await factories.subscribers(database, BLOCKED, status="blocked")
    await factories.subscribers(database, RECYCLED, status="recycled")
    await factories.dnc(database, DNC)
    await factories.subscribers(database, LEFT)
    await database.pool.execute(
        "INSERT INTO memberships (msisdn, joined_at, join_channel, left_at, leave_channel) "
        "SELECT unnest($1::text[]), $2, 'ussd', $2, 'sms'",
        LEFT,
        factories.NOVEMBER_1,
    )
    await database.pool.execute(
        "INSERT INTO contact_counters (msisdn, owner_epoch, month, info_count, survey_count, "
        "info_cap, survey_cap) SELECT unnest($1::text[]), 0, date '2026-11-01', 10, 0, 10, 2",
        CAPPED,
    )


def _csv() -> bytes:
    rows = ["msisdn,name"]
    rows += [f"{m},Aigerim" for m in LATIN]
    rows += [f"{m},Айгерим" for m in CYRILLIC]
    others = RUSSIAN + STRANGER + LEFT + UNKNOWN + DNC + BLOCKED + RECYCLED + CAPPED
    rows += [f"{m},Dana" for m in others]
    return ("\n".join(rows) + "\n").encode()


async def _forecast(api: Api, campaign_id: int, role: Role = Role.ADMIN) -> dict[str, Any]:
    response = await api.client.get(f"{BASE}/{campaign_id}/forecast", headers=api.auth(role))
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def _sent(database: Database, campaign_id: int) -> tuple[Counter[str], Counter[int]]:
    """Suppressions by reason, and recipients by parts actually submitted."""
    rows = await database.pool.fetch(
        "SELECT d.suppressed::text AS reason, "
        "(SELECT count(*) FROM submits s WHERE s.delivery_id = d.id) AS parts "
        "FROM deliveries d WHERE d.campaign_id = $1",
        campaign_id,
    )
    reasons = Counter(r["reason"] for r in rows if r["reason"] is not None)
    parts = Counter(int(r["parts"]) for r in rows if r["reason"] is None)
    return reasons, parts


async def test_forecast_agrees_with_sending_by_reason_and_parts(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Forecast, start, send through the simulator: the suppressions by reason are the
    forecast's exactly, and the parts each recipient got are the forecast's distribution:
    the English text is GSM-7 in 1 part for Latin names and UCS-2 in 2 parts for Cyrillic
    ones (the bug: "GSM-7 · 1 part" for all)."""
    await _audience(database)
    async with running_api(settings, clock, database) as api:
        created = await create(api, info_payload(texts=TEXTS))
        status, body = await upload(api, created["id"], _csv())
        assert status == 200 and body["accepted"] == 36, body
        forecast = await _forecast(api, created["id"])
        assert forecast["audience"] == 36 and forecast["eligible"] == 21
        assert {k: v for k, v in forecast["suppressed"].items() if v} == {
            "not_member": 6,
            "dnc": 2,
            "blocked": 1,
            "recycled": 2,
            "cap_info": 4,
        }
        assert forecast["left_program"] == 3
        parts = forecast["parts"]
        assert parts["distribution"] == {"gsm7": {"1": 6}, "ucs2": {"1": 3, "2": 12}}
        assert parts["worst"] == {"encoding": "ucs2", "parts": 2}
        assert parts["total"] == 6 + 3 + 24 and parts["unsendable"] == 0
        assert any("UCS-2" in w for w in forecast["warnings"])
        # 33 parts at 100/s from 17:00 Astana: 0.33 s later
        assert datetime.fromisoformat(forecast["finishes_at"]) > clock.now()

        async with dispatch_rig(database, settings, clock) as rig:
            await action(api, created["id"], "start")
            await rig.drain()
            reasons, sent_parts = await _sent(database, created["id"])
            assert reasons == {k: v for k, v in forecast["suppressed"].items() if v}
            assert sent_parts == {1: 9, 2: 12}
            by_number = Counter(
                (sm.destination_addr, sm.data_coding) for _, sm in rig.sim.submits()
            )
        for msisdn in LATIN:
            assert by_number[(msisdn, 0)] == 1
        for msisdn in CYRILLIC:
            assert by_number[(msisdn, 8)] == 2


async def test_survey_forecast_counts_the_composed_first_message(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A survey's first message is intro + question + options: a short intro alone is one
    part, the composed message two — the forecast says two, and two are submitted."""
    numbers = [f"7701300{n:04d}" for n in range(5)]
    await factories.members(database, numbers)
    await factories.subscribers(database, numbers, language="ru")
    intro = {
        "kk": "Сауалнама",
        "ru": "Короткий опрос SMART, ответ бесплатный и займёт минуту",
        "en": "Survey",
    }
    async with running_api(settings, clock, database) as api:
        created = await create(api, survey_payload(texts=intro))
        status, _ = await upload(api, created["id"], ("\n".join(numbers) + "\n").encode())
        assert status == 200
        forecast = await _forecast(api, created["id"])
        assert forecast["parts"]["distribution"] == {"ucs2": {"2": 5}}
        async with dispatch_rig(database, settings, clock) as rig:
            await action(api, created["id"], "start")
            await rig.drain()
            _, sent_parts = await _sent(database, created["id"])
        assert sent_parts == {2: 5}


async def test_partner_facing_roles_see_small_counts_hidden(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """R11: a viewer or marketer token (partner-facing) sees counts below the minimum cell
    size as "< 5", and the total parts and the finish only where no cell they come from is
    hidden; an admin sees them all. An unknown campaign is a 404 in the error shape."""
    await _audience(database)
    async with running_api(settings, clock, database) as api:
        created = await create(api, info_payload(texts=TEXTS))
        await upload(api, created["id"], _csv())
        shown = await _forecast(api, created["id"], Role.VIEWER)
        assert shown["eligible"] == 21 and shown["suppressed"]["blocked"] == "< 5"
        assert shown["parts"]["distribution"]["ucs2"]["1"] == "< 5"
        assert shown["parts"]["total"] is None and shown["finishes_at"] is None
        missing = await api.client.get(f"{BASE}/999999/forecast", headers=api.auth(Role.ADMIN))
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "not_found"
        anonymous = await api.client.get(f"{BASE}/{created['id']}/forecast")
        assert anonymous.status == 401


async def test_cli_forecast_prints_counts_parts_and_finish(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """`smartd campaign forecast ID`: reasons in words, parts per encoding, total and the
    finish in Astana time without microseconds; an unknown id is a message and exit ≠ 0."""
    await factories.members(database, LATIN[:2] + CYRILLIC[:3])
    await factories.subscribers(database, LATIN[:2] + CYRILLIC[:3], language="en")
    await factories.subscribers(database, STRANGER)
    created = _smartd(
        database_url,
        "campaign",
        "create",
        "--name",
        "F",
        "--variable",
        "name",
        *[f"--text={lang}={text}" for lang, text in TEXTS.items()],
    )
    assert created.returncode == 0, created.stderr
    campaign = created.stdout.split()[2]
    audience = tmp_path / "a.csv"
    rows = [f"{m},Aigerim" for m in LATIN[:2]] + [f"{m},Айгерим" for m in CYRILLIC[:3]]
    rows += [f"{m},Dana" for m in STRANGER]
    audience.write_text("msisdn,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert _smartd(database_url, "campaign", "upload", campaign, str(audience)).returncode == 0
    result = _smartd(database_url, "campaign", "forecast", campaign)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "7 queued recipients, 5 would be sent" in out
    assert "not a SMART member: 2" in out
    assert "GSM-7: 2 × 1 part" in out and "UCS-2: 3 × 2 parts" in out
    assert "worst case: UCS-2, 2 parts" in out and "total SMS parts: 8" in out
    finish = re.search(r"would finish by (\d{4}-\d\d-\d\d \d\d:\d\d) \(Astana time\)", out)
    assert finish is not None, out
    missing = _smartd(database_url, "campaign", "forecast", "999999")
    assert missing.returncode != 0 and "no campaign 999999" in missing.stderr
