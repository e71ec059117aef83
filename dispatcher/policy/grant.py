"""How the live replicas of one SMSC account divide its grant (submits/s) and its binds.

Each live replica publishes, in PostgreSQL, the rate it sends at. One replica at a time (under
the account's lock) computes its next rate with :func:`next_share` from what the others
published, so the published rates never sum past the grant; it lowers its own rate *before*
publishing a lower figure and raises it only *after* a higher figure is committed, so what
the replicas actually send at never sums past what they published. A replica that joins
starts at 0 and takes its part as the others give theirs up; a replica that dies (its node
lock is free) is forgotten, and the others take its part at their next beat.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Member:
    """A live replica of the account: its node id, when it joined (order), its published rate."""

    node: str
    joined: int
    share: float


def senders(members: list[Member], binds: int) -> list[str]:
    """The replicas that hold one of the account's ``binds`` binds: the earliest joined."""
    ranked = sorted(members, key=lambda m: (m.joined, m.node))
    return [m.node for m in ranked[:binds]]


def fair_share(grant: float, binds: int, members: list[Member], me: str) -> float:
    """What ``me`` would send at once every replica has caught up: an equal part of the grant
    among the replicas that hold a bind (0 for a replica beyond the account's binds)."""
    holding = senders(members, binds)
    return grant / len(holding) if me in holding else 0.0


def next_share(grant: float, binds: int, members: list[Member], me: str) -> float:
    """``me``'s next rate: its fair share, but never more than the grant less what the others
    published (they have not yet given up their part)."""
    others = sum(m.share for m in members if m.node != me)
    return max(0.0, min(fair_share(grant, binds, members, me), grant - others))


def pacing_burst(account_burst: int, grant: float, rate: float) -> int:
    """The burst a replica sending at ``rate`` paces with: half of its part of the account's
    burst (its rate's part of the grant), at least 1.

    The pacer needs a burst above 1 to catch up when it wakes late (timers fire on the
    loop's next turn): with 1, every late wake-up is lost (6-20 % of the rate). The other half
    is left for the way to the SMSC: submits written apart can reach it closer together (a
    busy SMSC or host reads them in clumps), and the SMSC holds the account to the grant plus
    its burst. If the replicas used the whole burst, any bunching at all could be throttled,
    and a throttle halves a bind's rate for seconds; with half, the submits of a sliver of
    ``account_burst / (2 * grant)`` seconds (25 ms at the default twentieth) may bunch up."""
    if grant <= 0 or rate <= 0:
        return 1
    return max(1, int(account_burst * min(rate, grant) / grant / 2))
