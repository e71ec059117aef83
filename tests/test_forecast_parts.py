"""The forecast's parts for a recipient are what the engine submits (issue 14: "GSM-7 ·
1 part" went as UCS-2 in 2 parts because the names were Cyrillic). Property over templates
× variable values × recipient languages: the forecast's (encoding, parts) — or "cannot be
sent" — equals the engine's own text for that recipient (``Dispatcher._delivery``) encoded by
the engine's own ``Dispatcher._encode`` (the PDUs it then writes)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.templates import message_text
from dispatcher.engine.engine import Dispatcher
from dispatcher.engine.forecast import ENCODING_NAMES, message_parts
from dispatcher.engine.repository import CampaignRef, Recipient
from dispatcher.kernel.states import ContactKind
from smpp.text import ReferenceCounter

# Latin, GSM-7 extension characters (two septets), Cyrillic and Kazakh letters, an emoji
# (two UTF-16 units), and the braces a template is made of.
ALPHABET = st.sampled_from(list("aZ 9,.!*#€[]^{}~") + list("АйӘңҰ") + ["😀", "\n"])
words = st.text(ALPHABET, max_size=120).map(lambda t: t.replace("{", "").replace("}", ""))
values = st.text(ALPHABET, max_size=40)
languages = st.sampled_from([None, "kk", "ru", "en"])


@st.composite
def templates(draw: Any) -> str:
    pieces = draw(st.lists(st.tuples(words, st.sampled_from(["", "{name}", "{city}"])), max_size=6))
    return "".join(literal + name for literal, name in pieces) or draw(words) or "x"


@settings(max_examples=400)
@given(
    texts=st.dictionaries(st.sampled_from(["kk", "ru", "en"]), templates(), min_size=1),
    variables=st.dictionaries(st.sampled_from(["name", "city"]), values),
    language=languages,
    repeat=st.integers(1, 8),
)
def test_forecast_parts_equal_the_engines_submits(
    texts: dict[str, str], variables: dict[str, str], language: str | None, repeat: int
) -> None:
    texts = {lang: text * repeat for lang, text in texts.items()}  # long ones too
    engine: Any = SimpleNamespace(
        _settings=SimpleNamespace(default_language="ru"), _refs=ReferenceCounter()
    )
    campaign = CampaignRef(1, ContactKind.INFO, texts, True)
    claimed = Dispatcher._delivery(
        engine, campaign, Recipient(1, "77010000000", language, variables)
    )
    encoded = Dispatcher._encode(engine, claimed)
    _, text = message_text(texts, language, variables, "ru")
    forecast = message_parts(text)
    if not encoded.parts:
        assert forecast is None
        return
    codings = {part.data_coding for _, part in encoded.parts}
    assert len(codings) == 1
    names = {int(k): v for k, v in ENCODING_NAMES.items()}
    assert forecast == (names[codings.pop()], len(encoded.parts))
