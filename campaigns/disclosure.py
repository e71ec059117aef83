"""Minimum cell size (R11): what a partner sees of a count.

A count below the threshold (setting ``report_min_cell``, default 5) is shown as ``"< 5"``
— zero too, or the one non-zero option of a campaign to one person would stand out. That
alone is not enough where a total is shown beside its parts: the total minus the visible parts
gives the one hidden part back. So after this *primary* suppression, every group (a total and
the parts it is the sum of) with exactly one hidden part hides one more — its smallest visible
part, shown as ``">= 5"`` (it is at least the threshold, nothing more is said) — and this is
repeated until no group has exactly one hidden part (hiding one part can expose another group
sharing it). A group whose total is hidden reveals nothing by subtraction. A group of one part
(the total is that part) hides the total with it.

Roles: partners read reports through ``viewer`` and ``marketer`` tokens; only ``admin``
(the operator's staff) sees exact counts (:func:`sees_exact_counts`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from dispatcher.kernel.states import Role

K = TypeVar("K", bound=Hashable)
#: A count as shown: the number itself, or a text ("< 5", ">= 5") in its place.
Shown = int | str


def sees_exact_counts(role: Role) -> bool:
    """Whether a caller of ``role`` sees counts below the threshold (the operator's admins);
    every other role is partner-facing."""
    return role is Role.ADMIN


def below(threshold: int) -> str:
    return f"< {threshold}"


def at_least(threshold: int) -> str:
    return f">= {threshold}"


def suppress(
    cells: Mapping[K, int],
    groups: Sequence[tuple[K, Sequence[K]]],
    threshold: int,
) -> dict[K, Shown]:
    """``cells`` as shown to a partner: those below ``threshold`` (primary) and those hidden
    so no ``(total, parts)`` group gives a hidden part back by subtraction (secondary).
    ``threshold`` 1 or less shows every count."""
    if threshold <= 1:
        return dict(cells)
    primary = {key for key, n in cells.items() if n < threshold}
    secondary: set[K] = set()
    changed = True
    while changed:
        changed = False
        for total, parts in groups:
            hidden = primary | secondary
            if total in hidden:
                continue
            inside = [part for part in parts if part in hidden]
            if len(inside) != 1:
                continue
            visible = [part for part in parts if part not in hidden]
            # The smallest visible part, else (a group of one part) the total itself.
            extra = min(visible, key=lambda part: cells[part]) if visible else total
            secondary.add(extra)
            changed = True
    return {
        key: below(threshold) if key in primary else at_least(threshold) if key in secondary else n
        for key, n in cells.items()
    }
