"""An SMSC simulator for the demo, the tests and the benchmarks.

It accepts binds (optionally checking credentials: a wrong password gets
ESME_RINVPASWD), answers submit_sm with a TPS limit (ESME_RTHROTTLED beyond it), a window,
a response latency, and sends delivery receipts (DELIVRD / UNDELIV / EXPIRED in a
configurable mix, after a delay, with both the TLVs and the text form, ids in a
configurable style, the response's and the receipt's apart). Faults on demand: a restart
that numbers ids from 1 again, disconnect after N PDUs, stall (answer nothing),
duplicate receipts, receipt before the submit_sm_resp, held responses, unbind, raw
frames. It injects MO messages (concatenated too) and USSD indications, and records
every PDU it received in :attr:`SmscSimulator.received` for tests to read.

Run it alone: ``python -m smpp.simulator --port 2775`` or ``python -m smpp sim``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import structlog

from smpp.config import Address
from smpp.constants import CommandId, Status, Tag
from smpp.pdu import (
    PduError,
    ShortMessage,
    decode_short_message,
    encode_short_message_body,
)
from smpp.ratelimit import TokenBucket
from smpp.receipts import format_receipt_date, receipt_for
from smpp.sim_connection import Received, SimConnection
from smpp.sim_store import Delivery, Kind, Outbox
from smpp.submit import build_submit
from smpp.text import ConcatMode, Part, encode_message

log = structlog.get_logger("smpp.simulator")


def format_id(number: int, style: str) -> str:
    """A message id in one of the styles SMSCs use: ``dec``, ``hex``, ``HEX``, ``hex0``
    (zero-padded to 10 hex digits)."""
    if style == "hex":
        return f"{number:x}"
    if style == "HEX":
        return f"{number:X}"
    if style == "hex0":
        return f"{number:010x}"
    return str(number)


#: (response style, receipt style) of each id format an SMSC may have (smpp.IdFormat values).
ID_FORMAT_STYLES = {
    "as-is": ("dec", "dec"),
    "hex-response-decimal-receipt": ("hex", "dec"),
    "decimal-response-hex-receipt": ("dec", "hex"),
}


@dataclass(slots=True)
class SimulatorOptions:
    """Behaviour of the simulator; tests may change fields while it runs."""

    system_id: str = "SIMSMSC"
    credentials: dict[str, str] | None = None
    """system_id -> password; None accepts any bind."""
    tps_limit: float | None = None
    """Submits/s the account may send across all its binds (one bucket for the simulator:
    every bind draws on it); beyond it, ESME_RTHROTTLED."""
    tps_burst: int | None = None
    """Submits accepted back to back before the TPS limit bites; default a tenth of a
    second's worth (SMSCs count TPS over a window, not per 1/TPS-second slot)."""
    max_window: int | None = None
    response_latency: float = 0.0
    receipts: bool = True
    receipt_delay: float = 0.0
    receipt_mix: dict[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    response_id_style: str = "dec"
    receipt_id_style: str = "dec"
    """Styles of :func:`format_id`: different ones make the id mismatch of some SMSCs (see
    ID_FORMAT_STYLES)."""
    renumber_on_restart: bool = True
    """:meth:`SmscSimulator.restart` numbers message ids from 1 again, as many SMSCs do."""
    disconnect_after: int | None = None
    stall: bool = False
    hold_responses: bool = False
    duplicate_receipts: bool = False
    receipt_before_response: bool = False
    submit_status: int = Status.ESME_ROK
    record: bool = True
    validate: bool = True
    """Parse every submit_sm (a malformed one gets an error status); off, only when
    receipts are off too, for benchmarks."""
    seed: int | None = None
    store_and_forward: bool = True
    """Keep every receipt and MO until the ESME acknowledges it; send it again after a
    temporary error or a lost connection (see :mod:`smpp.sim_store`)."""
    redeliver_delay: float | None = None
    """Seconds before a deliver_sm answered with a temporary error is sent again on the
    same bind; None: only when a receiver binds again."""
    store_limit: int = 100_000
    """Unacknowledged deliver_sm kept at most (the oldest are discarded)."""
    receipt_zone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Almaty"))
    """The SMSC's local time, in which receipts write their dates (an SMSC in Kazakhstan:
    the service's default SMARTD_TIMEZONE reads them back)."""


class SmscSimulator:
    """The simulator server. ``await start()``, read ``port``, ``await stop()``."""

    def __init__(self, options: SimulatorOptions | None = None) -> None:
        self.options = options or SimulatorOptions()
        self.received: list[Received] = []
        self.total_received = 0
        self.accepted_by_second: collections.Counter[int] = collections.Counter()
        """submit_sm accepted in each whole second of the simulator's monotonic clock (the
        loop's time), across all binds: what an SMSC counts against an account's grant."""
        self.throttled_by_second: collections.Counter[int] = collections.Counter()
        """submit_sm refused ESME_RTHROTTLED (over the TPS limit or the window), likewise."""
        self.connections: list[SimConnection] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._numbers = 0
        self._next_id = 0
        self._held: list[tuple[SimConnection, int, int, str]] = []
        self._rng = random.Random(self.options.seed)
        self._bucket: TokenBucket | None = None
        self._pulse = asyncio.Event()
        self._watchers = 0
        self.wait_timeout = 5.0
        """Bound on every wait of the simulator's own API (answers from the ESME)."""
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """The simulator's wall clock: the dates in its receipts."""
        self.outbox = Outbox(
            lambda d: self._receiver(d.system_id),
            forward=lambda: self.options.store_and_forward,
            redeliver_delay=lambda: self.options.redeliver_delay,
            limit=lambda: self.options.store_limit,
            changed=self._wake,
        )
        self.pushed: list[Delivery] | None = None
        """Set to a list to keep every receipt and MO offered to the store (tests)."""

    # -- server ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the port (an ephemeral one for ``port=0``)."""
        self._server = await asyncio.get_running_loop().create_server(self._protocol, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def _protocol(self) -> SimConnection:
        self._numbers += 1
        conn = SimConnection(self, self._numbers)
        self.connections.append(conn)
        return conn

    def forget(self, conn: SimConnection) -> None:
        """Called when a connection closes."""
        if conn in self.connections:
            self.connections.remove(conn)
        self._wake()

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        self.drop_all()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> SmscSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def restart(self) -> None:
        """An SMSC restart: every connection dropped (no unbind) and, with
        ``renumber_on_restart``, message ids numbered from 1 again."""
        self.drop_all()
        if self.options.renumber_on_restart:
            self._next_id = 0

    def drop_all(self) -> None:
        """Abort every connection at once (no unbind): a network failure."""
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()

    # -- recording ------------------------------------------------------------------------

    def record(self, connection: int, command_id: int, status: int, seq: int, body: bytes) -> None:
        self.total_received += 1
        if self.options.record:
            self.received.append(Received(connection, command_id, status, seq, body))
        if self._watchers:
            self._wake()

    def _wake(self) -> None:
        pulse, self._pulse = self._pulse, asyncio.Event()
        pulse.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds (checked after every PDU and disconnect), at
        most :attr:`wait_timeout` seconds."""
        self._watchers += 1
        try:
            async with asyncio.timeout(self.wait_timeout):
                while not predicate():
                    await self._pulse.wait()
        finally:
            self._watchers -= 1

    def of_kind(self, command_id: int) -> list[Received]:
        """Recorded PDUs with this command_id."""
        return [r for r in self.received if r.command_id == command_id]

    def submits(self) -> list[tuple[int, ShortMessage]]:
        """(sequence, decoded body) of every recorded submit_sm."""
        return [
            (r.sequence, decode_short_message(r.body)) for r in self.of_kind(CommandId.SUBMIT_SM)
        ]

    @property
    def bound(self) -> list[SimConnection]:
        return [c for c in self.connections if c.bind_command is not None]

    def check_credentials(self, system_id: str, password: str) -> int:
        """ESME_ROK, ESME_RINVSYSID for an unknown system_id, ESME_RINVPASWD."""
        creds = self.options.credentials
        if creds is None:
            return Status.ESME_ROK
        if system_id not in creds:
            return Status.ESME_RINVSYSID
        return Status.ESME_ROK if creds[system_id] == password else Status.ESME_RINVPASWD

    # -- submit_sm ------------------------------------------------------------------------

    def _admit(self, conn: SimConnection) -> int:
        """The status a new submit_sm gets before it is even parsed."""
        options = self.options
        if not conn.can_send:
            return Status.ESME_RINVBNDSTS
        if options.max_window is not None and conn.outstanding >= options.max_window:
            return Status.ESME_RTHROTTLED
        if options.tps_limit is not None:
            if self._bucket is None or self._bucket.configured_rate != options.tps_limit:
                burst = options.tps_burst or max(1, int(options.tps_limit / 10))
                self._bucket = TokenBucket(options.tps_limit, burst=burst)
            if self._bucket.take(asyncio.get_running_loop().time()) > 0.0:
                return Status.ESME_RTHROTTLED
        return options.submit_status

    def on_submit(self, conn: SimConnection, sequence: int, body: bytes) -> None:
        """Answer one submit_sm according to the options."""
        options = self.options
        status = self._admit(conn)
        second = int(asyncio.get_running_loop().time())
        if status == Status.ESME_ROK:
            self.accepted_by_second[second] += 1
        elif status == Status.ESME_RTHROTTLED:
            self.throttled_by_second[second] += 1
        conn.outstanding += 1  # after the window check: this one is not yet outstanding
        sm: ShortMessage | None = None
        # without receipts nothing in the body matters: skip parsing (benchmark mode)
        if status == Status.ESME_ROK and (options.receipts or options.validate):
            try:
                sm = decode_short_message(body)
            except PduError as exc:
                status = exc.status
        if status != Status.ESME_ROK:
            conn.answer_submit(sequence, status, "")
            return
        self._next_id += 1
        number = self._next_id
        message_id = format_id(number, options.response_id_style)
        wants_receipt = sm is not None and sm.registered_delivery & 0x01 and options.receipts
        if wants_receipt and sm is not None:
            self._schedule_receipt(conn, sm, number)
        if options.hold_responses:
            self._held.append((conn, sequence, status, message_id))
        elif options.response_latency > 0:
            loop = asyncio.get_running_loop()
            loop.call_later(
                options.response_latency, conn.answer_submit, sequence, status, message_id
            )
        else:
            conn.answer_submit(sequence, status, message_id)

    def release_held(self) -> int:
        """Send every held submit_sm_resp; returns how many."""
        held, self._held = self._held, []
        for conn, sequence, status, message_id in held:
            conn.answer_submit(sequence, status, message_id)
        return len(held)

    # -- receipts -------------------------------------------------------------------------

    def _receiver(self, system_id: str | None = None) -> SimConnection | None:
        for conn in self.connections:
            if conn.can_receive and (system_id is None or conn.system_id == system_id):
                return conn
        return None

    def _schedule_receipt(self, conn: SimConnection, sm: ShortMessage, number: int) -> None:
        options = self.options
        stats = list(options.receipt_mix)
        stat = self._rng.choices(stats, weights=[options.receipt_mix[s] for s in stats])[0]
        submitted = self.clock()
        copies = 2 if options.duplicate_receipts else 1

        def send() -> None:
            body = self._receipt_body(sm, number, stat, submitted)
            for _ in range(copies):
                self._store(Kind.RECEIPT, body, conn.system_id)

        if options.receipt_before_response:
            send()
        else:
            asyncio.get_running_loop().call_later(options.receipt_delay, send)

    def _receipt_body(self, sm: ShortMessage, number: int, stat: str, submitted: datetime) -> bytes:
        receipt_id = format_id(number, self.options.receipt_id_style)
        dates = self._receipt_dates(submitted)
        return encode_short_message_body(receipt_for(sm, receipt_id, stat, **dates))

    # -- store-and-forward ----------------------------------------------------------------

    def _receipt_dates(self, submitted: datetime) -> dict[str, str]:
        """submit date (when the submit_sm was taken) and done date (now), in the
        simulator's zone."""
        zone = self.options.receipt_zone
        return {
            "submit_date": format_receipt_date(submitted, zone),
            "done_date": format_receipt_date(self.clock(), zone),
        }

    def _store(self, kind: Kind, body: bytes, system_id: str | None = None) -> Delivery:
        delivery = self.outbox.offer(kind, body, system_id)
        if self.pushed is not None:
            self.pushed.append(delivery)
        return delivery

    def on_bound(self, conn: SimConnection) -> None:
        """A bind succeeded: a receiver gets what is stored for it."""
        if conn.can_receive and (sent := self.outbox.on_bind(conn)):
            log.info("simulator: stored deliver_sm sent again", count=sent, connection=conn.number)

    def queue_mo(self, source: str, destination: str, text: str) -> list[Delivery]:
        """Store an MO message (in parts when long) and send it when a receiver is
        bound: now, or when one binds. Does not wait for the answers."""
        parts = encode_message(text, mode=ConcatMode.UDH, reference=self._rng.randrange(256))
        pdus = [self._mo_pdu(source, destination, p) for p in parts]
        return [self._store(Kind.MO, encode_short_message_body(sm)) for sm in pdus]

    # -- pushing to the ESME --------------------------------------------------------------

    async def deliver(self, sm: ShortMessage) -> int:
        """Send one deliver_sm to a receiving bind; return the ESME's command_status."""
        conn = self._receiver()
        if conn is None:
            raise RuntimeError("no receiver bound")
        async with asyncio.timeout(self.wait_timeout):
            status, _ = await conn.request(CommandId.DELIVER_SM, encode_short_message_body(sm))
        return status

    async def inject_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        mode: ConcatMode = ConcatMode.UDH,
        reference: int = 7,
        order: Sequence[int] | None = None,
    ) -> list[int]:
        """Send an MO message (split into parts when long) and return each part's
        deliver_sm_resp status. ``order`` permutes the parts (0-based indexes)."""
        parts = encode_message(text, mode=mode, reference=reference)
        indexes = list(order) if order is not None else list(range(len(parts)))
        pdus = [self._mo_pdu(source, destination, parts[i]) for i in indexes]
        if self._receiver() is None:
            raise RuntimeError("no receiver bound")
        stored = [self._store(Kind.MO, encode_short_message_body(sm)) for sm in pdus]
        answers = [d.first_answer for d in stored if d.first_answer is not None]
        async with asyncio.timeout(self.wait_timeout):
            return list(await asyncio.gather(*answers))

    @staticmethod
    def _mo_pdu(source: str, destination: str, part: Part) -> ShortMessage:
        # the same Part -> fields mapping as an ESME's submit_sm
        sm = build_submit(part, Address(source, 1, 1), Address(destination, 0, 0))
        sm.registered_delivery = 0
        return sm

    async def inject_ussd(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        service_op: int = 1,
        session_info: bytes | None = None,
    ) -> int:
        """Send a USSD indication (deliver_sm with ussd_service_op); return the status."""
        tlvs: dict[int, bytes] = {Tag.USSD_SERVICE_OP: bytes((service_op,))}
        if session_info is not None:
            tlvs[Tag.ITS_SESSION_INFO] = session_info
        sm = ShortMessage(
            source_addr=source,
            source_addr_ton=1,
            source_addr_npi=1,
            destination_addr=destination,
            service_type="USSD",
            short_message=text.encode("latin-1"),
            tlvs=tlvs,
        )
        return await self.deliver(sm)

    async def unbind_all(self) -> list[int]:
        """Send unbind on every bound connection; return the unbind_resp statuses."""
        futures = [c.request(CommandId.UNBIND) for c in self.bound]
        async with asyncio.timeout(self.wait_timeout):
            results = await asyncio.gather(*futures)
        for conn in self.bound:
            conn.close()
        return [status for status, _ in results]

    async def enquire_link(self) -> list[int]:
        """enquire_link on every bound connection; return the response statuses."""
        futures = [c.request(CommandId.ENQUIRE_LINK) for c in self.bound]
        async with asyncio.timeout(self.wait_timeout):
            return [status for status, _ in await asyncio.gather(*futures)]

    def send_raw(self, frame: bytes) -> None:
        """Write arbitrary bytes to every bound connection (garbage-frame tests)."""
        for conn in self.bound:
            conn.send(frame)


async def run_simulator(
    host: str = "127.0.0.1", port: int = 2775, control_port: int | None = None, **options: object
) -> None:
    """Run a simulator until cancelled. ``options`` are :class:`SimulatorOptions` fields;
    ``control_port``: serve the control endpoint (:mod:`smpp.sim_control`) on loopback."""
    from smpp.sim_control import start_control

    simulator = SmscSimulator(SimulatorOptions(**options))  # type: ignore[arg-type]
    actual = await simulator.start(host, port)
    print(f"SMSC simulator listening on {host}:{actual}", flush=True)
    control = None
    try:
        if control_port is not None:
            control, bound = await start_control(simulator, control_port)
            print(f"control endpoint on http://127.0.0.1:{bound} (POST /mo)", flush=True)
        await asyncio.Event().wait()
    finally:
        if control is not None:
            await control.cleanup()
        await simulator.stop()


def build_parser() -> argparse.ArgumentParser:
    """The ``smsc-sim`` command line; :func:`options_from_args` reads what it parses."""
    p = argparse.ArgumentParser(prog="smsc-sim", description="SMPP 3.4 SMSC simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2775)
    p.add_argument("--system-id", default="SIMSMSC")
    p.add_argument(
        "--credential",
        action="append",
        default=[],
        metavar="SYSTEM_ID:PASSWORD",
        help="accept only these binds (repeatable); default: accept any",
    )
    p.add_argument("--tps", type=float, default=None, help="throttle beyond this rate")
    p.add_argument("--window", type=int, default=None)
    p.add_argument("--latency", type=float, default=0.0, help="response latency, seconds")
    p.add_argument("--receipt-delay", type=float, default=0.0)
    p.add_argument("--receipt-mix", default="DELIVRD=1", help="e.g. DELIVRD=8,UNDELIV=1,EXPIRED=1")
    p.add_argument("--response-ids", default="dec", choices=["dec", "hex", "HEX", "hex0"])
    p.add_argument("--receipt-ids", default="dec", choices=["dec", "hex", "HEX", "hex0"])
    p.add_argument(
        "--id-format",
        choices=sorted(ID_FORMAT_STYLES),
        default=None,
        help="how ids differ between submit_sm_resp and receipts (sets both styles above)",
    )
    p.add_argument("--no-receipts", action="store_true")
    p.add_argument("--no-record", action="store_true", help="do not keep received PDUs")
    p.add_argument(
        "--fast",
        action="store_true",
        help="benchmark mode: no receipts, no recording, no submit_sm parsing",
    )
    _add_store_arguments(p)
    return p


def _add_store_arguments(p: argparse.ArgumentParser) -> None:
    """Store-and-forward, receipt dates and the control endpoint."""
    p.add_argument(
        "--control-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve POST /mo on 127.0.0.1:PORT (see `smsc-sim inject-mo --help`)",
    )
    p.add_argument(
        "--redeliver-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="resend a receipt or MO refused with a temporary error after this long "
        "(also whenever the ESME binds again); default 30",
    )
    p.add_argument(
        "--no-store", action="store_true", help="no store-and-forward: send each deliver_sm once"
    )
    p.add_argument(
        "--timezone",
        default="Asia/Almaty",
        type=_zone,
        help="local time of the dates in receipts (default Asia/Almaty)",
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise argparse.ArgumentTypeError(f"not a time zone: {name}") from exc


def options_from_args(args: argparse.Namespace) -> dict[str, object]:
    """SimulatorOptions fields from parsed command-line arguments."""
    creds = dict(c.split(":", 1) for c in args.credential) or None
    mix = {k: float(v) for k, v in (item.split("=") for item in args.receipt_mix.split(","))}
    styles = ID_FORMAT_STYLES.get(args.id_format or "", (args.response_ids, args.receipt_ids))
    return {
        "system_id": args.system_id,
        "credentials": creds,
        "tps_limit": args.tps,
        "max_window": args.window,
        "response_latency": args.latency,
        "receipt_delay": args.receipt_delay,
        "receipt_mix": mix,
        "response_id_style": styles[0],
        "receipt_id_style": styles[1],
        "receipts": not (args.no_receipts or args.fast),
        "record": not (args.no_record or args.fast),
        "validate": not args.fast,
        "store_and_forward": not args.no_store,
        "redeliver_delay": args.redeliver_after,
        "receipt_zone": args.timezone,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``smartd smsc-sim``); ``smsc-sim inject-mo ...`` is the
    control endpoint's client."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["inject-mo"]:
        from smpp.sim_control import inject_mo_main

        return inject_mo_main(argv[1:])
    args = build_parser().parse_args(argv)
    serving = run_simulator(
        args.host, args.port, control_port=args.control_port, **options_from_args(args)
    )
    with contextlib.suppress(KeyboardInterrupt):
        try:  # the loop smartd runs on (its SMARTD_EVENT_LOOP default), where it is built
            import uvloop
        except ImportError:
            asyncio.run(serving)
        else:
            uvloop.run(serving)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
