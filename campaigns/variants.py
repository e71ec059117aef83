"""Text variants and a control group (issue 15), as the create payload gives them (pure).

A campaign may carry up to :data:`MAX_VARIANTS` text variants, each a full ``{language:
text}`` (every required language, R15) with a split percentage, and a holdout percentage
(0–:data:`MAX_HOLDOUT`). The holdout is taken first; the variants' percentages split what it
leaves and sum to 100: ``holdout_percent: 10`` with variants of 50 and 50 sends A to 45% and
B to 45% of the audience and holds back 10%.

The payload's ``variants`` is ``[{"name": "A", "texts": {...}, "percent": 50}, ...]``; left
out (or empty), the campaign's ``texts`` is its one variant, as before, and ``texts`` stays
variant A's text for every reader that knows nothing of variants. Given both, ``texts`` must
be variant A's. Variants are for info campaigns: a survey's first message is composed from its
questions; a survey may still hold back a control group.

Which recipient gets which arm is the database's (migration 0039, ``audience_arm``), from
(campaign id, msisdn) alone, when the audience is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_VARIANTS = 4
MAX_HOLDOUT = 50
MAX_NAME = 40
HOLDOUT = "holdout"


def default_name(index: int) -> str:
    """Variant ``index`` (0-based) unnamed: A, B, C, D."""
    return chr(ord("A") + index)


def variant_names(variants: list[dict[str, Any]]) -> list[str]:
    """The variants' names, in order (``["A"]`` for a campaign of one text)."""
    return [str(v.get("name") or default_name(i)) for i, v in enumerate(variants)] or ["A"]


def texts_of(
    texts: Mapping[str, str], variants: list[dict[str, Any]], index: int | None
) -> Mapping[str, str]:
    """The texts variant ``index`` sends (``texts`` for a campaign of one text)."""
    if variants and index is not None and 0 <= index < len(variants):
        chosen: Mapping[str, str] = variants[index]["texts"]
        return chosen
    return texts


def parse_holdout(payload: Mapping[str, Any], errors: dict[str, Any]) -> int:
    """``holdout_percent``: an integer 0..50 (absent: 0)."""
    value = payload.get("holdout_percent", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_HOLDOUT:
        errors["holdout_percent"] = f"expected an integer percent 0..{MAX_HOLDOUT}"
        return 0
    return value


def parse_variants(value: Any, errors: dict[str, Any], language_map: Any) -> list[dict[str, Any]]:
    """``variants`` as stored: ``[{"name", "texts", "percent"}]``, or ``[]`` when absent.
    ``language_map(value, what)`` reads a ``{lang: text}`` (spec.py's). Problems go to
    ``errors`` under ``variants`` or ``variants[i].name|texts|percent``."""
    if value is None or value == []:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        errors["variants"] = 'expected a list of {"name", "texts", "percent"}'
        return []
    if len(value) > MAX_VARIANTS:
        errors["variants"] = f"at most {MAX_VARIANTS} variants"
        return []
    variants: list[dict[str, Any]] = []
    for index, raw in enumerate(value):
        at = f"variants[{index}]"
        name = raw.get("name") or default_name(index)
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            errors[f"{at}.name"] = f"expected a name of 1..{MAX_NAME} characters"
            name = default_name(index)
        texts, problem = language_map(raw.get("texts"), "a text")
        if problem:
            errors[f"{at}.texts"] = problem
        percent = raw.get("percent")
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
            errors[f"{at}.percent"] = "expected an integer percent 1..100"
            percent = 0
        variants.append({"name": name.strip(), "texts": texts, "percent": percent})
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        errors["variants"] = "each variant needs its own name"
    elif not any(key.startswith("variants[") for key in errors):
        total = sum(v["percent"] for v in variants)
        if total != 100:
            errors["variants"] = (
                f"the variants' percentages sum to {total}; they split the audience left "
                "after the holdout and must sum to 100"
            )
    return variants
