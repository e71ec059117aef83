"""The SMSC simulator's control endpoint (issue 11): an MO typed by hand — `smartd smsc-sim
inject-mo` or POST /mo on loopback — reaches the engine bound to the simulator and is
applied; with no ESME bound it waits in the simulator's store."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request

import aiohttp
import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.settings import Settings
from smpp.sim_control import start_control
from smpp.simulator import SmscSimulator
from tests.dispatch_helpers import add_members, dispatch_rig
from tests.net import free_port
from tests.test_cli import _env

MSISDN = "77013334455"
SMARTD = (sys.executable, "-m", "dispatcher.cli")


async def _smartd(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dispatcher.cli",
        *args,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_stop_injected_by_hand_reaches_the_engine(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """`smartd smsc-sim inject-mo --from N STOP` through the control endpoint: the bound
    engine applies it (the member leaves) and acknowledges it; the command says so."""
    await add_members(database, [MSISDN])
    async with dispatch_rig(database, settings, clock) as rig:
        runner, port = await start_control(rig.sim, 0)
        try:
            code, out, err = await _smartd(
                "smsc-sim", "inject-mo", "--control-port", str(port), "--from", MSISDN, "STOP"
            )
        finally:
            await runner.cleanup()
    assert code == 0, err
    assert out.strip() == "delivered: 1 part(s), the ESME answered ESME_ROK"
    assert await database.pool.fetchval("SELECT outcome FROM mo_messages") == "left"


async def test_a_survey_answer_posted_to_the_endpoint_is_recorded(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """POST /mo {"from","to","text"} answers 200 with the ESME's statuses; the MO is
    recorded by the engine; GET /status shows the bind and nothing stored."""
    await add_members(database, [MSISDN])
    async with dispatch_rig(database, settings, clock) as rig:
        runner, port = await start_control(rig.sim, 0)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                body = {"from": MSISDN, "to": settings.short_code, "text": "2"}
                async with http.post(f"{base}/mo", json=body) as response:
                    assert response.status == 200
                    assert await response.json() == {"parts": 1, "statuses": [0]}
                async with http.post(f"{base}/mo", data=b"{not json") as response:
                    assert response.status == 400
                async with http.post(f"{base}/mo", json={"from": MSISDN}) as response:
                    assert response.status == 400
                async with http.get(f"{base}/status") as response:
                    status = await response.json()
        finally:
            await runner.cleanup()
    assert [b["system_id"] for b in status["binds"]] == ["smartd"]
    assert status["stored"] == 0 and status["delivered"] == 1
    assert await database.pool.fetchval("SELECT body FROM mo_messages") == "2"


async def test_the_control_endpoint_listens_on_loopback_only() -> None:
    """Any other address is refused: the endpoint takes no credentials."""
    async with SmscSimulator() as sim:
        with pytest.raises(ValueError, match="loopback only"):
            await start_control(sim, 0, host="0.0.0.0")


def test_smsc_sim_control_port_stores_an_mo_until_an_esme_binds() -> None:
    """`smartd smsc-sim --control-port C` announces the endpoint; an MO injected with no
    ESME bound is stored (exit 0, says so) and counted in GET /status."""
    port, control = free_port(), free_port()
    proc = subprocess.Popen(
        [*SMARTD, "smsc-sim", "--port", str(port), "--control-port", str(control)],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "listening" in proc.stdout.readline()
        assert proc.stdout.readline().strip() == (
            f"control endpoint on http://127.0.0.1:{control} (POST /mo)"
        )
        injected = subprocess.run(
            [
                *SMARTD,
                "smsc-sim",
                "inject-mo",
                f"--control-port={control}",
                f"--from={MSISDN}",
                "1",
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert injected.returncode == 0, injected.stderr
        assert injected.stdout.startswith("stored: 1 part(s) not yet acknowledged")
        with urllib.request.urlopen(f"http://127.0.0.1:{control}/status", timeout=10) as r:
            assert json.loads(r.read())["stored"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
