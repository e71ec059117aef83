"""WCAG AA contrast of the console's colours, read from dispatcher/static/console.css
(issue 14: muted text was 4.25:1, grey rows 2.13:1). Text needs 4.5:1 on what it sits on;
the focus ring 3:1 (a user interface component, WCAG 1.4.11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).parent.parent / "dispatcher" / "static" / "console.css"
TEXT = 4.5
GRAPHIC = 3.0


def _rules(css: str) -> list[tuple[str, dict[str, str]]]:
    """(selector, declarations) of every innermost rule (those inside @media too)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = {}
        for item in body.split(";"):
            name, sep, value = item.partition(":")
            if sep:
                declarations[name.strip()] = value.strip()
        rules.append((" ".join(selector.split()), declarations))
    return rules


RULES = _rules(CSS.read_text("utf-8"))
ROOT = next(d for s, d in RULES if s == ":root")


def colour(value: str) -> str:
    """A declared colour as #rrggbb: variables resolved, 3-digit hex widened."""
    while (found := re.fullmatch(r"var\((--[\w-]+)\)", value.strip())) is not None:
        value = ROOT[found.group(1)]
    value = value.strip().lower()
    value = {"white": "#ffffff", "black": "#000000"}.get(value, value)
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        value = "#" + "".join(c * 2 for c in value[1:])
    assert re.fullmatch(r"#[0-9a-f]{6}", value), f"not a solid colour: {value}"
    return value


def _solid(value: str) -> bool:
    try:
        colour(value)
    except (AssertionError, KeyError):
        return False
    return True


def luminance(hex_colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(colour(a)), luminance(colour(b))), reverse=True)
    return (high + 0.05) / (low + 0.05)


def declared(selector: str, prop: str) -> str:
    """The last value of ``prop`` in the rule whose selector list contains ``selector``."""
    values = [
        d[prop]
        for s, d in RULES
        if prop in d and selector in [part.strip() for part in s.split(",")]
    ]
    assert values, f"{selector} declares no {prop}"
    return values[-1]


def test_the_formula_matches_wcag() -> None:
    assert round(contrast("#000", "#fff"), 2) == 21.0
    assert round(contrast("#767676", "#fff"), 2) == 4.54  # the well-known lightest AA grey


#: Surfaces text sits on: the page, cards, table heads, SMS boxes, a hovered row, badges.
SURFACES = ["var(--bg)", "var(--card)", "#fafbfc", "#f3f6f9", "#f8fafc"]


@pytest.mark.parametrize("ink", ["var(--ink)", "var(--muted)", "var(--accent)", "var(--danger)"])
@pytest.mark.parametrize("surface", SURFACES)
def test_text_colours_on_every_surface(ink: str, surface: str) -> None:
    assert contrast(ink, surface) >= TEXT, (ink, surface, round(contrast(ink, surface), 2))


def test_grey_rows_and_table_heads_are_readable() -> None:
    """Rows with zero counts are greyed, not faded out of reach; table heads are muted."""
    zero = declared(".table tr.zero td", "color")
    assert contrast(zero, "var(--card)") >= TEXT, round(contrast(zero, "var(--card)"), 2)
    head = declared(".table th", "color")
    assert contrast(head, declared(".table th", "background")) >= TEXT


def test_every_rule_with_text_and_background_colours() -> None:
    """Each rule that sets both a text colour and a solid background (badges, buttons,
    alerts, the top bar) reaches 4.5:1 — hover states included."""
    checked = 0
    for selector, d in RULES:
        back = d.get("background-color") or d.get("background")
        if "color" not in d or back is None or d["color"] in {"inherit", "currentcolor"}:
            continue
        if not (_solid(d["color"]) and _solid(back)):
            continue  # a gradient, a translucent colour: not computable here
        ratio = contrast(d["color"], back)
        assert ratio >= TEXT, (selector, d["color"], back, round(ratio, 2))
        checked += 1
    assert checked >= 15


def test_top_bar_texts() -> None:
    bar = declared(".topbar", "background")
    for selector in (".brand .muted", ".mainnav a", "button.link"):
        ratio = contrast(declared(selector, "color"), bar)
        assert ratio >= TEXT, (selector, round(ratio, 2))


def test_focus_ring_is_visible_on_every_surface() -> None:
    """:focus-visible draws an outline of at least 2px in a colour of 3:1 on what it is
    drawn on (its own colour on the dark top bar)."""
    rings = [(s, d["outline"]) for s, d in RULES if ":focus-visible" in s and "outline" in d]
    assert rings, "no :focus-visible outline"
    for selector, outline in rings:
        width, _, ring = outline.partition(" solid ")
        assert float(width.removesuffix("px")) >= 2, selector
        on_bar = selector.startswith(".topbar")
        surfaces = [declared(".topbar", "background")] if on_bar else SURFACES
        for surface in surfaces:
            assert contrast(ring, surface) >= GRAPHIC, (selector, surface)
    assert any(s.startswith(".topbar") for s, _ in rings), "no ring for the top bar"
