"""The variant editor of the create and edit form (issue 15) ↔ the payload's ``variants`` and
``holdout_percent`` (pure; the campaign domain judges the result, as for the API).

The form's main texts (``text_<lang>``) are variant A. Variants B–D each have a name, a
percent and a text per language (``variant_<i>_name``, ``variant_<i>_percent``,
``variant_<i>_text_<lang>``, i = 1..3); A's name and percent are ``variant_0_name`` and
``variant_0_percent``. A variant with no text at all is not there; with none of B–D, the
campaign has one text, as before. No percent given at all: an even split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from campaigns.variants import MAX_VARIANTS, default_name

LANGUAGE_ORDER = ("kk", "ru", "en")


def _text(form: Mapping[str, str], key: str) -> str:
    text = form.get(key, "").replace("\r\n", "\n")
    return text if text.strip() else ""


def _percent(form: Mapping[str, str], key: str, errors: dict[str, Any], field: str) -> Any:
    """A percent field: its integer, or the raw text for the domain to refuse."""
    raw = form.get(key, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        errors[field] = "expected a whole number of percent"
        return None


def variant_payload(
    form: Mapping[str, str], texts: dict[str, str], errors: dict[str, Any]
) -> dict[str, Any]:
    """``variants`` (when B–D have any text) and ``holdout_percent`` from the form; the
    form's own problems (a percent that is no number) go to ``errors``."""
    fields: dict[str, Any] = {}
    holdout = _percent(form, "holdout_percent", errors, "holdout_percent")
    if holdout is not None:
        fields["holdout_percent"] = holdout
    others = []
    for index in range(1, MAX_VARIANTS):
        own = {
            lang: text
            for lang in LANGUAGE_ORDER
            if (text := _text(form, f"variant_{index}_text_{lang}"))
        }
        if own:
            others.append((index, own))
    if not others:
        return fields
    variants = [_variant(form, 0, texts, errors)]
    variants += [_variant(form, index, own, errors) for index, own in others]
    if all(variant["percent"] is None for variant in variants):
        # No split given: an even one (A takes what 100 does not divide).
        share = 100 // len(variants)
        for variant in variants:
            variant["percent"] = share
        variants[0]["percent"] += 100 - share * len(variants)
    fields["variants"] = variants
    return fields


def _variant(
    form: Mapping[str, str], index: int, texts: dict[str, str], errors: dict[str, Any]
) -> dict[str, Any]:
    name = form.get(f"variant_{index}_name", "").strip() or default_name(index)
    percent = _percent(form, f"variant_{index}_percent", errors, f"variants[{index}].percent")
    return {"name": name, "texts": texts, "percent": percent}


def variant_form(payload: Mapping[str, Any]) -> dict[str, str]:
    """The editor's fields for a stored payload (the inverse of :func:`variant_payload`)."""
    form = {"holdout_percent": str(payload.get("holdout_percent") or 0)}
    for index, variant in enumerate(payload.get("variants") or []):
        form[f"variant_{index}_name"] = variant.get("name") or default_name(index)
        form[f"variant_{index}_percent"] = str(variant.get("percent", ""))
        if index:
            form |= {
                f"variant_{index}_text_{lang}": text for lang, text in variant["texts"].items()
            }
    return form
