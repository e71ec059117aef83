"""Prometheus metrics: one registry per application (tests run many apps in one process).

Three sources:

- HTTP requests (every route) and USSD requests with their latency, counted by a middleware;
- the SMPP session's own counters (:class:`smpp.stats.SessionStats`), read at scrape time
  by a custom collector, so ``smpp/`` knows nothing of Prometheus;
- the database, read at scrape time with cheap queries: queue depth (partial indexes on
  queued rows), receipts by state (an index range over the ids added since the last scrape),
  suppressed deliveries of live campaigns by reason, receipts waiting unmatched and each
  SMSC's id format. Database figures are kept for
  ``DB_REFRESH`` so a scraper storm does not become a query storm.

Rates (TPS) are Prometheus' job: counters here, ``rate()`` there; the configured TPS is a
gauge to compare with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from dispatcher.kernel.sql import SqlFile
from dispatcher.web.auth import public
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS, Handler
from smpp.session import Session
from smpp.stats import SessionState

DB_REFRESH = 5.0  # seconds a database snapshot is reused
DB_TIMEOUT = 3.0  # seconds the database figures may take before a scrape goes without them
USSD_PATH = "/gateway/ussd"
log = structlog.get_logger(__name__)
USSD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_CHILDREN = 1000  # labelled children the middleware remembers


class MetricsSQL(SqlFile, domain="metrics"):
    queue_depth: str
    receipts_since: str
    suppressed_live: str
    receipts_unmatched: str
    receipts_address_mismatch: str
    id_formats: str


@dataclass
class DbSnapshot:
    """Figures read from the database at one scrape."""

    queued_deliveries: int = 0
    queued_service: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    taken_at: float = float("-inf")
    unmatched: dict[str, int] = field(default_factory=dict)
    """smsc -> receipts that name no known submit yet."""
    id_formats: list[tuple[str, str, str]] = field(default_factory=list)
    """(smsc, setting, detected or '') of every SMSC."""
    address_mismatch: dict[str, int] = field(default_factory=dict)
    """smsc -> receipts whose source address is not their message's number (issue 13)."""


class Metrics:
    """The registry of one app and the metrics the middleware updates."""

    def __init__(self, refresh_interval: float = DB_REFRESH) -> None:
        self.refresh_interval = refresh_interval
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "smartd_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.ussd_requests = Counter(
            "smartd_ussd_requests",
            "USSD requests from the gateway by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.ussd_latency = Histogram(
            "smartd_ussd_request_seconds",
            "USSD request latency (committed before the reply)",
            buckets=USSD_BUCKETS,
            registry=self.registry,
        )
        #: The labelled children the middleware counts into, by their labels (issue 16:
        #: ``labels()`` validates and locks on every call); at most ``_CHILDREN`` of them.
        self._http_children: dict[tuple[str, str, int], Any] = {}
        self._ussd_children: dict[int, Any] = {}
        self.db = DbSnapshot()
        self.database_up = True
        self.receipts: dict[str, int] = {}
        self.receipts_after: int | None = None  # receipts.id high-water mark
        self.collector: ServiceCollector | None = None

    def count_http(self, route: str, method: str, status: int) -> None:
        """One HTTP request counted by route template, method and final status."""
        key = (route, method, status)
        child = self._http_children.get(key)
        if child is None:
            child = self.http_requests.labels(route, method, str(status))
            if len(self._http_children) < _CHILDREN:  # methods are the client's to invent
                self._http_children[key] = child
        child.inc()

    def count_ussd(self, status: int, elapsed: float) -> None:
        """One USSD request counted by status, and its latency."""
        child = self._ussd_children.get(status)
        if child is None:
            child = self._ussd_children[status] = self.ussd_requests.labels(str(status))
        child.inc()
        self.ussd_latency.observe(elapsed)

    async def refresh(self, pool: asyncpg.Pool, now: float) -> None:
        """Re-read the database figures when the snapshot is older than the interval."""
        if now - self.db.taken_at < self.refresh_interval:
            return
        async with pool.acquire() as conn:
            depth = await conn.fetchrow(MetricsSQL.queue_depth)
            rows = await conn.fetch(MetricsSQL.receipts_since, self.receipts_after)
            suppressed = await conn.fetch(MetricsSQL.suppressed_live)
            unmatched = await conn.fetch(MetricsSQL.receipts_unmatched)
            formats = await conn.fetch(MetricsSQL.id_formats)
            mismatch = await conn.fetch(MetricsSQL.receipts_address_mismatch)
        self.db = DbSnapshot(
            depth["deliveries"],
            depth["service_messages"],
            {r["reason"]: r["n"] for r in suppressed},
            now,
            {r["smsc"]: r["n"] for r in unmatched},
            [(r["smsc"], r["setting"], r["detected"]) for r in formats],
            {r["smsc"]: r["n"] for r in mismatch},
        )
        self._count_receipts(rows)

    def _count_receipts(self, rows: list[asyncpg.Record]) -> None:
        first = self.receipts_after is None  # counts start at this process's first scrape
        for row in rows:
            self.receipts_after = max(self.receipts_after or 0, row["last_id"])
            if not first and row["state"] is not None:
                self.receipts[row["state"]] = self.receipts.get(row["state"], 0) + row["n"]
        if self.receipts_after is None:
            self.receipts_after = 0


METRICS = web.AppKey("metrics", Metrics)


class ServiceCollector(Collector):
    """SMPP counters, session state, window and settings, database figures: at scrape time."""

    def __init__(
        self,
        metrics: Metrics,
        app: web.Application,
        session: Callable[[], Session | None],
    ) -> None:
        self._metrics = metrics
        self._app = app
        self._session = session

    def collect(self) -> Iterator[Metric]:
        yield from self._settings_metrics()
        yield from self._session_metrics(self._session())
        yield from self._db_metrics()

    def _settings_metrics(self) -> Iterator[Metric]:
        settings, now = self._app[SETTINGS], self._app[CLOCK].now()
        yield GaugeMetricFamily(
            "smartd_configured_tps",
            "Configured submits/s: the account's grant (SMARTD_SMPP_ACCOUNT_TPS), else per bind",
            value=settings.smpp_account_tps or settings.smpp_tps,
        )
        yield GaugeMetricFamily(
            "smartd_send_window_open",
            "1 while the partner-message window is open (R8, program time zone)",
            value=float(settings.calendar.is_open(now)),
        )

    def _session_metrics(self, session: Session | None) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "smartd_smpp_session_state", "1 for the SMPP session's current state", labels=["state"]
        )
        current = session.state if session is not None else None
        for s in SessionState:
            state.add_metric([s.value], 1.0 if s is current else 0.0)
        yield state
        if session is None:
            return
        stats = session.stats
        yield GaugeMetricFamily("smartd_smpp_in_flight", "Outstanding submits", session.in_flight)
        if session.tps is not None:
            yield GaugeMetricFamily(
                "smartd_smpp_share_tps",
                "Submits/s this replica sends at now (its share of SMARTD_SMPP_ACCOUNT_TPS)",
                session.tps,
            )
        yield GaugeMetricFamily(
            "smartd_smpp_inbound_backlog",
            "deliver_sm queued or being handled, not yet answered",
            session.inbound_backlog,
        )
        for name, doc, value in (
            ("smartd_smpp_submits", "submit_sm written to the SMSC", stats.submitted),
            ("smartd_smpp_throttles", "Throttled submit responses", stats.throttled),
            ("smartd_smpp_timeouts", "Submits with no response in time", stats.timeouts),
            ("smartd_smpp_binds", "Successful binds", stats.binds),
            ("smartd_smpp_bind_failures", "Failed binds", stats.bind_failures),
            ("smartd_smpp_disconnects", "Connections lost", stats.disconnects),
            ("smartd_smpp_receipts", "Delivery receipts received", stats.receipts),
            ("smartd_smpp_mo_messages", "MO messages received", stats.mo_messages),
            ("smartd_smpp_ussd_indications", "USSD indications over SMPP", stats.ussd_indications),
            ("smartd_smpp_malformed_pdus", "Malformed PDUs received", stats.malformed_pdus),
            (
                "smartd_smpp_reader_pauses",
                "Times reading from the SMSC stopped: inbound backlog full",
                stats.reader_pauses,
            ),
            (
                "smartd_smpp_inbound_refused",
                "deliver_sm refused with a temporary error: inbound backlog full",
                stats.inbound_refused,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        outcomes = CounterMetricFamily(
            "smartd_smpp_responses", "submit_sm responses by outcome", labels=["outcome"]
        )
        outcomes.add_metric(["accepted"], stats.accepted)
        outcomes.add_metric(["temporary_failure"], stats.temporary_failures)
        outcomes.add_metric(["permanent_failure"], stats.permanent_failures)
        outcomes.add_metric(["unknown"], stats.unknown)
        yield outcomes
        statuses = CounterMetricFamily(
            "smartd_smpp_responses_by_status",
            "submit_sm responses by command_status",
            labels=["status"],
        )
        for status, n in sorted(stats.responses_by_status.items()):
            statuses.add_metric([f"0x{status:08x}"], n)
        yield statuses

    def _db_metrics(self) -> Iterator[Metric]:
        db = self._metrics.db
        yield GaugeMetricFamily(
            "smartd_database_up",
            "1 when the last scrape could read the database figures",
            value=float(self._metrics.database_up),
        )
        depth = GaugeMetricFamily(
            "smartd_queue_depth", "Messages queued to send (all replicas)", labels=["queue"]
        )
        depth.add_metric(["deliveries"], db.queued_deliveries)
        depth.add_metric(["service_messages"], db.queued_service)
        yield depth
        receipts = CounterMetricFamily(
            "smartd_receipts",
            "Delivery receipts recorded by any replica since this process's first scrape "
            "(cluster-wide: take max, not sum, across replicas)",
            labels=["state"],
        )
        for state, n in sorted(self._metrics.receipts.items()):
            receipts.add_metric([state], n)
        yield receipts
        suppressed = GaugeMetricFamily(
            "smartd_suppressed_deliveries",
            "Suppressed deliveries of running and paused campaigns by reason",
            labels=["reason"],
        )
        for reason, n in sorted(db.suppressed.items()):
            suppressed.add_metric([reason], n)
        yield suppressed
        yield from _receipt_matching_metrics(db)


def _per_smsc(name: str, documentation: str, counts: dict[str, int]) -> Metric:
    """A gauge with one sample per SMSC."""
    gauge = GaugeMetricFamily(name, documentation, labels=["smsc"])
    for smsc, n in sorted(counts.items()):
        gauge.add_metric([smsc], n)
    return gauge


def _receipt_matching_metrics(db: DbSnapshot) -> Iterator[Metric]:
    """Receipts that match no submit, and how each SMSC's ids are read (issue 11)."""
    yield _per_smsc(
        "smartd_receipts_unmatched",
        "Receipts naming no known submit yet, waiting to be matched (given up after 3 days); "
        "a steady rise means the SMSC writes ids in a form SMARTD_SMPP_ID_FORMAT does not read",
        db.unmatched,
    )
    yield _per_smsc(
        "smartd_receipts_address_mismatch",
        "Receipts whose source address (normalised) is not the number their message went to; "
        "refused when SMARTD_RECEIPT_ADDRESS_CHECK=refuse, else applied (issue 13)",
        db.address_mismatch,
    )
    formats = GaugeMetricFamily(
        "smartd_smsc_id_format",
        "1 for the id format receipts of each SMSC are read with: its setting and, under auto, "
        "what was detected (empty until detection has seen enough receipts)",
        labels=["smsc", "setting", "detected"],
    )
    for smsc, setting, detected in db.id_formats:
        formats.add_metric([smsc, setting, detected], 1.0)
    yield formats


def install_metrics(app: web.Application, session: Callable[[], Session | None]) -> Metrics:
    """Create the app's registry and collector; ``session`` finds the SMPP session, if any."""
    metrics = Metrics()
    metrics.collector = ServiceCollector(metrics, app, session)
    metrics.registry.register(metrics.collector)
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics_endpoint)
    return metrics


@public
async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text exposition of this process's metrics."""
    metrics = request.app[METRICS]
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            await metrics.refresh(request.app[DATABASE].pool, time.monotonic())
        metrics.database_up = True
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # The SMPP and HTTP figures matter most while the database is in trouble: serve them,
        # with the last database snapshot and smartd_database_up 0.
        log.warning("metrics: database figures unavailable", error=repr(exc))
        metrics.database_up = False
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every request by route template and final status; times USSD requests."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        _observe(request, status, time.perf_counter() - started)


def _observe(request: web.Request, status: int, elapsed: float) -> None:
    metrics = request.app.get(METRICS)
    if metrics is None:
        return
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics.count_http(route, request.method, status)
    if route == USSD_PATH and request.method == "POST":
        metrics.count_ussd(status, elapsed)
