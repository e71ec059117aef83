"""No MSISDN and no secret in any log line (R11, invariant 6): the main flows run with
logging configured as in production (JSON, here at debug level) into a buffer, then every
line is scanned for the test numbers, any run of 11+ digits, and the tokens and passwords
in use. The serve logs of the process tests are scanned with the same check."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members
from tests.reliability.procs import assert_no_personal_data
from tests.test_campaign_support import action, create, info_payload, upload
from tests.web_helpers import running_api

MEMBERS = [f"7707{n:07d}" for n in range(20)]
STRANGER = "77079990001"


async def _http_flows(settings: Settings, clock: ManualClock, database: Database) -> list[str]:
    """USSD join / balance / leave / bad input, operator events, subscriber lookup, a campaign
    created, uploaded and started; returns the tokens used."""
    async with running_api(settings, clock, database) as api:
        gateway = api.auth(Role.GATEWAY)
        for i, msisdn in enumerate(MEMBERS[:5]):
            for code in ("*555*1#", "*111*3#", "*555#", "*555*00#"):
                body = {"msisdn": msisdn, "session_id": f"s{i}{code}", "input": code}
                resp = await api.client.post("/gateway/ussd", json=body, headers=gateway)
                assert resp.status == 200
        await api.client.post(
            "/gateway/ussd",
            json={"msisdn": MEMBERS[0], "session_id": "x", "input": "*555*2#"},
            headers=gateway,
        )
        await api.client.post(
            "/gateway/ussd",
            json={"msisdn": "7707123", "session_id": "b", "input": "*555#"},
            headers=gateway,
        )
        await api.client.post(
            "/gateway/events",
            json={"type": "dnc_optout", "msisdn": MEMBERS[1], "event_id": "ivr-1"},
            headers=gateway,
        )
        for msisdn in (MEMBERS[2], STRANGER):
            await api.client.get(f"/api/v1/subscribers/{msisdn}", headers=api.auth(Role.VIEWER))
        await api.client.get("/api/v1/whoami", headers={"Authorization": "Bearer wrong-token"})
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        csv = ("\n".join([*MEMBERS[5:], "12345", STRANGER]) + "\n").encode()
        assert (await upload(api, cid, csv))[0] == 200
        assert (await action(api, cid, "start"))[0] == 200
        return list(api.tokens.values())


async def _smpp_flows(settings: Settings, clock: ManualClock, database: Database) -> None:
    """A campaign dispatched with receipts, STOP, 1204, a resent MO, an MO from a bad address."""
    await members(database, MEMBERS[10:])
    campaign_id = await campaign(database, MEMBERS[10:], texts={"ru": "Offer logs"})
    async with dispatch_rig(
        database, settings, clock, sim_options={"duplicate_receipts": True}
    ) as rig:
        await rig.drain()
        await rig.receipts_settled(len(MEMBERS[10:]))
        await rig.sim.inject_mo(MEMBERS[11], settings.short_code, "STOP")
        await rig.sim.inject_mo(MEMBERS[12], settings.dnc_code, "no calls")
        await rig.sim.inject_mo(MEMBERS[12], settings.dnc_code, "no calls")
        await rig.sim.inject_mo(MEMBERS[13], settings.short_code, "HELP")
        await rig.sim.inject_mo("7707abc", settings.short_code, "hi")
        await rig.drain()
        assert (await rig.states(campaign_id)).get("delivered") == len(MEMBERS[10:])


async def test_main_flows_log_no_msisdn_or_secret(
    settings: Settings, clock: ManualClock, database: Database, json_logging: io.StringIO
) -> None:
    """Join, leave, balance, 1204, lookups, campaign upload and dispatch, receipts, MO: the
    JSON log lines carry no unmasked number, no token, no password."""
    tokens = await _http_flows(settings, clock, database)
    await _smpp_flows(settings, clock, database)
    text = json_logging.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) > 25  # the flows did log: the scan is not vacuous
    events = {line.get("event", "") for line in lines}
    assert any("/api/v1/subscribers/" in e for e in events)  # the access log, with its URL
    assert any("****" in json.dumps(line) for line in lines)  # masked numbers are there
    assert_no_personal_data(text, [*MEMBERS, STRANGER], [*tokens, "wrong-token"])


def test_token_create_logs_no_secret(database_url: str, tmp_path: Path) -> None:
    """`smartd token create` prints the token once on stdout; its log (stderr) never has it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    env |= {
        "SMARTD_DATABASE_URL": database_url,
        "SMARTD_DATA_DIR": str(tmp_path),
        "SMARTD_LOG_LEVEL": "debug",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dispatcher.cli",
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "ops",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = done.stdout.strip().splitlines()[-1]
    assert len(token) >= 20
    assert_no_personal_data(done.stderr, [], [token])
