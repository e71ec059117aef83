"""Never promise what won't come (R3, R4, R6): every bonus reply over every subscriber state.

Pure: :class:`Standing` (member, number active, this month's grant received, this month's
activation used) × the usable grants (active, pending, its deadline before or after the next
month) × the reply (``*111*3#``, a refused ``*555*00#``) × the language. Each reply says
"dial *555*00#" only when dialling it now would activate, names the next grant only when one
will come, and fits one USSD screen for its encoding.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.kernel.clock import load_zone
from dispatcher.kernel.states import GrantState, Language
from dispatcher.program import texts
from dispatcher.program.bonus_models import (
    Activation,
    ActivationResult,
    Balance,
    Grant,
    Standing,
)

ZONE = load_zone("Asia/Almaty")
NEXT_MONTH = datetime(2027, 1, 1, tzinfo=ZONE)  # now is in December 2026
NOW = datetime(2026, 12, 20, 7, tzinfo=UTC)


def fits_screen(text: str) -> bool:
    """R14: the text's screens (one, or pages with "0") each fit their encoding."""
    return all(texts.fits_screen(page) for page in texts.screens(text, Language.RU))


def grant(state: GrantState, units: int, deadline: datetime) -> Grant:
    granted = deadline - timedelta(days=30)
    active = state is GrantState.ACTIVE
    return Grant(
        id=1,
        msisdn="77010000001",
        month=date(2026, 12, 1),
        units=units,
        state=state,
        granted_at=granted,
        deadline_at=deadline,
        activated_at=NOW if active else None,
        activated_month=date(2026, 12, 1) if active else None,
        expires_at=NOW + timedelta(days=7) if active else None,
    )


standings = st.builds(
    Standing,
    active_number=st.booleans(),
    member=st.booleans(),
    month_granted=st.booleans(),
    activated_this_month=st.booleans(),
    next_month=st.just(NEXT_MONTH),
    units=st.sampled_from([500, 99_999]),
)
# A pending grant's deadline: before the next month begins (it lapses unactivated if this
# month's activation is used) or after it, to the worst-case minute.
deadlines = st.sampled_from(
    [NEXT_MONTH - timedelta(days=1, minutes=1), NEXT_MONTH + timedelta(days=22, minutes=59)]
)
languages = st.sampled_from(list(Language))


def activatable_now(standing: Standing, pending: Grant | None) -> bool:
    return pending is not None and standing.active_number and not standing.activated_this_month


@given(standings, st.booleans(), st.booleans(), deadlines, languages)
def test_balance_tells_what_is_true(
    standing: Standing, has_active: bool, has_pending: bool, deadline: datetime, lang: Language
) -> None:
    """*111*3#: the active units; else the pending ones — "dial *555*00#" only when that
    activates now, else from when (or that they lapse) or that the number must be active;
    else nothing, with the next grant's date only for a member who had this month's."""
    units = standing.units
    active = grant(GrantState.ACTIVE, units, deadline) if has_active else None
    pending = grant(GrantState.PENDING, units, deadline) if has_pending else None
    balance = Balance(active=active, pending=pending, standing=standing)
    shown = {lng: balance.text(lng, ZONE) for lng in Language}
    assert all(fits_screen(t) for t in shown.values()), shown
    en = shown[Language.EN]
    if active is not None:
        assert en.startswith(f"Bonus: {units} units until ")
        return
    assert ("dial *555*00#" in en) == activatable_now(standing, pending)
    if pending is not None and standing.activated_this_month:
        assert "activation is used" in en
        assert ("from 01.01.2027" in en) == (deadline > NEXT_MONTH)
        assert ("lapse" in en) == (deadline <= NEXT_MONTH)
    elif pending is not None and not standing.active_number:
        assert "not active" in en
    if pending is None:
        assert ("01.01.2027" in en) == (standing.member and standing.month_granted)
    assert shown[lang]


@given(
    standings,
    st.sampled_from(
        [Activation.ALREADY_ACTIVATED, Activation.NOTHING_TO_ACTIVATE, Activation.NOT_ACTIVE]
    ),
    st.booleans(),
    deadlines,
)
def test_refused_activation_tells_what_is_true(
    standing: Standing, outcome: Activation, has_pending: bool, deadline: datetime
) -> None:
    """A refused *555*00# never says "dial *555*00#": a blocked number is told it must be
    active; a used activation says when the pending units can be activated or that they
    lapse; nothing to activate names the next grant only when one will come."""
    pending = grant(GrantState.PENDING, standing.units, deadline) if has_pending else None
    if outcome is Activation.ALREADY_ACTIVATED:
        standing = Standing(
            standing.active_number,
            standing.member,
            standing.month_granted,
            True,  # an activation of this month exists: that is why it was refused
            standing.next_month,
            standing.units,
        )
    if outcome is Activation.NOTHING_TO_ACTIVATE:
        pending = None  # the ledger answers it only when no pending grant is in time
    result = ActivationResult(outcome, standing=standing, pending=pending)
    shown = {lng: result.text(lng, ZONE) for lng in Language}
    assert all(fits_screen(t) for t in shown.values()), shown
    en = shown[Language.EN]
    assert "dial *555*00#" not in en
    if outcome is Activation.NOT_ACTIVE:
        assert "not active" in en
    elif outcome is Activation.ALREADY_ACTIVATED and pending is not None:
        assert "activation is used" in en
        assert ("from 01.01.2027" in en) == (deadline > NEXT_MONTH)
    elif outcome is Activation.NOTHING_TO_ACTIVATE:
        assert ("01.01.2027" in en) == (standing.member and standing.month_granted)


@given(standings, deadlines, languages)
def test_grant_notice_tells_what_is_true(
    standing: Standing, deadline: datetime, lang: Language
) -> None:
    """The notice of a grant (monthly, or on return to active) says "ready: dial *555*00#"
    only when that activates it now; otherwise top up first, from when, or that it lapses."""
    en = standing.notice_text(deadline, Language.EN, ZONE)
    now_ok = standing.active_number and not standing.activated_this_month
    assert ("are ready: dial *555*00#" in en) == now_ok
    if standing.activated_this_month:
        assert "activation is used" in en
        assert ("from 01.01.2027" in en) == (deadline > NEXT_MONTH)
        assert ("lapse" in en) == (deadline <= NEXT_MONTH)
    elif not standing.active_number:
        assert "not active: top up" in en
    assert standing.notice_text(deadline, lang, ZONE)


@given(st.sampled_from([500, 99_999]))
def test_join_replies_fit_one_screen(units: int) -> None:
    """R14: the join replies (present, none this month, see the balance) fit one USSD screen
    in every language with worst-case values."""
    for key in ("joined", "joined_no_present", "joined_see_balance", "not_active"):
        for lang in Language:
            assert fits_screen(texts.text(key, lang, units=units, next="01.01.2027")), (key, lang)
