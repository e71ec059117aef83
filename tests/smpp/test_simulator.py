"""The simulator's own knobs: command line, id styles, window limit, latency."""

from __future__ import annotations

import asyncio

from smpp.constants import Status
from smpp.outcome import Accepted, TemporaryFailure
from smpp.simulator import SimulatorOptions, build_parser, format_id, options_from_args
from tests.smpp.conftest import DEST, SOURCE, SessionFactory, part


def test_command_line_maps_to_options() -> None:
    """smsc-sim flags become SimulatorOptions fields."""
    args = build_parser().parse_args(
        [
            "--port",
            "0",
            "--credential",
            "esme:pw",
            "--tps",
            "50",
            "--latency",
            "0.01",
            "--receipt-mix",
            "DELIVRD=8,UNDELIV=1,EXPIRED=1",
            "--response-ids",
            "hex",
        ]
    )
    options = SimulatorOptions(**options_from_args(args))  # type: ignore[arg-type]
    assert options.credentials == {"esme": "pw"} and options.tps_limit == 50.0
    assert options.receipt_mix == {"DELIVRD": 8.0, "UNDELIV": 1.0, "EXPIRED": 1.0}
    assert options.response_id_style == "hex" and options.receipts and options.validate
    fast = options_from_args(build_parser().parse_args(["--fast"]))
    assert fast["receipts"] is False and fast["record"] is False and fast["validate"] is False


def test_id_styles() -> None:
    """Message ids are written in the configured style."""
    assert [format_id(255, s) for s in ("dec", "hex", "HEX", "hex0")] == [
        "255",
        "ff",
        "FF",
        "00000000ff",
    ]


async def test_window_limit_throttles(sim, bound_session: SessionFactory) -> None:  # type: ignore[no-untyped-def]
    """Beyond the simulator's window, submits are answered ESME_RTHROTTLED."""
    sim.options.max_window, sim.options.response_latency = 2, 0.05
    session = await bound_session(window=5)
    outcomes = await asyncio.gather(
        *(session.submit(part(), source=SOURCE, destination=DEST) for _ in range(5))
    )
    assert sum(isinstance(o, Accepted) for o in outcomes) == 2
    assert all(
        o.status == Status.ESME_RTHROTTLED for o in outcomes if isinstance(o, TemporaryFailure)
    )
