"""Variants and a control group (issue 15), through the real HTTP app, PostgreSQL and the SMPP
simulator: variants and a holdout on create and edit (400 naming the field), the arm of each
recipient visible before the start, holdout numbers receiving nothing and using no cap slot
while variant numbers receive their variant's text, and the report per arm with uplift."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from smpp.inbound import decode_text, payload_of
from tests import factories
from tests.dispatch_helpers import dispatch_rig
from tests.test_campaign_support import BASE, action, create, info_payload, upload
from tests.test_cli_commands import _smartd
from tests.test_variants_assignment import arm as documented_arm
from tests.web_helpers import Api, running_api

NUMBERS = [f"7701500{n:04d}" for n in range(200)]
TEXT_A = {"kk": "Offer A kk", "ru": "Offer A ru", "en": "Offer A today at Coffee Boom"}
TEXT_B = {"kk": "Offer B kk", "ru": "Offer B ru", "en": "Offer B: two for one at Coffee Boom"}


def variants_payload(holdout: int = 20, **overrides: Any) -> dict[str, Any]:
    payload = info_payload(
        variables=[],
        texts=None,
        variants=[
            {"name": "A", "texts": TEXT_A, "percent": 50},
            {"name": "B", "texts": TEXT_B, "percent": 50},
        ],
        holdout_percent=holdout,
    )
    payload.pop("texts")
    payload.update(overrides)
    return payload


async def _variants(api: Api, campaign_id: int, role: Role = Role.ADMIN) -> dict[str, Any]:
    response = await api.client.get(f"{BASE}/{campaign_id}/variants", headers=api.auth(role))
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def _arms(database: Database, campaign_id: int) -> dict[str, int | None]:
    rows = await database.pool.fetch(
        "SELECT msisdn, variant FROM deliveries WHERE campaign_id = $1", campaign_id
    )
    return {r["msisdn"]: r["variant"] for r in rows}


async def test_invalid_variants_are_400_naming_the_field(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A variant without the required Kazakh text, percents not summing to 100, five
    variants, a holdout over 50, variants on a survey: each a 400 naming its field."""
    async with running_api(settings, clock, database) as api:
        headers = api.auth(Role.MARKETER)
        bad = variants_payload()
        bad["variants"][1]["texts"] = {"ru": "Offer B ru"}
        response = await api.client.post(BASE, json=bad, headers=headers)
        body = await response.json()
        assert response.status == 400, body
        assert "kk" in body["error"]["details"]["variants[1].texts"]

        bad = variants_payload()
        bad["variants"][0]["percent"] = 40
        body = await (await api.client.post(BASE, json=bad, headers=headers)).json()
        assert "sum to 90" in body["error"]["details"]["variants"]

        five = variants_payload()
        five["variants"] = [{"texts": TEXT_A, "percent": 20} for _ in range(5)]
        body = await (await api.client.post(BASE, json=five, headers=headers)).json()
        assert "at most 4" in body["error"]["details"]["variants"]

        body = await (
            await api.client.post(BASE, json=variants_payload(holdout=51), headers=headers)
        ).json()
        assert "holdout_percent" in body["error"]["details"]

        bad = variants_payload()
        bad["texts"] = TEXT_B
        body = await (await api.client.post(BASE, json=bad, headers=headers)).json()
        assert "variant A" in body["error"]["details"]["texts"]


async def test_create_edit_and_arms_visible_before_start(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Created with variants and a holdout, the campaign shows them; the audience's arms are
    assigned at upload (visible in the variants report before the start) and follow an
    edit of the split; a plain campaign keeps `texts` and one arm."""
    await factories.members(database, NUMBERS)
    async with running_api(settings, clock, database) as api:
        created = await create(api, variants_payload())
        assert created["holdout_percent"] == 20 and len(created["variants"]) == 2
        assert created["texts"] == TEXT_A  # variant A, for clients that know only texts
        status, body = await upload(api, created["id"], ("\n".join(NUMBERS) + "\n").encode())
        assert status == 200 and body["accepted"] == 200, body
        arms = await _arms(database, created["id"])
        counts = Counter(arms.values())
        assert set(counts) == {None, 0, 1} and 20 <= counts[None] <= 60
        report = await _variants(api, created["id"])
        shown = {arm["variant"]: arm["recipients"] for arm in report["arms"]}
        assert shown == {"0": counts[0], "1": counts[1], "holdout": counts[None]}

        response = await api.client.patch(
            f"{BASE}/{created['id']}", json={"holdout_percent": 0}, headers=api.auth(Role.MARKETER)
        )
        assert response.status == 200, await response.json()
        after = await _arms(database, created["id"])
        assert None not in after.values()
        assert all(after[m] == arms[m] for m in NUMBERS if arms[m] is not None)
        new_a = {**TEXT_A, "en": "Offer A, now cheaper"}
        response = await api.client.patch(
            f"{BASE}/{created['id']}", json={"texts": new_a}, headers=api.auth(Role.MARKETER)
        )
        edited = await response.json()
        assert response.status == 200, edited
        assert edited["texts"] == new_a and edited["variants"][0]["texts"] == new_a
        assert edited["variants"][1]["texts"] == TEXT_B

        plain = await create(api, info_payload())
        assert plain["variants"] == [] and plain["holdout_percent"] == 0


async def test_holdout_gets_nothing_and_no_cap_slot_variants_get_their_text(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Sent through the simulator: holdout numbers receive nothing and hold no cap slot
    (no counter row), every variant number receives its own variant's text; then the
    report counts opt-outs (STOP and 1204 sent through the simulator, within 7 days) and
    activations (within 30 days) per arm, with each variant's uplift."""
    await factories.members(database, NUMBERS)
    await factories.subscribers(database, NUMBERS, language="en")
    async with running_api(settings, clock, database) as api:
        created = await create(api, variants_payload())
        await upload(api, created["id"], ("\n".join(NUMBERS) + "\n").encode())
        arms = await _arms(database, created["id"])
        held = [m for m, arm in arms.items() if arm is None]
        forecast = await (
            await api.client.get(f"{BASE}/{created['id']}/forecast", headers=api.auth(Role.ADMIN))
        ).json()
        assert forecast["holdout"] == len(held) and forecast["eligible"] == 200 - len(held)
        assert "holdout" not in forecast["suppressed"]
        async with dispatch_rig(database, settings, clock) as rig:
            await action(api, created["id"], "start")
            await rig.drain()
            received = {
                sm.destination_addr: decode_text(sm.data_coding, payload_of(sm))
                for _, sm in rig.sim.submits()
            }
            # Opt-outs as subscribers send them: STOP to the short code, a text to 1204.
            clock.advance(timedelta(hours=2))
            variant_a = [m for m, arm in arms.items() if arm == 0]
            for msisdn in variant_a[35:38]:
                await rig.sim.inject_mo(msisdn, settings.short_code, "STOP")
            for msisdn in variant_a[38:41]:
                await rig.sim.inject_mo(msisdn, settings.dnc_code, "1204")
            await rig.sim.inject_mo(held[0], settings.short_code, "STOP")
        assert held and not set(held) & set(received)
        for msisdn, arm in arms.items():
            if arm is not None:
                assert received[msisdn] == (TEXT_A, TEXT_B)[arm]["en"]
        slots = await database.pool.fetch(
            "SELECT msisdn FROM contact_counters WHERE info_count > 0 AND msisdn = ANY($1)", held
        )
        assert slots == []

        started = clock.now() - timedelta(hours=2)
        await _activate(database, variant_a[:30], started + timedelta(days=2))
        await _activate(database, held[:3], started + timedelta(days=2))
        await _activate(database, variant_a[30:35], started + timedelta(days=40))  # too late
        await _leave(database, variant_a[41:43], started + timedelta(days=8))  # too late
        clock.advance(timedelta(days=45))
        report = await _variants(api, created["id"])
        by_arm = {arm["variant"]: arm for arm in report["arms"]}
        a, holdout = by_arm["0"], by_arm["holdout"]
        assert a["recipients"] == len(variant_a) and a["sent"] == len(variant_a)
        assert a["activated"] == 30 and a["opted_out"] == 6
        assert holdout["activated"] == 3 and holdout["sent"] == 0 and holdout["opted_out"] == 1
        uplift = a["uplift"]["activated"]
        expected = 100 * (30 / len(variant_a) - 3 / len(held))
        assert abs(uplift["difference"] - expected) < 0.01
        assert uplift["low"] < uplift["difference"] < uplift["high"]
        assert holdout["uplift"] is None

        partner = await _variants(api, created["id"], Role.VIEWER)
        shown = {arm["variant"]: arm for arm in partner["arms"]}
        assert shown["holdout"]["activated"] == "< 5"
        assert shown["0"]["uplift"]["activated"] is None  # from a hidden count
        assert shown["holdout"]["sent"] == 0  # never sent, by design: nothing to hide


async def test_segment_audience_gets_the_same_arms(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """An audience from a segment (``{"segment": "smart_members"}``) is assigned as an
    uploaded one: each number's arm is the documented formula, the holdout's rows final
    as 'holdout' from the load."""
    await factories.members(database, NUMBERS[:80])
    async with running_api(settings, clock, database) as api:
        created = await create(api, variants_payload(holdout=30))
        response = await api.client.post(
            f"{BASE}/{created['id']}/audience",
            json={"segment": "smart_members"},
            headers=api.auth(Role.MARKETER),
        )
        assert response.status == 200, await response.json()
    arms = await _arms(database, created["id"])
    assert len(arms) == 80
    for msisdn, found in arms.items():
        assert found == documented_arm(created["id"], msisdn, 30, [50, 50])
    states = await database.pool.fetch(
        "SELECT DISTINCT state::text, suppressed::text FROM deliveries "
        "WHERE campaign_id = $1 AND variant IS NULL",
        created["id"],
    )
    assert [tuple(r) for r in states] == [("suppressed", "holdout")]


async def test_cli_create_with_variants_and_report(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """`smartd campaign create --variants FILE --holdout 20`, an upload, then `smartd
    campaign report ID --variants`: a line per arm with its counts; a variants file whose
    percents do not sum to 100 is refused naming the field, exit ≠ 0."""
    await factories.members(database, NUMBERS[:40])
    spec = tmp_path / "variants.json"
    spec.write_text(json.dumps(variants_payload()["variants"]), encoding="utf-8")
    created = _smartd(
        database_url,
        "campaign",
        "create",
        "--name",
        "V",
        "--variants",
        str(spec),
        "--holdout",
        "20",
    )
    assert created.returncode == 0, created.stderr
    campaign = created.stdout.split()[2]
    audience = tmp_path / "a.csv"
    audience.write_text("\n".join(NUMBERS[:40]) + "\n", encoding="utf-8")
    uploaded = _smartd(database_url, "campaign", "upload", campaign, str(audience))
    assert uploaded.returncode == 0, uploaded.stderr
    shown = _smartd(database_url, "campaign", "report", campaign, "--variants")
    assert shown.returncode == 0, shown.stderr
    arms = Counter((await _arms(database, int(campaign))).values())
    lines = shown.stdout.splitlines()
    assert any(line.startswith(f"A | 40 | {arms[0]} | 0 |") for line in lines), shown.stdout
    assert any(line.startswith(f"Holdout | 20 | {arms[None]} | 0 |") for line in lines)
    assert "not started" in shown.stdout

    bad = variants_payload()["variants"]
    bad[0]["percent"] = 30
    spec.write_text(json.dumps(bad), encoding="utf-8")
    refused = _smartd(database_url, "campaign", "create", "--name", "W", "--variants", str(spec))
    assert (
        refused.returncode != 0 and "variants: " in refused.stderr and "sum to 80" in refused.stderr
    )


async def _activate(database: Database, msisdns: list[str], at: Any) -> None:
    await database.pool.execute(
        "INSERT INTO bonus_grants (msisdn, month, units, state, granted_at, deadline_at, "
        "activated_at, activated_month, expires_at) "
        "SELECT m, date_trunc('month', $2::timestamptz)::date, 500, 'active', $2, "
        "$2 + interval '30 days', $2, date_trunc('month', $2::timestamptz)::date, "
        "$2 + interval '7 days' FROM unnest($1::text[]) AS m",
        msisdns,
        at,
    )


async def _leave(database: Database, msisdns: list[str], at: Any) -> None:
    await database.pool.execute(
        "INSERT INTO consent_ledger (msisdn, event, channel, occurred_at) "
        "SELECT m, 'left', 'sms', $2 FROM unnest($1::text[]) AS m",
        msisdns,
        at,
    )
