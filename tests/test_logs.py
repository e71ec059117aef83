"""Logging masks personal data and secrets everywhere."""

from __future__ import annotations

import io
import json
import logging
import re

import structlog
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from dispatcher.logs import PROTOCOL_FIELDS, mask_personal_data, mask_text


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


# ---------------------------------------------------------------- issue 13: forms and fields

PREFIXES = ["+7", "7", "8", "+7 ", "8 ", "+7-", "%2B7", "%2B7%20", "+7+"]
SEPARATORS = [" ", "-", "", "%20", "\u00a0", "+"]
SPLITS = [(3, 2, 2), (3, 4), (7,), (2, 2, 3)]
CONTEXTS = [
    "GET /api/v1/subscribers/{} HTTP/1.1",
    "/console/subscribers/{}",
    "msisdn={};",
    "from {} to short code",
    "reply from {}.",
    "number '{}' unknown",
]


@st.composite
def written_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(a KZ mobile number as E.164 digits, a common written form of it)."""
    area = draw(st.sampled_from(["700", "701", "702", "705", "707", "747", "771", "775", "778"]))
    rest = draw(st.text(alphabet="0123456789", min_size=7, max_size=7))
    prefix = draw(st.sampled_from(PREFIXES))
    sep = draw(st.sampled_from(SEPARATORS))
    bracket = draw(st.booleans())
    groups, i = [], 0
    for size in draw(st.sampled_from(SPLITS)):
        groups.append(rest[i : i + size])
        i += size
    head = f"({area})" if bracket else area
    join = "" if prefix.endswith((" ", "-", "%20", "+")) else draw(st.sampled_from(["", sep]))
    return "7" + area + rest, prefix + join + head + sep + sep.join(groups)


@given(written_numbers(), st.sampled_from(CONTEXTS))
def test_a_number_in_any_written_form_keeps_only_its_last_four_digits(
    number: tuple[str, str], context: str
) -> None:
    """Spaces, dashes, parentheses, +7/8 prefixes, URL encoding (as an access log writes a
    path): what is left of the number's digits is its last four."""
    digits, written = number
    masked = mask_text(context.format(written))
    before, after = context.split("{}")
    assert masked.startswith(before) and masked.endswith(after), masked
    number_part = masked[len(before) : len(masked) - len(after)]
    unescaped = re.sub(r"%[0-9A-Fa-f]{2}", " ", number_part)
    assert re.sub(r"\D", "", unescaped) == digits[-4:], masked


@given(
    st.sampled_from(sorted(PROTOCOL_FIELDS)),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["{} {}", "{}={}", "{}: {}", "{} = {}"]),
)
def test_protocol_fields_are_left_alone(field: str, value: int, form: str) -> None:
    """An SMPP header field, id or length is not personal data, as a key or in a text."""
    event = {field: value, "text": f"{field}={value}"}
    assert mask_personal_data(None, "info", dict(event)) == event
    assert mask_personal_data(None, "info", {field: str(value)}) == {field: str(value)}
    text = "frame refused: " + form.format(field, value) + " outside 16..65536"
    assert mask_text(text) == text


def test_observed_formatted_number_in_a_500s_path_is_masked(json_logging: io.StringIO) -> None:
    """Issue 13: `+7 701 234 56 78` in a failing request's path, as aiohttp and the error
    middleware log it."""
    access = logging.getLogger("aiohttp.access")
    access.info('"GET /console/subscribers/%2B7%20701%20234%2056%2078 HTTP/1.1" 500 245')
    structlog.get_logger("t").error("unhandled", path="/api/v1/subscribers/+7 701 234 56 78")
    structlog.get_logger("t").error("refused", path="/x/8 (701) 234-56-78", command_length=9)
    out = json_logging.getvalue()
    for leak in ("701%20234", "701 234", "(701) 234", "7012345678"):
        assert leak not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["event"].endswith('%2056%2078 HTTP/1.1" 500 245')
    assert lines[1]["path"] == "/api/v1/subscribers/+* *** *** 56 78"
    assert lines[2]["command_length"] == 9


def test_observed_command_length_is_not_masked() -> None:
    """Issue 13: a PDU's command_length (here from smpp.pdu's FrameError) is kept whole."""
    text = "command_length 4294967295 outside 16..1048576"
    assert mask_text(text) == text
    event = {"event": "frame refused", "command_length": 4294967295, "sequence_number": 2**31}
    assert mask_personal_data(None, "info", dict(event)) == event
