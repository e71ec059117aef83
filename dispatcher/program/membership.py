"""Membership, consent, the 1204 block and the number life cycle (R1, R2, R9, R10, R12).

Each change runs in one transaction that first locks the subscriber row, writes the state
change, its consent-ledger entry (what, when, channel, evidence) and its consequences —
queued messages suppressed, bonuses forfeited, a confirmation queued — so either all of it
is committed or none. Methods take the caller's connection *inside* a transaction, so the
inbound path can commit an MO message and its effect together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from campaigns.languages import pick_language
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import (
    CampaignScope,
    Channel,
    ConsentEvent,
    Language,
    OptOutKind,
    ServiceKind,
    SubscriberStatus,
    SuppressionReason,
)
from dispatcher.program import optouts, texts
from dispatcher.program.bonus_models import Forfeit
from dispatcher.program.outbox import ServiceMessage, enqueue
from dispatcher.settings import Settings

#: What joining SMART consents to (R1, seed 002): partner SMS, USSD and calls, surveys — by
#: SMS, as this service runs them (R13), and by calls (an IVR reserving through the contacts
#: API) — and the processing of personal data. A join after a 1204 lifts the block for exactly
#: these scopes (R9), recorded with the ``dnc_lifted`` entry; operator telemarketing is not
#: among them.
JOIN_SCOPES = (
    "partner_sms",
    "partner_ussd",
    "partner_calls",
    "survey_sms",
    "survey_calls",
    "personal_data",
)
_NOT_CONFIRMATIONS = [
    ServiceKind.BONUS_NOTICE,
    ServiceKind.SURVEY_QUESTION,
    ServiceKind.SURVEY_REPROMPT,
    ServiceKind.SURVEY_THANKS,
    ServiceKind.HELP,
]
_ALL_SCOPES = [CampaignScope.SMART.value, CampaignScope.OPERATOR.value]
#: Statuses in which a member receives the monthly grant (R3, R12: the grant statement's rule).
_GRANTED_STATUSES = (SubscriberStatus.ACTIVE, SubscriberStatus.OUTGOING_BLOCKED)
#: Program texts exist in every language (texts.py), so each one is available.
_LANGUAGES = tuple(Language)


class ProgramSQL(SqlFile, domain="program"):
    ensure_subscriber: str
    lock_subscriber: str
    get_subscriber: str
    open_membership: str
    insert_membership: str
    close_membership: str
    append_consent: str
    insert_dnc: str
    delete_dnc: str
    suppress_deliveries: str
    suppress_service_messages: str
    close_open_surveys: str
    set_status: str
    start_new_owner: str
    dnc_since: str
    set_tariff: str
    choose_language: str
    hint_language: str
    record_event: str
    memberships_of: str
    dnc_of: str
    counters_of: str
    grants_of: str
    consent_of: str


class BonusHooks(Protocol):
    """What membership needs of the bonus ledger, inside its transaction (R3, R2, R12)."""

    async def grant_on_join(
        self, conn: asyncpg.Connection, msisdn: str, now: datetime
    ) -> int | None: ...

    async def join_text(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        granted: bool,
        language: Language,
        now: datetime,
    ) -> str:
        """The join reply, true for this owner now (R3: the present, or when the next comes)."""
        ...

    async def grant_on_return(
        self, conn: asyncpg.Connection, msisdn: str, language: Language, now: datetime
    ) -> int | None:
        """R3: the month's grant for a member whose number is active again, if it has none."""
        ...

    async def forfeit(self, conn: asyncpg.Connection, msisdn: str, now: datetime) -> Forfeit:
        """Pending and active grants lost; returns what was lost."""
        ...


@dataclass(frozen=True, slots=True)
class Subscriber:
    msisdn: str
    status: SubscriberStatus
    language: Language | None
    tariff: str | None
    owner_since: datetime | None
    owner_epoch: int = 0  # R12: which owner of the number (0: the first we know of)
    language_chosen_at: datetime | None = None  # R14: when the subscriber chose it (*555#)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Subscriber:
        language = row["language"]
        return cls(
            msisdn=row["msisdn"],
            status=SubscriberStatus(row["status"]),
            language=Language(language) if language else None,
            tariff=row["tariff"],
            owner_since=row["owner_since"],
            owner_epoch=row["owner_epoch"],
            language_chosen_at=row.get("language_chosen_at"),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of a membership change: what happened, and the reply to show."""

    changed: bool
    text: str
    grant_id: int | None = None
    dnc_lifted: bool = False


class Membership:
    """The only writer of memberships, consent_ledger and dnc_blocks, and of opt_outs (through
    :func:`dispatcher.program.optouts.record`, in the leave's or the 1204's transaction)."""

    def __init__(self, settings: Settings, bonus: BonusHooks) -> None:
        self._settings = settings
        self._bonus = bonus

    def language(self, subscriber: Subscriber | None) -> Language:
        """The subscriber's language, else the configured default (R14)."""
        return self.language_named(None if subscriber is None else subscriber.language)

    def language_named(self, preferred: str | None) -> Language:
        """R14: the language to answer in when the number's is ``preferred`` (or unknown)."""
        return Language(pick_language(_LANGUAGES, preferred, self._settings.default_language))

    async def language_of(self, db: asyncpg.Pool | asyncpg.Connection, msisdn: str) -> Language:
        """The subscriber's language, or the configured default for an unknown number."""
        row = await db.fetchrow(ProgramSQL.get_subscriber, msisdn)
        return self.language(None if row is None else Subscriber.from_row(row))

    @property
    def settings(self) -> Settings:
        return self._settings

    async def choose_language(
        self, db: asyncpg.Pool | asyncpg.Connection, msisdn: str, language: Language, now: datetime
    ) -> None:
        """R14: the subscriber chose ``language`` (the *555# menu); it is theirs from now on:
        a gateway hint never replaces it, nor does a subscriber import."""
        await db.execute(ProgramSQL.choose_language, msisdn, language, now)

    async def hint_language(
        self, db: asyncpg.Pool | asyncpg.Connection, msisdn: str, language: Language, now: datetime
    ) -> None:
        """R14: the USSD gateway's language hint, used when no language is known for the
        number (first contact, a new owner); a known language, chosen or imported, stays."""
        await db.execute(ProgramSQL.hint_language, msisdn, language, now)

    async def lock(
        self, conn: asyncpg.Connection, msisdn: str, language: Language | None = None
    ) -> Subscriber:
        """The subscriber row, locked for this transaction; created (active) if unknown."""
        await conn.execute(ProgramSQL.ensure_subscriber, msisdn, language)
        row = await conn.fetchrow(ProgramSQL.lock_subscriber, msisdn)
        return Subscriber.from_row(row)

    async def join(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        channel: Channel,
        evidence: Mapping[str, Any],
        now: datetime,
    ) -> Change:
        """R1 join; idempotent for a member. R9: a join after a 1204 lifts the block for SMART
        partner messages and surveys only (the ``dnc_lifted`` entry names the scopes); the
        1204 row stays, so operator telemarketing remains blocked (eligibility, migration
        0014). The reply says what is true of the bonus (R3): the present, or when the next
        grant comes when this month's was already received."""
        sub = await self.lock(conn, msisdn)
        lang = self.language(sub)
        if sub.status is not SubscriberStatus.ACTIVE:
            return Change(False, texts.text("not_active", lang))
        if await conn.fetchrow(ProgramSQL.open_membership, msisdn) is not None:
            return Change(False, texts.text("already_member", lang))
        membership_id = await conn.fetchval(ProgramSQL.insert_membership, msisdn, now, channel)
        await self._consent(conn, msisdn, ConsentEvent.JOINED, JOIN_SCOPES, channel, evidence, now)
        lifted = await conn.fetchval(ProgramSQL.dnc_since, msisdn) is not None
        if lifted:
            await self._consent(
                conn, msisdn, ConsentEvent.DNC_LIFTED, JOIN_SCOPES, channel, evidence, now
            )
        grant_id = await self._bonus.grant_on_join(conn, msisdn, now)
        reply = await self._bonus.join_text(conn, msisdn, grant_id is not None, lang, now)
        await self._confirm(
            conn, msisdn, ServiceKind.JOIN_CONFIRMATION, reply, f"join:{membership_id}"
        )
        return Change(True, reply, grant_id=grant_id, dnc_lifted=lifted)

    async def leave(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        channel: Channel,
        evidence: Mapping[str, Any],
        now: datetime,
        reason: str,
    ) -> Change:
        """R2 leave: consent withdrawn, bonuses forfeited, queued SMART messages suppressed;
        the opt-out attributed (issue 15: a STOP by SMS, else a leave). Nothing for a number
        that is no member (a repeated STOP)."""
        sub = await self.lock(conn, msisdn)
        lang = self.language(sub)
        if await self._end_membership(conn, sub, channel, evidence, now, reason) is None:
            return Change(False, texts.text("not_member", lang))
        await self._opt_out(conn, msisdn, optouts.leave_kind(channel), channel, now)
        reply = texts.text("left", lang)
        await self._confirm(
            conn, msisdn, ServiceKind.LEAVE_CONFIRMATION, reply, f"leave:{msisdn}:{now.isoformat()}"
        )
        return Change(True, reply)

    async def dnc_block(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        channel: Channel,
        evidence: Mapping[str, Any],
        now: datetime,
    ) -> Change:
        """R9: 1204 ends all telemarketing to the number; a member also leaves SMART (R2) and
        is told so, with the bonus units lost. A repeat by a number already blocked and not a
        member changes nothing; a member who joined after an earlier 1204 is blocked again
        from now (the block's time moves, so the SMART lifting ends with the membership)."""
        sub = await self.lock(conn, msisdn)
        lang = self.language(sub)
        member = await self._is_member(conn, msisdn)
        if not member and await conn.fetchval(ProgramSQL.dnc_since, msisdn) is not None:
            return Change(False, texts.text("dnc_blocked", lang))
        await conn.execute(ProgramSQL.insert_dnc, msisdn, now, channel, dict(evidence))
        await self._opt_out(conn, msisdn, OptOutKind.DNC, channel, now)
        await self._consent(conn, msisdn, ConsentEvent.DNC_BLOCKED, (), channel, evidence, now)
        await self._suppress(conn, msisdn, SuppressionReason.DNC, now, _ALL_SCOPES)
        lost = await self._end_membership(conn, sub, channel, evidence, now, "dnc")
        reply = texts.text("dnc_blocked", lang) if lost is None else lost.dnc_text(lang)
        await self._confirm(
            conn, msisdn, ServiceKind.DNC_CONFIRMATION, reply, f"dnc:{msisdn}:{now.isoformat()}"
        )
        return Change(True, reply)

    async def set_status(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        status: SubscriberStatus,
        evidence: Mapping[str, Any],
        now: datetime,
    ) -> bool:
        """R12 life cycle. Recycling ends everything of the old owner; blocks only mark the
        number (eligibility at dispatch time keeps messages from a blocked number, and a
        top-up that reactivates it lets them go again). R3: a member whose number can receive
        again and who has no grant for this month (it was blocked when the month's grant ran)
        receives it now."""
        sub = await self.lock(conn, msisdn)
        if await conn.fetchval(ProgramSQL.set_status, msisdn, status, now) is None:
            return False
        if status is SubscriberStatus.RECYCLED:
            await self._recycle(conn, sub, evidence, now)
        elif status in _GRANTED_STATUSES:
            await self.returned(conn, msisdn, now)
        return True

    async def returned(self, conn: asyncpg.Connection, msisdn: str, now: datetime) -> None:
        """R3: the number can receive again (its status just became active or outgoing-
        blocked): a member without this month's grant receives it now, with its notice."""
        sub = await self.lock(conn, msisdn)
        if await self._is_member(conn, msisdn):
            await self._bonus.grant_on_return(conn, msisdn, self.language(sub), now)

    async def _opt_out(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        kind: OptOutKind,
        channel: Channel,
        now: datetime,
    ) -> None:
        """Issue 15: the opt-out, attributed to the campaign that last reached the number
        within the attribution span (one setting with the inbox's)."""
        span = timedelta(days=self._settings.inbox_attribution_days)
        await optouts.record(conn, msisdn, kind, channel, now, span)

    async def _is_member(self, conn: asyncpg.Connection, msisdn: str) -> bool:
        return await conn.fetchrow(ProgramSQL.open_membership, msisdn) is not None

    async def _recycle(
        self,
        conn: asyncpg.Connection,
        sub: Subscriber,
        evidence: Mapping[str, Any],
        now: datetime,
    ) -> None:
        msisdn = sub.msisdn
        await self._end_membership(conn, sub, Channel.CRM, evidence, now, "recycled")
        await self._bonus.forfeit(conn, msisdn, now)  # no-op when membership already did
        await conn.execute(ProgramSQL.delete_dnc, msisdn)
        await self._suppress(conn, msisdn, SuppressionReason.RECYCLED, now, _ALL_SCOPES)
        await self._consent(conn, msisdn, ConsentEvent.RECYCLED, (), Channel.CRM, evidence, now)
        await conn.execute(ProgramSQL.start_new_owner, msisdn, now)

    async def _end_membership(
        self,
        conn: asyncpg.Connection,
        sub: Subscriber,
        channel: Channel,
        evidence: Mapping[str, Any],
        now: datetime,
        reason: str,
    ) -> Forfeit | None:
        """Close the open membership (R2); returns the bonus lost, None if there was no
        membership."""
        msisdn = sub.msisdn
        if await conn.fetchval(ProgramSQL.close_membership, msisdn, now, channel, reason) is None:
            return None
        await self._consent(conn, msisdn, ConsentEvent.LEFT, (), channel, evidence, now)
        lost = await self._bonus.forfeit(conn, msisdn, now)
        await self._suppress(
            conn, msisdn, SuppressionReason.OPTED_OUT, now, [CampaignScope.SMART.value]
        )
        return lost

    async def _suppress(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        reason: SuppressionReason,
        now: datetime,
        scopes: list[str],
    ) -> None:
        await conn.execute(ProgramSQL.suppress_deliveries, msisdn, reason, now, scopes)
        await conn.execute(
            ProgramSQL.suppress_service_messages,
            msisdn,
            reason,
            now,
            [k.value for k in _NOT_CONFIRMATIONS],
        )
        await conn.execute(ProgramSQL.close_open_surveys, msisdn, now)

    async def _consent(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        event: ConsentEvent,
        scopes: tuple[str, ...],
        channel: Channel,
        evidence: Mapping[str, Any],
        now: datetime,
    ) -> None:
        await conn.execute(
            ProgramSQL.append_consent,
            msisdn,
            event,
            list(scopes),
            channel,
            dict(evidence),
            now,
        )

    async def _confirm(
        self, conn: asyncpg.Connection, msisdn: str, kind: ServiceKind, body: str, key: str
    ) -> None:
        await enqueue(conn, ServiceMessage(msisdn, kind, body, dedupe_key=key))
