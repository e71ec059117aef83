"""What the bonus ledger returns: frozen records read from rows, and their subscriber texts.

Pure: no I/O. :mod:`dispatcher.program.bonus` builds these; the USSD desk renders them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.kernel.states import CreditState, GrantState, Language
from dispatcher.program import texts
from dispatcher.program.charging import ChargingBalance

LOCAL_FORMAT = "%d.%m.%Y %H:%M"
LOCAL_DATE = "%d.%m.%Y"


def local_text(instant: datetime, zone: ZoneInfo) -> str:
    """``instant`` as subscribers read it: local (Astana) day and time."""
    return instant.astimezone(zone).strftime(LOCAL_FORMAT)


def local_date(instant: datetime, zone: ZoneInfo) -> str:
    """The local (Astana) day of ``instant``: when a month begins, its time says nothing."""
    return instant.astimezone(zone).strftime(LOCAL_DATE)


@dataclass(frozen=True, slots=True)
class Standing:
    """What is true of the bonus of a number's *current owner* at one moment (R3, R4, R6,
    R12): every reply and notice about bonuses is written from it, so none promises what
    will not come."""

    active_number: bool  # status 'active': only then can a bonus be activated (R4, seed 000)
    member: bool  # an open SMART membership: the next month's grant comes on the 1st
    month_granted: bool  # the owner has this month's grant already (in any state)
    activated_this_month: bool  # this calendar month's one activation is used (R4)
    next_month: datetime  # when the next calendar month begins (Astana time)
    units: int  # the monthly grant's units (a setting)

    @classmethod
    def from_row(cls, row: Any, next_month: datetime, units: int) -> Standing:
        """From ``bonus.sql`` ``standing`` (no row: a number never seen, active, nothing)."""
        if row is None:
            return cls(True, False, False, False, next_month, units)
        return cls(
            active_number=row["status"] == "active",
            member=row["member"],
            month_granted=row["month_granted"],
            activated_this_month=row["activated_this_month"],
            next_month=next_month,
            units=units,
        )

    def pending_text(self, grant: Grant, language: Language | str | None, zone: ZoneInfo) -> str:
        """What a pending grant is worth now: activatable now, only from next month (this
        month's activation is used), never (it lapses before then), or not while the number
        is not active."""
        deadline = local_text(grant.deadline_at, zone)
        if self.activated_this_month:
            if grant.deadline_at > self.next_month:
                start = local_date(self.next_month, zone)
                return texts.text(
                    "pending_next_month",
                    language,
                    units=grant.units,
                    start=start,
                    deadline=deadline,
                )
            return texts.text("pending_lapses", language, units=grant.units, deadline=deadline)
        if not self.active_number:
            return texts.text("pending_inactive", language, units=grant.units, deadline=deadline)
        return texts.text("balance_pending", language, units=grant.units, deadline=deadline)

    def notice_text(
        self, deadline: datetime, language: Language | str | None, zone: ZoneInfo
    ) -> str:
        """The notice of a grant made now with ``deadline``: "dial *555*00#" only when that
        works now (R3, R4); otherwise after a top-up (a number not active), from when (this
        month's activation is used), or that the units lapse first."""
        units, until = self.units, local_text(deadline, zone)
        if self.activated_this_month and deadline > self.next_month:
            start = local_date(self.next_month, zone)
            return texts.text(
                "bonus_notice_next_month", language, units=units, start=start, deadline=until
            )
        if self.activated_this_month:
            return texts.text("bonus_notice_lapses", language, units=units, deadline=until)
        if not self.active_number:
            return texts.text("bonus_notice_inactive", language, units=units, deadline=until)
        return texts.text("bonus_notice", language, units=units)

    def nothing_text(self, key: str, language: Language | str | None, zone: ZoneInfo) -> str:
        """No usable bonus: ``key`` (``balance_none``, ``nothing_to_activate``) alone, or — for
        a member whose month's grant is already received — when the next one comes."""
        if self.member and self.month_granted:
            nxt = local_date(self.next_month, zone)
            return texts.text(f"{key}_next", language, units=self.units, next=nxt)
        return texts.text(key, language)


@dataclass(frozen=True, slots=True)
class Grant:
    """One month's bonus for one number (a ``bonus_grants`` row)."""

    id: int
    msisdn: str
    month: date
    units: int
    state: GrantState
    granted_at: datetime
    deadline_at: datetime
    activated_at: datetime | None = None
    activated_month: date | None = None
    expires_at: datetime | None = None
    closed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> Grant:
        """From a row holding at least the ``bonus_grants`` columns (extra ones ignored)."""
        data = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        return cls(**{**data, "state": GrantState(data["state"])})


@dataclass(frozen=True, slots=True)
class OwedCredit:
    """A credit to send to the charging system, leased to the sender."""

    grant_id: int
    msisdn: str
    units: int
    expires_at: datetime
    attempts: int

    @classmethod
    def from_row(cls, row: Any) -> OwedCredit:
        return cls(*(row[f.name] for f in dataclasses.fields(cls)))

    @classmethod
    def of(cls, grant: Grant, attempts: int) -> OwedCredit:
        assert grant.expires_at is not None, "only an active grant is credited"
        return cls(grant.id, grant.msisdn, grant.units, grant.expires_at, attempts)


@dataclass(frozen=True, slots=True)
class Removal:
    """A forfeit to deliver to the charging system (a ``bonus_forfeits`` row, leased)."""

    grant_id: int
    msisdn: str
    attempts: int

    @classmethod
    def from_row(cls, row: Any) -> Removal:
        return cls(row["grant_id"], row["msisdn"], row["attempts"])


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one charging call came to: ``ok``, or a transient or ``permanent`` failure."""

    grant_id: int
    ok: bool
    permanent: bool = False
    reference: str | None = None
    error: str | None = None


class Activation(enum.StrEnum):
    """The answers to ``*555*00#`` (R4)."""

    ACTIVATED = "activated"
    NOTHING_TO_ACTIVATE = "nothing_to_activate"
    ALREADY_ACTIVATED = "already_activated_this_month"
    NOT_ACTIVE = "number_not_active"  # R4, seed 000: bonuses apply only to an active number
    TRY_AGAIN = "try_again"


@dataclass(frozen=True, slots=True)
class ActivationResult:
    """Outcome of an activation; ``units`` and ``expires_at`` are set when activated. A
    refusal carries the ``standing`` and the oldest ``pending`` grant, so its text says what
    is true instead of only "no": when the pending units can be activated, when the next
    grant comes."""

    outcome: Activation
    grant_id: int | None = None
    units: int | None = None
    expires_at: datetime | None = None
    standing: Standing | None = None
    pending: Grant | None = None

    def text(self, language: Language | str | None, zone: ZoneInfo) -> str:
        if self.outcome is Activation.ACTIVATED:
            assert self.expires_at is not None
            expires = local_text(self.expires_at, zone)
            return texts.text("activated", language, units=self.units, expires=expires)
        standing = self.standing
        if self.outcome is Activation.NOT_ACTIVE:
            return texts.text("activation_not_active", language)
        already = self.outcome is Activation.ALREADY_ACTIVATED
        if standing is not None and already and self.pending is not None:
            return standing.pending_text(self.pending, language, zone)
        if standing is not None and self.outcome is Activation.NOTHING_TO_ACTIVATE:
            return standing.nothing_text("nothing_to_activate", language, zone)
        key = {
            Activation.NOTHING_TO_ACTIVATE: "nothing_to_activate",
            Activation.ALREADY_ACTIVATED: "already_activated",
            Activation.TRY_AGAIN: "try_again",
        }[self.outcome]
        return texts.text(key, language)


@dataclass(frozen=True, slots=True)
class Balance:
    """R6: the active bonus (units, expiry), the pending one (deadline), the main balance."""

    active: Grant | None = None
    pending: Grant | None = None
    charging: ChargingBalance | None = None
    credit_state: CreditState | None = None  # of the active grant's credit
    standing: Standing | None = None  # what the texts must not contradict (R3, R4)

    @property
    def remaining_units(self) -> int:
        """Units left of the active bonus: the charging system's figure when it gives one."""
        if self.active is None:
            return 0
        if self.charging is not None and self.charging.bonus_units is not None:
            return self.charging.bonus_units
        return self.active.units

    @property
    def main_balance(self) -> str | None:
        return self.charging.main_text() if self.charging is not None else None

    def text(self, language: Language | str | None, zone: ZoneInfo) -> str:
        if self.active is not None and self.active.expires_at is not None:
            expires = local_text(self.active.expires_at, zone)
            shown = texts.text("balance", language, units=self.remaining_units, expires=expires)
        elif self.pending is not None and self.standing is not None:
            shown = self.standing.pending_text(self.pending, language, zone)
        elif self.pending is not None:
            deadline = local_text(self.pending.deadline_at, zone)
            shown = texts.text(
                "balance_pending", language, units=self.pending.units, deadline=deadline
            )
        elif self.standing is not None:
            shown = self.standing.nothing_text("balance_none", language, zone)
        else:
            shown = texts.text("balance_none", language)
        if self.main_balance is not None:
            shown += texts.text("main_balance", language, amount=self.main_balance)
        return shown


@dataclass(frozen=True, slots=True)
class Forfeit:
    """What a forfeit took (R2, R9, R12): every unit of the pending grants, and active grants
    whose remainder only the charging system knows."""

    pending_units: int = 0
    active_grants: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Forfeit:
        return cls(row["pending_units"], row["active_grants"])

    def dnc_text(self, language: Language | str | None) -> str:
        """The reply to a member's 1204: marketing off, SMART left, and what was lost."""
        if self.active_grants:
            return texts.text("dnc_left_unused", language)
        if self.pending_units:
            return texts.text("dnc_left_lost", language, units=self.pending_units)
        return texts.text("dnc_left", language)


@dataclass(frozen=True, slots=True)
class GrantSlice:
    """What one msisdn slice of the monthly grant made."""

    granted: int
    notices: int  # derived from the grant rows (migration 0023): queued by the engine
    first_id: int | None = None  # the lowest and highest grant id it made
    last_id: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> GrantSlice:
        return cls(row["granted"], row["notices"], row["first_id"], row["last_id"])


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep closed (R4)."""

    cancelled: int = 0  # pending grants past their 30-day deadline
    expired: int = 0  # active grants past their 7 days


@dataclass(frozen=True, slots=True)
class ChargingRun:
    """What one pass of the charging outbox delivered."""

    credited: int = 0
    credit_failures: int = 0
    forfeited: int = 0
    forfeit_failures: int = 0
