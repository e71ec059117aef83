"""The send calendar (issue 15) where it matters: the engine against the SMSC simulator on
127.0.0.1 over real PostgreSQL, and the forecast over real HTTP. A campaign running Saturday
evening with Sunday closed stops at Saturday's close (its validity ends then) and resumes on
Monday at the opening; a refused validity waits past Sunday; the forecast's finish skips a
public holiday."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dispatcher.db import Database
from dispatcher.engine.engine import EngineConfig
from dispatcher.kernel.clock import ManualClock, load_zone
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings, load_settings
from smpp.constants import Status
from tests import factories
from tests.dispatch_helpers import add_campaign, add_members, dispatch_rig
from tests.test_campaign_support import create, info_payload, upload
from tests.web_helpers import running_api

WEEK = "mon-fri 10:00-21:00; sat 11:00-19:00; sun closed"
NUMBERS = [f"7701777{n:04d}" for n in range(6)]
SATURDAY_CLOSE = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)  # Sat 19:00 Astana
MONDAY_OPEN = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)  # Mon 10:00 Astana


def _settings(database_url: str, tmp_path: Path, **env: str) -> Settings:
    return load_settings(env, data_dir=tmp_path, database_url=database_url)


async def test_saturday_evening_resumes_monday_at_opening(
    database: Database, database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """Sat 18:59:50 a batch goes with validity ending at Saturday's 19:00 close; nothing goes
    after it, nor on Sunday (closed); the rest goes Monday from 10:00, valid until 21:00."""
    settings = _settings(database_url, tmp_path, SMARTD_SEND_HOURS=WEEK)
    await add_members(database, NUMBERS)
    campaign = await add_campaign(database, NUMBERS)
    clock.set(SATURDAY_CLOSE - timedelta(seconds=10))
    async with dispatch_rig(
        database, settings, clock, engine=EngineConfig(window=8, batch_size=2)
    ) as rig:
        assert await rig.dispatcher.run_once() == 2
        assert {sm.validity_period for _, sm in rig.sim.submits()} == {"261128190000020+"}
        for instant in (
            SATURDAY_CLOSE,
            datetime(2026, 11, 29, 7, 0, tzinfo=UTC),  # Sun 12:00: open every day before
            MONDAY_OPEN - timedelta(seconds=1),
        ):
            clock.set(instant)
            assert await rig.drain() == 0, instant
        assert await rig.states(campaign) == {"submitted": 2, "queued": 4}
        clock.set(MONDAY_OPEN)
        assert await rig.drain() == 4
        assert {sm.validity_period for _, sm in rig.sim.submits()[2:]} == {"261130210000020+"}
        assert await rig.states(campaign) == {"submitted": 6}


async def test_refused_validity_on_saturday_waits_for_monday(
    database: Database, database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """An SMSC refusing the validity (0x62) on Saturday: the message waits for the next
    opening, Monday 10:00 (deferral carries over the closed Sunday)."""
    settings = _settings(database_url, tmp_path, SMARTD_SEND_HOURS=WEEK)
    await add_members(database, NUMBERS[:3])
    campaign = await add_campaign(database, NUMBERS[:3])
    clock.set(SATURDAY_CLOSE - timedelta(hours=1))
    sim = {"submit_status": Status.ESME_RINVEXPIRY}
    async with dispatch_rig(database, settings, clock, sim_options=sim) as rig:
        await rig.drain()
        assert await rig.states(campaign) == {"queued": 3}
        rows = await database.pool.fetch("SELECT DISTINCT not_before FROM deliveries")
        assert [r["not_before"] for r in rows] == [MONDAY_OPEN]


async def test_forecast_finish_skips_a_public_holiday(
    database: Database, database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """4 parts at 0.0002/s are 5 h 33 min 20 s of window: from Monday 17:00, 4 h that day,
    then — Tuesday the 24th a holiday in the calendar file — Wednesday 10:00 to 11:33:20."""
    holidays = tmp_path / "calendar.txt"
    holidays.write_text("# test\n2026-11-24 closed  # a public holiday\n", encoding="utf-8")
    settings = _settings(
        database_url,
        tmp_path,
        SMARTD_SEND_CALENDAR_FILE=str(holidays),
        SMARTD_SMPP_TPS="0.0002",
    )
    numbers = NUMBERS[:4]
    await factories.members(database, numbers)
    async with running_api(settings, clock, database) as api:
        created = await create(api, info_payload(texts={"kk": "Сәлем", "ru": "Привет"}))
        csv = ("msisdn,name\n" + "".join(f"{m},Dana\n" for m in numbers)).encode()
        status, body = await upload(api, created["id"], csv)
        assert status == 200, body
        response = await api.client.get(
            f"/api/v1/campaigns/{created['id']}/forecast", headers=api.auth(Role.ADMIN)
        )
        forecast = await response.json()
    assert forecast["parts"]["total"] == 4, forecast
    finish = datetime.fromisoformat(forecast["finishes_at"]).astimezone(load_zone("Asia/Almaty"))
    assert finish.strftime("%Y-%m-%d %H:%M") == "2026-11-25 11:33", forecast["finishes_at"]
