"""The service's configuration: one typed, frozen object from ``SMARTD_*`` variables and TOML.

Precedence: environment variable, then the TOML file named by ``SMARTD_CONFIG`` (keys are the
field names, e.g. ``smpp_port = 2775``), then the default. Every field is parsed by a small
typed parser; a bad value raises :class:`ConfigError` naming the variable and what it expects,
so a misconfigured process stops at start-up with one line instead of failing mid-campaign.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import platformdirs

from dispatcher.kernel.clock import load_zone
from dispatcher.kernel.msisdn import MobilePolicy
from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.policy.hours import CalendarError, Entry, SendHours, apply, parse_entries
from dispatcher.policy.window import SendWindow

ENV_PREFIX = "SMARTD_"
SECRET_MASK = "********"
ASTANA = load_zone("Asia/Almaty")  # R8: "Astana time"
PROGRAM_WINDOW = SendWindow.parse("10:00-21:00")  # R8


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


Parser = Callable[[str], Any]


def _setting(default: Any, parser: Parser, expects: str, doc: str, *, secret: bool = False) -> Any:
    meta = {"parser": parser, "expects": expects, "doc": doc, "secret": secret}
    return field(default=default, metadata=meta)


def _str(raw: str) -> str:
    return raw.strip()


def _optional_str(raw: str) -> str | None:
    return raw.strip() or None


def _int_between(low: int, high: int) -> Parser:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not low <= value <= high:
            raise ValueError(raw)
        return value

    return parse


def _optional_int_between(low: int, high: int) -> Parser:
    bounded = _int_between(low, high)

    def parse(raw: str) -> int | None:
        return bounded(raw) if raw.strip() else None

    return parse


def _positive_float(raw: str) -> float:
    value = float(raw.strip())
    if value <= 0:
        raise ValueError(raw)
    return value


def _optional_positive_float(raw: str) -> float | None:
    return _positive_float(raw) if raw.strip() else None


def _choice(*choices: str) -> Parser:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(raw)
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)


def _address(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 20 or not value.isalnum():
        raise ValueError(raw)
    return value


def _support_line(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 20 or not re.fullmatch(r"\+?[0-9][0-9 ()\-]*", value):
        raise ValueError(raw)
    return value


def _optional_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) > 60 or not re.fullmatch(r"https?://[^\s]+", value):
        raise ValueError(raw)
    return value


def _instant(raw: str) -> datetime | None:
    if not raw.strip():
        return None
    value = datetime.fromisoformat(raw.strip())
    if value.tzinfo is None:
        raise ValueError(raw)
    return value


def _languages(raw: str) -> tuple[str, ...]:
    """A comma-separated list of program languages (kk, ru, en), possibly empty."""
    values = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    if not set(values) <= {"kk", "ru", "en"}:
        raise ValueError(raw)
    return values


def _approver_roles(raw: str) -> tuple[str, ...]:
    """A comma-separated list of the roles that may approve a campaign (admin, marketer)."""
    values = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    if not values or not set(values) <= {"admin", "marketer"}:
        raise ValueError(raw)
    return values


def _prefixes(raw: str) -> tuple[str, ...]:
    """Comma-separated E.164 prefixes (digits, a leading '+' allowed), possibly empty."""
    values = tuple(
        dict.fromkeys(part.strip().removeprefix("+") for part in raw.split(",") if part.strip())
    )
    if not all(v.isdecimal() and v.isascii() and 1 <= len(v) <= 12 for v in values):
        raise ValueError(raw)
    return values


def _zone(raw: str) -> ZoneInfo:
    return load_zone(raw.strip())


def _window(raw: str) -> SendWindow:
    return SendWindow.parse(raw)


def _send_hours(raw: str) -> str:
    """Weekly hours and dated exceptions, ``;``-separated (:mod:`dispatcher.policy.hours`)."""
    parse_entries(raw, env_name("send_hours"), separator=";")
    return raw.strip()


def _path(raw: str) -> Path:
    return Path(raw.strip()).expanduser()


def _optional_path(raw: str) -> Path | None:
    return _path(raw) if raw.strip() else None


def _public_url(raw: str) -> str | None:
    """An absolute http(s) URL without credentials, query or fragment (trailing / dropped)."""
    value = raw.strip().rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(raw)
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError(raw)
    return value


#: The data directory of a process run as root: the embedded server runs as its own user
#: there and must reach it, which a per-user directory under /root (0700) does not allow.
ROOT_DATA_DIR = Path("/var/lib/smart-dispatcher")


def _default_data_dir() -> Path:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ROOT_DATA_DIR
    return Path(platformdirs.user_data_dir("smart-dispatcher", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Effective configuration of one ``smartd`` process."""

    database_url: str | None = _setting(
        None,
        _optional_str,
        "a PostgreSQL URL",
        "PostgreSQL server; empty starts an embedded one",
        secret=True,
    )
    data_dir: Path = field(
        default_factory=lambda: _default_data_dir(),
        metadata={
            "parser": _path,
            "expects": "a directory path",
            "doc": "where the embedded PostgreSQL keeps its data",
            "secret": False,
        },
    )
    db_pool_min: int = _setting(2, _int_between(1, 1000), "an integer 1-1000", "pool minimum")
    db_pool_max: int = _setting(10, _int_between(1, 1000), "an integer 1-1000", "pool maximum")
    http_host: str = _setting("127.0.0.1", _str, "a host name or address", "HTTP bind address")
    http_port: int = _setting(8080, _int_between(0, 65535), "a port 0-65535", "HTTP port")
    public_url: str | None = _setting(
        None,
        _public_url,
        "an http(s) URL",
        "the URL browsers reach the service at (the ingress or TLS proxy in front of it); "
        "https makes the console's cookies Secure and adds Strict-Transport-Security",
    )
    hsts_max_age: int = _setting(
        31_536_000,
        _int_between(0, 10**9),
        "seconds",
        "Strict-Transport-Security max-age when SMARTD_PUBLIC_URL is https (0: no header)",
    )
    smpp_host: str = _setting("127.0.0.1", _str, "a host name or address", "SMSC host")
    smpp_port: int = _setting(2775, _int_between(1, 65535), "a port 1-65535", "SMSC port")
    smpp_system_id: str = _setting("smartd", _str, "a system_id (max 15 chars)", "bind system_id")
    smpp_password: str = _setting(
        "", _str, "a password (max 8 chars)", "bind password", secret=True
    )
    smpp_system_type: str = _setting("", _str, "a system_type", "bind system_type")
    smpp_bind_mode: str = _setting(
        "trx", _choice("trx", "tx+rx"), "trx or tx+rx", "one transceiver or a TX + RX pair"
    )
    smpp_window: int = _setting(
        64, _int_between(1, 10000), "an integer 1-10000", "max outstanding requests per bind"
    )
    smpp_tps: float = _setting(
        100.0,
        _positive_float,
        "a positive number",
        "submits/s of this replica's bind when SMARTD_SMPP_ACCOUNT_TPS is unset (superseded "
        "by it: the account's grant is then shared by the live replicas)",
    )
    smpp_account_tps: float | None = _setting(
        None,
        _optional_positive_float,
        "a positive number",
        "the SMSC account's grant in submits/s, divided automatically among the live "
        "replicas that hold one of its binds (re-divided when one dies or joins)",
    )
    smpp_account_binds: int = _setting(
        1,
        _int_between(1, 1000),
        "an integer 1-1000",
        "binds the SMSC account allows: the earliest live replicas up to this number send, "
        "the others stand by with no share (with SMARTD_SMPP_ACCOUNT_TPS)",
    )
    smpp_account_burst: int | None = _setting(
        None,
        _optional_int_between(1, 10**6),
        "an integer 1-1000000",
        "submits beyond the grant the SMSC tolerates from the account in a second: each "
        "replica paces with half the part its share gives (at least 1) to catch up late "
        "wake-ups, the other half is left for submits that reach the SMSC closer together "
        "than they were written; unset: a twentieth of SMARTD_SMPP_ACCOUNT_TPS (without it, "
        "this bind's: a twentieth of SMARTD_SMPP_TPS)",
    )
    smpp_share_interval: float = _setting(
        1.0,
        _positive_float,
        "seconds",
        "how often a replica agrees its share of the account's grant with the others: a "
        "death is re-divided within one interval, a join within two",
    )
    smpp_inbound_concurrency: int = _setting(
        64, _int_between(1, 10000), "an integer 1-10000", "inbound deliver_sm handled at once"
    )
    smpp_inbound_backlog: int = _setting(
        1000,
        _int_between(1, 10**6),
        "an integer 1-1000000",
        "deliver_sm queued or being handled before the service stops reading from the SMSC",
    )
    smpp_reassembly_timeout: float = _setting(
        60.0, _positive_float, "seconds", "how long the parts of a long MO wait for the rest"
    )
    smpp_reassembly_max_parts: int = _setting(
        10_000, _int_between(1, 10**6), "an integer 1-1000000", "long-MO parts buffered at most"
    )
    smpp_reassembly_max_bytes: int = _setting(
        4 * 1024 * 1024,
        _int_between(1024, 1 << 32),
        "a byte count",
        "bytes of long-MO parts buffered at most (the oldest message goes on incomplete)",
    )
    smpp_id_format: str = _setting(
        "auto",
        _choice("auto", "as-is", "hex-response-decimal-receipt", "decimal-response-hex-receipt"),
        "auto, as-is, hex-response-decimal-receipt or decimal-response-hex-receipt",
        "how the SMSC writes one message's id in submit_sm_resp and in its receipts; auto "
        "detects it from which reading of receipt ids names a known submit",
    )
    short_code: str = _setting("5555", _address, "an alphanumeric address", "program short code")
    dnc_code: str = _setting("1204", _address, "an alphanumeric address", "telemarketing opt-out")
    timezone: ZoneInfo = _setting(
        ASTANA, _zone, "an IANA zone name", "program time zone (Astana time)"
    )
    send_window: SendWindow = _setting(
        PROGRAM_WINDOW,
        _window,
        "HH:MM-HH:MM",
        "local hours partner messages may go out, every day the two settings below leave unnamed",
    )
    send_hours: str = _setting(
        "",
        _send_hours,
        "entries DAYS HOURS separated by ;, e.g. mon-fri 10:00-21:00; sun closed",
        "weekly hours and dated exceptions of the send calendar (days: mon..sun, mon-fri, "
        "daily, YYYY-MM-DD, YYYY-MM-DD..YYYY-MM-DD; hours: HH:MM-HH:MM or closed); they win "
        "over the calendar file's for the days they name",
    )
    send_calendar_file: Path | None = _setting(
        None,
        _optional_path,
        "a file path",
        "the send calendar file, one entry a line (e.g. public holidays: 2027-03-22 closed), "
        "read at start; `smartd calendar check FILE` validates one",
    )
    info_cap: int = _setting(10, _int_between(0, 1000), "an integer 0-1000", "info/month cap")
    survey_cap: int = _setting(2, _int_between(0, 1000), "an integer 0-1000", "surveys/month cap")
    bonus_units: int = _setting(500, _int_between(1, 10**6), "an integer", "units granted monthly")
    charging_url: str | None = _setting(
        None,
        _optional_str,
        "an http(s) URL",
        "charging system for bonus credits; empty keeps bonuses in the service's own ledger",
    )
    charging_token: str = _setting(
        "", _str, "a bearer token", "Authorization for the charging system", secret=True
    )
    charging_timeout: float = _setting(
        2.0, _positive_float, "seconds", "timeout of one charging request"
    )
    charging_attempts: int = _setting(
        3, _int_between(1, 10), "an integer 1-10", "tries per charging call (5xx, timeouts)"
    )
    charging_backoff: float = _setting(
        0.2, _positive_float, "seconds", "first retry delay of a charging call (doubles, jitter)"
    )
    charging_retry_interval: float = _setting(
        30.0, _positive_float, "seconds", "how often owed credits and forfeits are re-sent"
    )
    bonus_grant_workers: int = _setting(
        1, _int_between(1, 64), "an integer 1-64", "parallel slices of the monthly grant"
    )
    scheduler_enabled: bool = _setting(
        True, _bool, "true or false", "run the monthly grant, sweeps and charging retries here"
    )
    clock_start: datetime | None = _setting(
        None,
        _instant,
        "an ISO 8601 instant with offset",
        "demos and tests: the service's clock starts at this instant, then runs in real time",
    )
    engine_enabled: bool = _setting(
        True, _bool, "true or false", "bind to the SMSC and run the dispatch engine here"
    )
    receipts_interval: float = _setting(
        1.0, _positive_float, "seconds", "how often delivery receipts are applied when idle"
    )
    receipts_recheck: float = _setting(
        5.0,
        _positive_float,
        "seconds",
        "how long a receipt that arrived before its submit_sm_resp waits to be matched again",
    )
    housekeeping_interval: float = _setting(
        1.0,
        _positive_float,
        "seconds",
        "how often campaigns are started, expired and completed, surveys timed out and "
        "abandoned USSD sessions forgotten",
    )
    ussd_session_timeout: float = _setting(
        180.0,
        _positive_float,
        "seconds",
        "a USSD menu session idle this long is forgotten by housekeeping",
    )
    recovery_interval: float = _setting(
        30.0, _positive_float, "seconds", "how often messages held by dead nodes are taken back"
    )
    default_language: str = _setting(
        "ru", _choice("kk", "ru", "en"), "kk, ru or en", "language when none is known"
    )
    support_line: str = _setting(
        "3030",
        _support_line,
        "a phone number (digits, spaces, + ( ) -; at most 20 characters)",
        "the support line the help SMS and the *555# conditions screen name (R14)",
    )
    conditions_url: str | None = _setting(
        None,
        _optional_url,
        "an http(s) URL of at most 60 characters",
        "where the program's full conditions are published, named by the help SMS and the "
        "*555# conditions screen; empty names the conditions screen (*555#, item 5)",
    )
    default_region: str = _setting("KZ", _str, "an ISO region code", "region for local numbers")
    audience_max_bytes: int = _setting(
        512 * 1024 * 1024, _int_between(1, 1 << 40), "a byte count", "largest audience upload (413)"
    )
    audience_mobile_prefixes: tuple[str, ...] = _setting(
        (),
        _prefixes,
        "comma-separated E.164 prefixes, e.g. 7700,7708 (may be empty)",
        "numbers under these prefixes count as mobile in audience uploads (the operator's "
        "own ranges phonenumbers does not know as mobile)",
    )
    audience_refused_prefixes: tuple[str, ...] = _setting(
        (),
        _prefixes,
        "comma-separated E.164 prefixes (may be empty)",
        "numbers under these prefixes are rejected by audience uploads ('refused range')",
    )
    audience_max_rows: int = _setting(
        5_000_000, _int_between(1, 10**9), "an integer", "most data rows in one audience upload"
    )
    upload_max_concurrent: int = _setting(
        2,
        _int_between(1, 1000),
        "an integer below SMARTD_DB_POOL_MAX",
        "uploads (audience, subscriber import) handled at once; more get 503 with Retry-After",
    )
    upload_idle_timeout: float = _setting(
        30.0, _positive_float, "seconds", "an upload body that sends nothing this long gets 408"
    )
    upload_body_timeout: float = _setting(
        900.0, _positive_float, "seconds", "an upload body not received whole this soon gets 408"
    )
    db_acquire_timeout: float = _setting(
        5.0,
        _positive_float,
        "seconds",
        "an HTTP request waiting this long for a database connection gets 503 (Retry-After)",
    )
    campaign_max_segments: int = _setting(
        10, _int_between(1, 255), "an integer 1-255", "most SMS parts a campaign text may need"
    )
    required_languages: tuple[str, ...] = _setting(
        ("kk",),
        _languages,
        "comma-separated kk, ru, en (may be empty)",
        "languages every campaign must have a text in (R15: advertising in Kazakh)",
    )
    mo_retention_days: int = _setting(
        90,
        _int_between(2, 36500),
        "days 2-36500",
        "subscribers' SMS (mo_messages: number and text) are deleted this long after receipt "
        "(R11; the minimum stays far beyond the one-hour MO resend horizon)",
    )
    survey_session_retention_days: int = _setting(
        90,
        _int_between(2, 36500),
        "days 2-36500",
        "a closed survey session's number is erased this long after its close (R11; answers "
        "are unlinked from the session at the close already)",
    )
    inbox_attribution_days: int = _setting(
        7,
        _int_between(1, 365),
        "days 1-365",
        "a subscriber's SMS (reply, STOP, 1204) is attributed in the inbox, and every opt-out "
        "(STOP, 1204, leave) in the campaign reports and partners view, to the campaign that "
        "last reached the number at most this long before it (the boundary included)",
    )
    report_min_cell: int = _setting(
        5,
        _int_between(1, 1000),
        "an integer 1-1000 (1: no suppression)",
        'partner-facing counts below this are shown as "< N" (R11; admin sees exact counts)',
    )
    approval_required: bool = _setting(
        False,
        _bool,
        "true or false",
        "maker-checker: a campaign starts only once a person other than its creator approved "
        "its current texts and audience (a change sends it back for approval)",
    )
    approver_roles: tuple[str, ...] = _setting(
        ("admin", "marketer"),
        _approver_roles,
        "comma-separated admin, marketer",
        "the roles that may approve a campaign (never its creator)",
    )
    receipt_address_check: str = _setting(
        "count",
        _choice("count", "refuse"),
        "count or refuse",
        "a receipt whose source_addr is not the number its message went to: counted and "
        "logged, or also refused (some SMSCs write the address differently)",
    )
    event_loop: str = _setting(
        "uvloop",
        _choice("uvloop", "asyncio"),
        "uvloop or asyncio",
        "the event loop of every smartd command: uvloop (libuv; less CPU per request and per "
        "message) or Python's own asyncio loop (uvloop is not built for Windows)",
    )
    log_format: str = _setting("json", _choice("json", "console"), "json or console", "log output")
    log_level: str = _setting(
        "info",
        _choice("debug", "info", "warning", "error"),
        "debug|info|warning|error",
        "level of `smartd serve`; other commands log at warning or above",
    )

    @cached_property
    def calendar(self) -> ProgramCalendar:
        """Program time from ``timezone`` and the send calendar (``send_window``, the
        calendar file, then ``send_hours``): every window, month and local time question goes
        through it, never through those fields directly. Raises :class:`CalendarError`."""
        return ProgramCalendar(self.timezone, send_hours(self, self.send_calendar_file))

    @cached_property
    def mobile_policy(self) -> MobilePolicy:
        """Which numbers audience uploads accept: mobile numbers of ``default_region``, plus
        ``audience_mobile_prefixes``, minus ``audience_refused_prefixes``."""
        return MobilePolicy(
            self.default_region, self.audience_mobile_prefixes, self.audience_refused_prefixes
        )

    @property
    def smpp_account(self) -> str:
        """The SMSC account the replicas share: its bind system_id at its host and port."""
        return f"{self.smpp_system_id}@{self.smpp_host}:{self.smpp_port}"

    @property
    def smpp_account_burst_size(self) -> int:
        """The account's burst (SMARTD_SMPP_ACCOUNT_BURST, or a twentieth of its grant; without
        SMARTD_SMPP_ACCOUNT_TPS, of this bind's SMARTD_SMPP_TPS)."""
        if self.smpp_account_burst is not None:
            return self.smpp_account_burst
        return max(1, int((self.smpp_account_tps or self.smpp_tps) / 20))

    @property
    def public_https(self) -> bool:
        """Browsers reach the service over https (``SMARTD_PUBLIC_URL``), whatever the
        connection from the proxy is."""
        return (self.public_url or "").startswith("https://")

    def masked(self) -> dict[str, str]:
        """Every setting as ``SMARTD_NAME -> text``: secrets replaced by a mask, and the
        user and password of any URL too (``https://user:pw@host`` → ``https://********@host``)."""
        shown: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                text = SECRET_MASK
            else:
                text = mask_url_credentials("" if value is None else str(value))
            shown[env_name(f.name)] = text
        return shown


def send_hours(settings: Settings, calendar_file: Path | None) -> SendHours:
    """The send calendar: ``send_window`` every day, then the entries of ``calendar_file``,
    then ``send_hours``'s (a later entry wins for the days it names), checked."""
    entries: list[Entry] = []
    if calendar_file is not None:
        entries += read_calendar_file(calendar_file)
    entries += parse_entries(settings.send_hours, env_name("send_hours"), separator=";")
    return apply(SendHours.every_day(settings.send_window), entries)


def read_calendar_file(path: Path) -> tuple[Entry, ...]:
    """The entries of a calendar file (UTF-8, one a line), each labelled with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarError([f"{path}: cannot read the calendar file: {exc}"]) from exc
    return parse_entries(text, str(path))


# scheme://userinfo@ — the userinfo (user, password) of a URL anywhere in a text.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s?#]*@")


def mask_url_credentials(text: str) -> str:
    """``text`` with the userinfo of every URL in it masked (config output, logs)."""
    return _URL_USERINFO.sub(lambda m: m.group(1) + SECRET_MASK + "@", text)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def describe() -> list[tuple[str, str, str, str]]:
    """(variable, default, expects, description) for every setting: the configuration reference."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = (
            f"(per-user data dir; {ROOT_DATA_DIR} as root)" if f.name == "data_dir" else f.default
        )
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = str(default) if isinstance(default, bool) else str(default or "")
        rows.append((env_name(f.name), shown, f.metadata["expects"], f.metadata["doc"]))
    return rows


def reference_markdown() -> str:
    """The configuration reference table of the README, generated from :class:`Settings`."""
    lines = ["| variable | default | expects | meaning |", "| --- | --- | --- | --- |"]
    for name, default, expects, doc in describe():
        shown = f"`{default}`" if default else ""
        lines.append(f"| `{name}` | {shown} | {expects} | {doc} |")
    return "\n".join(lines)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"SMARTD_CONFIG: cannot read TOML file {path!r}: {exc}") from exc


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``), TOML and ``overrides``.

    ``overrides`` are already-typed values (tests and the CLI use them); they win over both.
    """
    env = os.environ if environ is None else environ
    file_values = _read_toml(env["SMARTD_CONFIG"]) if env.get("SMARTD_CONFIG") else {}
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise ConfigError(f"SMARTD_CONFIG: unknown setting(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name in overrides:
            values[f.name] = overrides[f.name]
            continue
        name = env_name(f.name)
        raw = env.get(name)
        if raw is None and f.name in file_values:
            raw = str(file_values[f.name])
        if raw is None:
            if f.default is dataclasses.MISSING:
                continue  # the field's default_factory applies
            raw = f.default
        values[f.name] = _parse(f, name, raw)
    settings = Settings(**values)
    _check_consistency(settings)
    try:
        settings.calendar  # noqa: B018 - the calendar file is read and checked at start
    except CalendarError as exc:
        raise ConfigError(f"send calendar: {exc}") from exc
    return settings


def _parse(f: dataclasses.Field[Any], name: str, raw: Any) -> Any:
    if raw is None or not isinstance(raw, str):
        return raw
    try:
        return f.metadata["parser"](raw)
    except CalendarError as exc:  # it names the entry
        raise ConfigError(str(exc)) from exc
    except (ValueError, KeyError, LookupError) as exc:
        shown = SECRET_MASK if f.metadata["secret"] else repr(raw)
        raise ConfigError(f"{name}: expected {f.metadata['expects']}, got {shown}") from exc


#: Passwords of the examples in ``deploy/`` and the README, and their kind: never real.
PLACEHOLDER_PASSWORDS = frozenset(
    {"change-me", "changeme", "change_me", "changeit", "password", "secret", "example"}
)


def placeholder_secrets(settings: Settings) -> list[str]:
    """The variables whose password is a placeholder from the examples (``change-me``,
    ``changeme``, a database password equal to its user such as ``smartd/smartd``)."""
    found = []
    if _placeholder(settings.smpp_password):
        found.append(env_name("smpp_password"))
    if _placeholder(settings.charging_token):
        found.append(env_name("charging_token"))
    for name in ("database_url", "charging_url"):
        url = getattr(settings, name)
        if url and _url_has_placeholder(url):
            found.append(env_name(name))
    return found


def _placeholder(password: str) -> bool:
    return password.strip().lower() in PLACEHOLDER_PASSWORDS


def _url_has_placeholder(url: str) -> bool:
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return False
    if not password:
        return False  # no password (a local socket, trust): nothing copied from an example
    password = unquote(password)
    return _placeholder(password) or password == unquote(user or "")


def check_serve(settings: Settings) -> None:
    """What ``serve`` needs beyond well-formed values: no placeholder password copied from
    the examples (``smartd demo`` and tests never call this)."""
    found = placeholder_secrets(settings)
    if found:
        raise ConfigError(
            f"{', '.join(found)}: the password is a placeholder from the examples "
            f"({', '.join(sorted(PLACEHOLDER_PASSWORDS))}, or the same as the user name, "
            "such as smartd/smartd); set a real secret"
        )


def _check_consistency(settings: Settings) -> None:
    if settings.db_pool_min > settings.db_pool_max:
        raise ConfigError("SMARTD_DB_POOL_MIN: must not exceed SMARTD_DB_POOL_MAX")
    if settings.upload_max_concurrent >= settings.db_pool_max:
        raise ConfigError(
            "SMARTD_UPLOAD_MAX_CONCURRENT: must be below SMARTD_DB_POOL_MAX "
            "(uploads must leave connections for USSD, events and the engine)"
        )
    if len(settings.smpp_system_id) > 15:
        raise ConfigError("SMARTD_SMPP_SYSTEM_ID: expected at most 15 characters")
    if len(settings.smpp_password) > 8:
        raise ConfigError("SMARTD_SMPP_PASSWORD: expected at most 8 characters")
