"""Hostile requests over real HTTP: every route of the app, every method, each hostile class in
every place it can go (path parameters, query, ``Authorization``, cookies, JSON and form
bodies). Never a 5xx, never a dropped connection; a 4xx is the JSON error shape on the API
and an HTML page in the console."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote

from aiohttp import web

from dispatcher.console.sessions import COOKIE, LOGIN_COOKIE, SessionRepository
from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from dispatcher.tokens import TokenRepository
from tests.web_helpers import running_api

MSISDN = "77011234567"
PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")

#: Path parameter values: past int64, exactly 2**63, a non-ASCII digit, a superscript digit,
#: percent-encoded invalid UTF-8, NUL and CR LF.
PATH_VALUES = (
    "99999999999999999999",
    "9223372036854775808",
    "%D9%A3",  # ٣, ARABIC-INDIC DIGIT THREE
    "%C2%B2",  # ², a digit to str.isdigit() but not to int()
    "%FF%FE",
    "%00",
    "%0D%0ASet-Cookie:%20x=1",
)
#: Query values, each sent under every query name the app reads.
QUERY_NAMES = (
    "before",
    "limit",
    "state",
    "next",
    "lang",
    "msisdn",
    "done",
    "accepted",
    "rejected",
    "duplicates",
)
QUERY_VALUES = (
    "%D9%A3",
    "%C2%B2",
    "99999999999999999999",
    "-99999999999999999999",
    "%FF",
    "%00",
    "/console/%0D%0ASet-Cookie:%20x=1",
    "/console/campaigns%00",
    "/console/%1B%5B2J",
)
YEAR_ONE = "0001-01-01T00:00:00+05:00"
YEAR_MAX = "9999-12-31T23:59:59-14:00"
#: A JSON object that is valid enough to reach the date handling of events and campaigns.
DATED = {
    "type": "tariff_change",
    "msisdn": MSISDN,
    "tariff": "Smart",
    "session_id": "s1",
    "input": "*111#",
    "name": "hostile",
    "kind": "info",
    "texts": {"kk": "Сәлем", "ru": "Привет"},
}
JSON_BODIES = (
    b"[" * 200_000,
    b"{" + b'"a":{' * 50_000,
    json.dumps({**DATED, "occurred_at": YEAR_ONE, "start_at": YEAR_ONE}).encode(),
    json.dumps({**DATED, "occurred_at": YEAR_MAX, "end_at": YEAR_MAX}).encode(),
    json.dumps({**DATED, "start_at": "0001-01-01T00:00:00-00:01"}).encode(),
    b'{"texts": {"ru": "\xff\xfe"}}',
)
FORM_DATES = ("0001-01-01T00:00", "9999-12-31T23:59", "0001-01-01T00:00:00-00:01")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Attempt:
    """One hostile request: the target and the raw header and body bytes."""

    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    what: str = ""


async def send(port: int, attempt: Attempt) -> Answer:
    """One HTTP/1.1 request written byte for byte (so headers may be invalid UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [
        f"{attempt.method} {attempt.target} HTTP/1.1".encode("latin-1"),
        f"Host: 127.0.0.1:{port}".encode(),
        b"Connection: close",
        b"Content-Length: " + str(len(attempt.body)).encode(),
    ]
    head += [name + b": " + value for name, value in attempt.headers]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + attempt.body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    assert raw, f"connection dropped without an answer: {attempt.what}"
    return _parse(raw)


def _parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return Answer(status, headers, body)


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)


def check_answer(answer: Answer, attempt: Attempt, console: bool) -> None:
    """No 5xx; a 4xx is an HTML page in the console and the JSON error shape elsewhere."""
    context = f"{attempt.what}: {attempt.method} {attempt.target[:120]} -> {answer.status}"
    if answer.status == 503 and attempt.target.startswith("/readyz/engine"):
        return  # no engine runs in this app: not ready is the truth, not an error
    assert answer.status < 500, context + " " + answer.body[:300].decode("utf-8", "replace")
    if answer.status < 400 or attempt.method == "HEAD":
        return
    content_type = answer.headers.get("content-type", "")
    if console and not content_type.startswith("application/json"):
        assert content_type.startswith("text/html"), context
        return
    if console and "/preview" not in attempt.target:
        raise AssertionError(f"{context}: a console page answered JSON")
    try:
        error = json.loads(answer.body)["error"]
    except (ValueError, KeyError):
        raise AssertionError(f"{context}: not the error shape: {answer.body[:200]!r}") from None
    assert set(error) == {"code", "message", "details"}, context
    assert isinstance(error["code"], str) and isinstance(error["message"], str), context


def route_templates(app: web.Application) -> list[tuple[str, str]]:
    """(METHOD, path template) of every route the app's router holds."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        found.append((route.method, resource.canonical))
    return sorted(set(found))


def _console(template: str) -> bool:
    return template == "/console" or template.startswith("/console/")


def fill(template: str, value: str) -> str:
    return PARAM.sub(value, template)


def sample_path(template: str, campaign: int) -> str:
    return fill(template.replace("{id}", str(campaign)).replace("{name}", "console.css"), MSISDN)


SESSION, CSRF = b"@@session@@", b"@@csrf@@"  # replaced by a live session's per request


@dataclass(frozen=True)
class Credentials:
    """The admin token; the console session and its CSRF token are placeholders."""

    token: str
    login_csrf: str = "form-token-of-the-sign-in-page"

    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        cookies = COOKIE.encode() + b"=" + SESSION + f"; {LOGIN_COOKIE}={self.login_csrf}".encode()
        return (
            (b"Authorization", b"Bearer " + self.token.encode()),
            (b"Cookie", cookies),
            (b"X-CSRF-Token", CSRF),
        )

    def form(self, fields: dict[str, str]) -> bytes:
        csrf = self.login_csrf.encode() if "token" in fields else CSRF
        rest = "&".join(f"{k}={quote(v)}" for k, v in fields.items()).encode()
        return b"csrf=" + csrf + b"&" + rest

    def multipart(self, fields: dict[str, str]) -> bytes:
        """The same fields as ``multipart/form-data`` (``csrf`` first, as the console wants)."""
        parts = [b'Content-Disposition: form-data; name="csrf"\r\n\r\n' + CSRF]
        for name, value in fields.items():
            head = f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            parts.append(head + value.encode())
        body = b"".join(b"--" + BOUNDARY + b"\r\n" + part + b"\r\n" for part in parts)
        return body + b"--" + BOUNDARY + b"--\r\n"


CONCURRENCY = 8
FORM = (b"Content-Type", b"application/x-www-form-urlencoded")
BOUNDARY = b"hostile-boundary"
MULTIPART = (b"Content-Type", b"multipart/form-data; boundary=" + BOUNDARY)
JSON = (b"Content-Type", b"application/json")


def attempts(method: str, template: str, campaign: int, creds: Credentials) -> Iterator[Attempt]:
    """Each hostile class in each place it can go, for one route."""
    console = _console(template)
    good = creds.headers()
    path = sample_path(template, campaign)
    if PARAM.search(template):
        for value in PATH_VALUES:
            yield Attempt(method, fill(template, value), good, what=f"path {value}")
    for name in QUERY_NAMES:
        for value in QUERY_VALUES:
            yield Attempt(method, f"{path}?{name}={value}", good, what=f"query {name}={value}")
    bad_bytes = b"\xff\xfe\xc3\x28\x80"
    hostile_headers = (
        ((b"Authorization", b"Bearer " + bad_bytes),),
        ((b"Cookie", COOKIE.encode() + b"=" + bad_bytes),),
        ((b"Cookie", LOGIN_COOKIE.encode() + b"=" + bad_bytes),),
        ((b"Origin", b"http://" + bad_bytes),),
        ((b"X-CSRF-Token", bad_bytes),),
        ((b"X-Forwarded-Proto", bad_bytes), (b"X-Forwarded-For", bad_bytes)),
    )
    for extra in hostile_headers:
        # The hostile header replaces the good one of the same name.
        names = {name.lower() for name, _ in extra}
        kept = tuple(h for h in good if h[0].lower() not in names)
        yield Attempt(method, path, kept + extra, what=f"header {extra[0][0]!r}")
    if method != "POST":
        return
    for body in JSON_BODIES:
        yield Attempt(method, path, (*good, JSON), body, what=f"json {body[:40]!r}")
    if console:
        yield from _form_attempts(method, path, good, creds)


def _form_attempts(
    method: str, path: str, good: tuple[tuple[bytes, bytes], ...], creds: Credentials
) -> Iterator[Attempt]:
    for value in QUERY_VALUES:
        fields = {"next": unquote(value), "token": creds.token}
        yield Attempt(method, path, (*good, FORM), creds.form(fields), what=f"form next={value}")
    for date in FORM_DATES:
        fields = {
            "name": "hostile",
            "kind": "info",
            "text_kk": "Сәлем",
            "text_ru": "Привет",
            "start_at": date,
            "end_at": date,
        }
        what = f"form date {date}"
        yield Attempt(method, path, (*good, FORM), creds.form(fields), what=what)
        yield Attempt(method, path, (*good, MULTIPART), creds.multipart(fields), what=what)


async def test_no_hostile_request_is_a_server_error_on_any_route(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Every route × method × hostile class (path, query, headers, cookies, JSON, forms):
    a 4xx in the route's error shape or a success, never a 5xx or a dropped connection."""
    async with running_api(settings, clock, database) as api:
        admin = api.tokens[Role.ADMIN]
        info = await TokenRepository(database.pool).authenticate(admin, clock.now())
        assert info is not None
        sessions = SessionRepository(database.pool)
        created = await api.client.post(
            "/api/v1/campaigns", json=DATED, headers=api.auth(Role.ADMIN)
        )
        campaign = (await created.json())["id"]
        port = api.client.port
        assert port is not None
        routes = route_templates(api.client.server.app)
        assert len(routes) >= 40
        tried, problems = 0, []
        for method, template in routes:
            session_id, user = await sessions.open(info, clock.now())
            batch = [
                _with_session(attempt, session_id, user.csrf)
                for attempt in attempts(method, template, campaign, Credentials(admin))
            ]
            # Uploads go one at a time: the upload gate admits only a few at once and answers
            # the rest 503 uploads_busy before reading them (tests/test_tenancy.py), and each
            # hostile upload must reach its handler.
            step = 1 if template.endswith(("/audience", "/import")) else CONCURRENCY
            for start in range(0, len(batch), step):
                chunk = batch[start : start + step]
                answers = await asyncio.gather(
                    *(send(port, a) for a in chunk), return_exceptions=True
                )
                for attempt, answer in zip(chunk, answers, strict=True):
                    try:
                        if isinstance(answer, BaseException):
                            raise AssertionError(f"{attempt.what}: {answer!r}")
                        check_answer(answer, attempt, console=_console(template))
                    except AssertionError as exc:
                        problems.append(str(exc).splitlines()[0])
            tried += len(batch)
        assert tried > 1000
        assert not problems, f"{len(problems)} failures:\n" + "\n".join(problems[:60])


def _with_session(attempt: Attempt, session: str, csrf: str) -> Attempt:
    """The attempt with the placeholders replaced by a live session's id and CSRF token."""

    def live(data: bytes) -> bytes:
        return data.replace(SESSION, session.encode()).replace(CSRF, csrf.encode())

    headers = tuple((name, live(value)) for name, value in attempt.headers)
    return Attempt(attempt.method, attempt.target, headers, live(attempt.body), attempt.what)


async def test_each_observed_hostile_request_is_refused_in_the_routes_shape(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """The issue's observed 500s one by one: each is now its 4xx, in JSON or an HTML page."""
    async with running_api(settings, clock, database) as api:
        port, admin = api.client.port, api.tokens[Role.ADMIN]
        assert port is not None
        auth = ((b"Authorization", b"Bearer " + admin.encode()),)
        cases = [
            (Attempt("GET", "/api/v1/whoami", ((b"Authorization", b"Bearer \xff\xfe"),)), 401),
            (Attempt("GET", "/console/campaigns", ((b"Cookie", b"smartd_console=\xff"),)), 303),
            (Attempt("POST", "/gateway/ussd", (*auth, JSON), b"[" * 200_000), 400),
            (Attempt("GET", "/console/campaigns/99999999999999999999"), 303),
            (Attempt("GET", "/api/v1/campaigns/99999999999999999999", auth), 404),
            (Attempt("GET", "/api/v1/campaigns?before=%D9%A3", auth), 400),
            (Attempt("GET", "/api/v1/campaigns?before=99999999999999999999", auth), 400),
        ]
        dated = json.dumps({**DATED, "occurred_at": YEAR_ONE}).encode()
        cases.append((Attempt("POST", "/gateway/events", (*auth, JSON), dated), 400))
        dated = json.dumps({**DATED, "start_at": YEAR_ONE}).encode()
        cases.append((Attempt("POST", "/api/v1/campaigns", (*auth, JSON), dated), 400))
        for attempt, status in cases:
            answer = await send(port, attempt)
            assert answer.status == status, (attempt, answer)
            check_answer(answer, attempt, console=_console(attempt.target))


async def test_console_pages_refuse_hostile_ids_and_pages_with_html(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Signed in: an id past int64 is a 404 page, a non-ASCII or huge ``before`` is ignored."""
    async with running_api(settings, clock, database) as api:
        port = api.client.port
        assert port is not None
        info = await TokenRepository(database.pool).authenticate(
            api.tokens[Role.ADMIN], clock.now()
        )
        assert info is not None
        session_id, _ = await SessionRepository(database.pool).open(info, clock.now())
        cookie = ((b"Cookie", f"{COOKIE}={session_id}".encode()),)
        for target, status in (
            ("/console/campaigns/99999999999999999999", 404),
            ("/console/campaigns/9223372036854775808", 404),
            ("/console/campaigns?before=%C2%B2", 200),
            ("/console/campaigns?before=99999999999999999999", 200),
            ("/console/campaigns/1?accepted=%C2%B2", 404),
        ):
            answer = await send(port, Attempt("GET", target, cookie))
            assert answer.status == status, (target, answer.status)
            assert answer.headers["content-type"].startswith("text/html")


async def test_sign_in_with_control_characters_in_next_answers_and_goes_home(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A ``next`` with CR LF, NUL or ESC: the sign-in answers 303 to the campaigns list (the
    connection used to drop after the session row was written)."""
    async with running_api(settings, clock, database) as api:
        port = api.client.port
        assert port is not None
        creds = Credentials(api.tokens[Role.ADMIN])
        cookie = ((b"Cookie", f"{LOGIN_COOKIE}={creds.login_csrf}".encode()),)
        for value in ("/console/\r\nSet-Cookie: x=1", "/console/campaigns\x00", "/console/\x1b[2J"):
            body = creds.form({"next": value, "token": creds.token})
            answer = await send(port, Attempt("POST", "/console/login", (*cookie, FORM), body))
            assert answer.status == 303
            assert answer.headers["location"] == "/console/campaigns"


async def test_malformed_http_is_a_400_logged_at_info_without_a_traceback(
    settings: Settings, clock: ManualClock, database: Database, json_logging: io.StringIO
) -> None:
    """A control character in a header value: aiohttp's parser answers 400 before the app;
    its log line is info with the reason, not an error-level traceback."""
    stream = json_logging
    async with running_api(settings, clock, database) as api:
        port = api.client.port
        assert port is not None
        header = ((b"Authorization", b"Bearer \x01\x7f\xff"),)
        answer = await send(port, Attempt("GET", "/api/v1/whoami", header))
        assert answer.status == 400
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = [line for line in lines if line.get("logger") == "aiohttp.server"]
    assert refused and all(line["level"] == "info" for line in refused)
    assert all("exception" not in line and "refused:" in line["event"] for line in refused)
