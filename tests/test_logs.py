"""Logging masks personal data and secrets everywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from dispatcher.logs import configure_logging, mask_personal_data, mask_text


@pytest.fixture
def json_logging() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "debug", stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_mask_keeps_last_four_digits() -> None:
    """A number keeps only its last four digits, in any common form."""
    assert mask_text("from 77011234567 to +77017654321") == "from *******4567 to +*******4321"
    assert mask_text("msisdn=87011234567;") == "msisdn=*******4567;"


def test_mask_leaves_short_numbers_and_ids() -> None:
    """Short codes, ids, years and timestamps are not mistaken for numbers."""
    text = "code 1204 to 5555 campaign 42 at 2026-11-23T12:00:00Z id a1b2c3d4e5f6"
    assert mask_text(text) == text


def test_processor_masks_nested_values_and_secrets() -> None:
    """The processor masks strings, big ints, nested dicts and secret-named keys."""
    event = {
        "event": "submit 77011234567",
        "msisdn": 77011234567,
        "batch": {"numbers": ["77011234567"], "count": 3},
        "password": "hunter2",
        "token": "smartd_abc",
        "authorization": "Bearer xyz",
    }
    masked = mask_personal_data(None, "info", dict(event))
    assert masked["event"] == "submit *******4567"
    assert masked["msisdn"] == "*******4567"
    assert masked["batch"] == {"numbers": ["*******4567"], "count": 3}
    assert masked["password"] == masked["token"] == masked["authorization"] == "***"


def test_capture_logs_sees_bound_context() -> None:
    """Context bound with contextvars reaches every event of the task."""
    structlog.contextvars.bind_contextvars(campaign_id=7)
    try:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            structlog.get_logger().info("claimed", batch=100)
    finally:
        structlog.contextvars.clear_contextvars()
    assert logs == [{"event": "claimed", "batch": 100, "campaign_id": 7, "log_level": "info"}]


def test_rendered_json_lines_are_masked(json_logging: io.StringIO) -> None:
    """Both structlog and stdlib (aiohttp-style) lines come out as masked JSON."""
    structlog.get_logger("t").info("joined", msisdn="77011234567", smpp_password="pw1")
    logging.getLogger("aiohttp.access").info("GET /api/v1/subscribers/77011234567 200")
    lines = [json.loads(line) for line in json_logging.getvalue().splitlines()]
    assert lines[0]["msisdn"] == "*******4567" and lines[0]["smpp_password"] == "***"
    assert lines[1]["event"] == "GET /api/v1/subscribers/*******4567 200"
    assert all("77011234567" not in json.dumps(line) for line in lines)
