"""Which language a subscriber is written to (R14): the one home of the fallback.

Pure and free of service imports, so the program (USSD screens, service SMS) and the
campaign domain (campaign texts, surveys, reports) both use it. Where a set-based statement
must choose per row, SQL calls ``pick_language(available, preferred, fallback)``
(migration ``0009_pick_language.sql``), which mirrors this function; a test checks the two
agree on every combination.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

L = TypeVar("L", bound=str)


def pick_language(available: Collection[L], preferred: L | None, default: L | None = None) -> L:
    """The language to use given the ``available`` texts: ``preferred`` (the subscriber's)
    when available, else ``default`` when available, else the first available one.

    ``available`` is any collection of language codes, a ``{language: text}`` mapping
    included (its keys, in their order). Raises :class:`ValueError` when it is empty.
    """
    for candidate in (preferred, default):
        if candidate and candidate in available:
            return candidate
    for first in available:
        return first
    raise ValueError("no language available")
