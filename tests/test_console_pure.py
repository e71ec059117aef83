"""The console's pure pieces: the create form → API payload, survey scripts, chart geometry,
and where sign-in may send the browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from campaigns.spec import flatten_errors, parse_campaign
from dispatcher.console.charts import (
    MAX_BARS,
    bucket_width,
    nice_ceiling,
    option_bars,
    progress,
    throughput,
)
from dispatcher.console.forms import (
    campaign_payload,
    merge_languages,
    parse_script,
)
from dispatcher.console.guard import safe_next
from dispatcher.console.sessions import COOKIE, set_session_cookie
from dispatcher.kernel.clock import load_zone

ASTANA = load_zone("Asia/Almaty")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_form_becomes_the_api_payload_with_local_times() -> None:
    """Form fields map to the create payload; datetime-local values are read in Astana time."""
    form = {
        "name": "Sale",
        "kind": "info",
        "scope": "operator",
        "text_ru": "Скидка\r\nсегодня",
        "text_kk": "  ",
        "variables": "Name, discount",
        "start_at": "2026-11-24T10:00",
    }
    payload, errors = campaign_payload(form, ASTANA)
    assert errors == {}
    assert payload["texts"] == {"ru": "Скидка\nсегодня"}  # blank kk left out, CRLF → LF
    assert payload["variables"] == ["name", "discount"]
    assert payload["start_at"] == "2026-11-24T10:00:00+05:00"
    assert "end_at" not in payload and "survey" not in payload


def test_bad_local_time_is_a_form_error() -> None:
    """A time the browser could not have sent is reported under its field."""
    _, errors = campaign_payload({"name": "x", "end_at": "tomorrow"}, ASTANA)
    assert errors == {"end_at": "expected a date and time"}


def test_survey_scripts_make_a_valid_survey() -> None:
    """Two languages' scripts of the same shape become questions the campaign spec accepts."""
    form = {
        "name": "Poll",
        "kind": "survey",
        "survey_ru": "Как вам?\n1. Хорошо\n2) Плохо\n\n\nЕщё?\n- Да\n- Нет",
        "survey_en": "How was it?\n1. Good\n2. Bad\n\nAgain?\nYes\nNo",
        "thanks_ru": "Спасибо",
        "thanks_en": "Thanks",
        "timeout_hours": "6",
    }
    payload, errors = campaign_payload(form, ASTANA)
    assert errors == {}
    spec = parse_campaign(payload, NOW, 6, ())  # the scripts' shape; no language required
    assert spec.survey is not None and len(spec.survey.questions) == 2
    assert spec.survey.questions[0]["options"][1] == {"ru": "Плохо", "en": "Bad"}
    assert spec.survey.timeout == timedelta(hours=6)
    assert spec.texts["en"] == "How was it?\n1. Good\n2. Bad"


def test_survey_scripts_of_different_shapes_are_refused() -> None:
    """Languages whose questions or options differ in number are a form error."""
    scripts = {"ru": parse_script("Q?\n1. a\n2. b"), "en": parse_script("Q?\n1. a")}
    questions, problem = merge_languages(scripts)
    assert questions == [] and problem is not None and "ru: [2]; en: [1]" in problem
    assert merge_languages({})[1] == "write the survey's questions in at least one language"


def test_spec_errors_are_flattened_per_field() -> None:
    """Nested SpecError details become dotted field names."""
    details = {"name": "required text", "texts": {"ru": "too long"}, "survey": {"q": {"en": "x"}}}
    assert flatten_errors(details) == {
        "name": "required text",
        "texts.ru": "too long",
        "survey.q.en": "x",
    }


def test_progress_segments_cover_the_done_share() -> None:
    """Delivered, submitted, not delivered and suppressed are stacked; queued is the rest."""
    total, segments = progress({"delivered": 5, "in_flight": 1, "failed": 1, "queued": 3})
    assert total == 10
    assert [(s.css, s.count, s.x, s.width) for s in segments] == [
        ("delivered", 5, 0.0, 50.0),
        ("submitted", 1, 50.0, 10.0),
        ("failed", 1, 60.0, 10.0),
        ("suppressed", 0, 70.0, 0.0),
    ]
    assert progress({}) == (0, progress({})[1])
    assert all(s.width == 0 for s in progress({})[1])


@given(st.integers(min_value=0, max_value=10**9))
def test_axis_top_is_at_least_the_peak_and_divides_in_four(peak: int) -> None:
    """The y axis reaches the peak, in four whole steps, and not more than 2.5× too high."""
    top = nice_ceiling(peak)
    assert top >= peak and top % 4 == 0
    assert top <= max(4, 2.5 * peak + 4)


@given(st.integers(min_value=0, max_value=60 * 24 * 30))
def test_bucket_width_keeps_the_chart_readable(minutes: int) -> None:
    """Any campaign span fits in at most MAX_BARS bars (up to a day per bar)."""
    start = NOW
    width = bucket_width(start, start + timedelta(minutes=minutes))
    assert minutes / (width.total_seconds() / 60) < MAX_BARS or width == timedelta(days=1)


def test_throughput_fills_empty_buckets() -> None:
    """Minutes without submits are drawn as zero bars between the busy ones."""
    minute = timedelta(minutes=1)
    chart = throughput([(NOW, 10), (NOW + 3 * minute, 20)], minute)
    assert chart is not None
    assert [bar.count for bar in chart.bars] == [10, 0, 0, 20]
    assert chart.peak == 20 and chart.ticks[-1][1] == 20
    assert chart.bars[3].height > chart.bars[0].height > chart.bars[1].height == 0
    assert throughput([], minute) is None


def test_option_bars_are_relative_to_100_percent() -> None:
    """Issue 14: a bar is as long as its share of the answers (the track is 100 %), not
    scaled to the most chosen option."""
    bars = option_bars([("Yes", 3), ("No", 1), ("Maybe", 0)])
    assert [(b.width, b.share) for b in bars] == [(75.0, 75.0), (25.0, 25.0), (0.0, 0.0)]
    assert [b.width for b in option_bars([("a", 0)])] == [0.0]


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=9))
def test_option_bars_fill_the_track_together(counts: list[int]) -> None:
    """Whatever the counts, each bar is its share and the bars together fill the track
    (to rounding) once anyone answered."""
    bars = option_bars([(str(n), n) for n in counts])
    assert all(b.width == b.share and 0.0 <= b.width <= 100.0 for b in bars)
    if sum(counts):
        assert abs(sum(b.width for b in bars) - 100.0) <= 0.05 * len(counts)


def test_sign_in_redirects_only_within_the_console() -> None:
    """``next`` may name a console page, never another site."""
    assert safe_next("/console/campaigns/7?done=start") == "/console/campaigns/7?done=start"
    for hostile in ("https://evil.example/", "//evil.example/console", "/console\\@evil", "/api"):
        assert safe_next(hostile) == "/console/campaigns"
    assert safe_next(None) == "/console/campaigns"


def test_session_cookie_is_secure_over_https() -> None:
    """Over https the session cookie also carries Secure (HttpOnly and Strict always)."""
    for scheme, secure in (("https", True), ("http", False)):
        request = make_mocked_request("POST", "/console/login").clone(scheme=scheme)
        response = web.Response()
        set_session_cookie(request, response, "sid")
        cookie = response.cookies[COOKIE]
        assert (cookie["secure"], cookie["httponly"], cookie["samesite"]) == (
            secure,
            True,
            "Strict",
        )
