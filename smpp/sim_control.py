"""The SMSC simulator's control endpoint, on loopback only, and its command-line client: a
way to send an MO message by hand (a survey answer, STOP) to whatever ESME is bound.

``smartd smsc-sim --control-port 2776`` serves:

* ``POST /mo`` with ``{"from": "77011234567", "to": "5555", "text": "STOP"}``: the MO is
  stored and sent (store-and-forward: if no ESME is bound, or it does not acknowledge,
  it is sent again when one binds). Answers 200 with the ESME's deliver_sm_resp statuses
  once every part was answered, else 202 with ``null`` for the parts still stored.
* ``GET /status``: the binds and how many receipts and MO wait for an acknowledgement.

``smartd smsc-sim inject-mo --control-port 2776 --from 77011234567 STOP`` is the client.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from aiohttp import web

from smpp.constants import status_name
from smpp.simulator import SmscSimulator

SIMULATOR = web.AppKey("simulator", SmscSimulator)
MAX_BODY = 64 * 1024


def control_app(simulator: SmscSimulator) -> web.Application:
    """The control endpoint's routes over ``simulator``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SIMULATOR] = simulator
    app.router.add_post("/mo", post_mo)
    app.router.add_get("/status", get_status)
    return app


async def start_control(
    simulator: SmscSimulator, port: int, host: str = "127.0.0.1"
) -> tuple[web.AppRunner, int]:
    """Serve the control endpoint; returns the runner (``await runner.cleanup()``) and
    the port (an ephemeral one for 0). Refuses an address that is not loopback: it takes
    no credentials."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the control endpoint listens on loopback only, not {host}")
    runner = web.AppRunner(control_app(simulator), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def post_mo(request: web.Request) -> web.Response:
    """Store and send one MO message; wait (bounded) for the ESME's answers."""
    simulator = request.app[SIMULATOR]
    try:
        data = await request.json()
    except ValueError:
        return _error(400, "the body is not JSON")
    fields = data if isinstance(data, dict) else {}
    values = [fields.get(name) for name in ("from", "to", "text")]
    strings = [v for v in values if isinstance(v, str) and v]
    if len(strings) != len(values):
        return _error(400, 'expected {"from": "...", "to": "...", "text": "..."}, all non-empty')
    source, destination, text = strings
    deliveries = simulator.queue_mo(source, destination, text)
    answers = [d.first_answer for d in deliveries if d.attempts and d.first_answer]
    if answers:
        await asyncio.wait(answers, timeout=simulator.wait_timeout)
    statuses = [_answered(d.first_answer) for d in deliveries]
    body = {"parts": len(deliveries), "statuses": statuses}
    return web.json_response(body, status=200 if None not in statuses else 202)


def _answered(answer: asyncio.Future[int] | None) -> int | None:
    if answer is None or not answer.done() or answer.cancelled():
        return None
    return answer.result()


async def get_status(request: web.Request) -> web.Response:
    """The binds, and the deliver_sm stored until acknowledged."""
    simulator = request.app[SIMULATOR]
    binds = [
        {"connection": c.number, "system_id": c.system_id, "receives": c.can_receive}
        for c in simulator.bound
    ]
    outbox = simulator.outbox
    return web.json_response(
        {
            "binds": binds,
            "stored": len(outbox),
            "delivered": outbox.delivered,
            "refused": outbox.refused,
            "resent": outbox.resent,
        }
    )


# -- the client --------------------------------------------------------------------------


def inject_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smsc-sim inject-mo",
        description="send an MO message through a running simulator's control endpoint",
    )
    p.add_argument("--control-port", type=int, required=True, help="the simulator's")
    p.add_argument("--from", dest="source", required=True, metavar="MSISDN")
    p.add_argument("--to", dest="destination", default="5555", help="default: 5555")
    p.add_argument("text")
    return p


def inject_mo_main(argv: list[str]) -> int:
    """``smsc-sim inject-mo``: 0 when the simulator took the MO (answered or stored)."""
    args = inject_parser().parse_args(argv)
    payload = {"from": args.source, "to": args.destination, "text": args.text}
    try:
        status, body = _post(f"http://127.0.0.1:{args.control_port}/mo", payload)
    except OSError as exc:
        print(f"smsc-sim inject-mo: no simulator control endpoint: {exc}", file=sys.stderr)
        return 1
    if status >= 400:
        print(f"smsc-sim inject-mo: refused: {body.get('error', body)}", file=sys.stderr)
        return 1
    print(describe(body))
    return 0


def describe(body: dict[str, Any]) -> str:
    """One line for a person: what the ESME answered, or that the MO waits in the store."""
    statuses = body.get("statuses", [])
    if None in statuses:
        return (
            f"stored: {len(statuses)} part(s) not yet acknowledged by an ESME; "
            "they are sent again when one binds"
        )
    names = ", ".join(status_name(s) for s in statuses)
    return f"delivered: {len(statuses)} part(s), the ESME answered {names}"


def _post(url: str, payload: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
