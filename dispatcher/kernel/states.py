"""State machines and vocabularies, mirrored one-to-one by enum types in the schema.

``tests/test_schema.py`` checks that every enum here has exactly the labels of its
PostgreSQL type, so the two cannot drift apart.
"""

from __future__ import annotations

import enum

from smpp.receipts import IdFormat


class SubscriberStatus(enum.StrEnum):
    """Number life cycle (R12)."""

    ACTIVE = "active"
    OUTGOING_BLOCKED = "outgoing_blocked"
    BLOCKED = "blocked"
    RECYCLED = "recycled"


class Language(enum.StrEnum):
    KK = "kk"
    RU = "ru"
    EN = "en"


class Channel(enum.StrEnum):
    USSD = "ussd"
    SMS = "sms"
    IVR = "ivr"
    API = "api"
    CRM = "crm"
    SYSTEM = "system"


class ConsentEvent(enum.StrEnum):
    JOINED = "joined"
    LEFT = "left"
    DNC_BLOCKED = "dnc_blocked"
    DNC_LIFTED = "dnc_lifted"
    RECYCLED = "recycled"


class Role(enum.StrEnum):
    ADMIN = "admin"
    MARKETER = "marketer"
    VIEWER = "viewer"
    GATEWAY = "gateway"


class ContactKind(enum.StrEnum):
    INFO = "info"
    SURVEY = "survey"


class TrafficKind(enum.StrEnum):
    """What a message is to eligibility (``suppression_for``): a contact, or a service message."""

    INFO = "info"
    SURVEY = "survey"
    SERVICE = "service"


class CampaignScope(enum.StrEnum):
    SMART = "smart"
    OPERATOR = "operator"


class CampaignState(enum.StrEnum):
    """draft → scheduled → running ⇄ paused → completed | cancelled | expired."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class DeliveryState(enum.StrEnum):
    """queued → claimed → in_flight → submitted → delivered | undelivered | expired;
    failed (permanent SMPP error), unknown (written, fate unknown), suppressed (ineligible)."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    IN_FLIGHT = "in_flight"
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SUPPRESSED = "suppressed"


class SuppressionReason(enum.StrEnum):
    NOT_MEMBER = "not_member"
    DNC = "dnc"
    BLOCKED = "blocked"
    CAP_INFO = "cap_info"
    CAP_SURVEY = "cap_survey"
    OPTED_OUT = "opted_out"
    OUTSIDE_CAMPAIGN_WINDOW = "outside_campaign_window"
    CANCELLED = "cancelled"
    RECYCLED = "recycled"
    INVALID_TEXT = "invalid_text"
    HOLDOUT = "holdout"  # the campaign's control group: recorded, never sent (migration 0039)
    STALE = "stale"  # a triggered message past its max delay (migration 0041)


class ServiceKind(enum.StrEnum):
    JOIN_CONFIRMATION = "join_confirmation"
    LEAVE_CONFIRMATION = "leave_confirmation"
    DNC_CONFIRMATION = "dnc_confirmation"
    BONUS_NOTICE = "bonus_notice"
    SURVEY_QUESTION = "survey_question"
    SURVEY_THANKS = "survey_thanks"
    SURVEY_REPROMPT = "survey_reprompt"
    HELP = "help"


class ReceiptState(enum.StrEnum):
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    REJECTED = "rejected"
    DELETED = "deleted"
    UNKNOWN = "unknown"
    ACCEPTED = "accepted"
    ENROUTE = "enroute"


class SurveySessionState(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    TIMED_OUT = "timed_out"
    CLOSED = "closed"


class GrantState(enum.StrEnum):
    """pending → active → expired; pending → cancelled (deadline); pending|active → forfeited."""

    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FORFEITED = "forfeited"


class CreditState(enum.StrEnum):
    PENDING = "pending"
    CREDITED = "credited"
    FAILED = "failed"


class OptOutKind(enum.StrEnum):
    """What an opt-out was (issue 15, migration 0040): a STOP by SMS (R2), a 1204 by any
    channel (R9), a leave by USSD (R2)."""

    STOP = "stop"
    DNC = "dnc"
    LEAVE = "leave"


#: PostgreSQL enum type name → Python enum, for the schema mirror test.
SCHEMA_ENUMS: dict[str, type[enum.StrEnum]] = {
    "subscriber_status": SubscriberStatus,
    "language": Language,
    "channel": Channel,
    "consent_event": ConsentEvent,
    "role": Role,
    "contact_kind": ContactKind,
    "traffic_kind": TrafficKind,
    "campaign_scope": CampaignScope,
    "campaign_state": CampaignState,
    "delivery_state": DeliveryState,
    "suppression_reason": SuppressionReason,
    "service_kind": ServiceKind,
    "receipt_state": ReceiptState,
    "survey_session_state": SurveySessionState,
    "grant_state": GrantState,
    "credit_state": CreditState,
    "message_id_format": IdFormat,  # the SMSC's habit (issue 11); defined with the protocol
    "opt_out_kind": OptOutKind,
}
