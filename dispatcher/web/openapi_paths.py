"""The operations of the OpenAPI document, keyed by ``(METHOD, path template)``.

Security is not written here: :mod:`dispatcher.web.openapi` derives it from each handler's
``@requires`` / ``@public`` declaration, so the document cannot disagree with the server.
"""

from __future__ import annotations

from typing import Any

from campaigns.models import SEGMENTS
from campaigns.triggers import EVENT_ALIASES, NUMBER_OPS, TRIGGER_EVENTS
from dispatcher.engine.forecast import FORECAST_REASONS
from dispatcher.kernel.audit import MAX_PAGE as AUDIT_MAX_PAGE
from dispatcher.kernel.audit import AuditAction
from dispatcher.kernel.states import (
    CampaignScope,
    CampaignState,
    ContactKind,
    DeliveryState,
    Language,
    OptOutKind,
    SubscriberStatus,
    SuppressionReason,
)
from dispatcher.policy.hours import DAY_NAMES
from dispatcher.policy.status import Phrase, Reason
from dispatcher.program.why import ANSWERS as WHY_ANSWERS
from dispatcher.program.why import MAX_PAGE as WHY_MAX_PAGE
from dispatcher.program.why import WAITING_REASONS

#: The example number: +7 799 is a zone code of Kazakhstan's +7 7xx allocation that no
#: operator holds (no fictional range is published for Kazakhstan), so an example copied
#: into a request reaches nobody: the service itself refuses it as an invalid number.
EXAMPLE_MSISDN = "77990001234"

Schema = dict[str, Any]
INT64_MAX = (1 << 63) - 1
CAMPAIGN_ACTIONS = ("start", "pause", "resume", "cancel")


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def _enum(values: Any) -> Schema:
    return {"type": "string", "enum": [v.value for v in values]}


def _enum_strings(values: tuple[str, ...]) -> Schema:
    return {"type": "string", "enum": list(values)}


#: A count in a report: the number, or for a partner-facing caller a text in its place
#: ("< 5" below the minimum cell size, ">= 5" hidden against differencing; R11).
COUNT: Schema = {
    "oneOf": [
        {"type": "integer"},
        {"type": "string", "pattern": "^(< |>= )[0-9]+$", "example": "< 5"},
    ]
}


def _counts(keys: Any) -> Schema:
    return _obj({k.value: COUNT for k in keys}, tuple(k.value for k in keys))


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
TIME = _nullable({"type": "string", "format": "date-time"})
LANGUAGE_TEXTS: Schema = {
    "type": "object",
    "properties": {lang.value: {"type": "string", "minLength": 1} for lang in Language},
    "additionalProperties": False,
    "minProperties": 1,
}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        {
            "error": _obj(
                {"code": STRING, "message": STRING, "details": {"nullable": True}},
                ("code", "message", "details"),
            )
        },
        ("error",),
    ),
    "Health": _obj({"status": {"type": "string", "enum": ["ok"]}}, ("status",)),
    "Readiness": _obj(
        {
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "error": _obj(
                {"code": STRING, "message": STRING, "details": {"nullable": True}},
                ("code", "message", "details"),
            ),
        },
        ("status", "checks"),
    ),
    "Caller": _obj({"name": STRING, "role": STRING}, ("name", "role")),
    "Token": _obj(
        {
            "id": INTEGER,
            "name": STRING,
            "role": STRING,
            "created_at": TIME,
            "expires_at": TIME,
            "last_used_at": TIME,
            "revoked_at": TIME,
        },
        ("id", "name", "role", "expires_at", "last_used_at", "revoked_at"),
    ),
    "UssdRequest": _obj(
        {
            "msisdn": {"type": "string", "maxLength": 32, "example": EXAMPLE_MSISDN},
            "session_id": {"type": "string", "minLength": 1, "maxLength": 100},
            "input": {"type": "string", "minLength": 1, "maxLength": 182, "example": "*555*1#"},
            "language": {
                "type": "string",
                "maxLength": 35,
                "example": "kk",
                "description": "The gateway's language hint for the subscriber (kk, ru, en; "
                "ISO 639-2 or a locale such as ru-RU also read). Used when the number has no "
                "language yet (first contact, a new owner); never over one the subscriber "
                "chose in the *555# menu. Another value is ignored.",
            },
        },
        ("msisdn", "session_id", "input"),
    ),
    "UssdReply": _obj({"text": STRING, "end": {"type": "boolean"}}, ("text", "end")),
    "Event": _obj(
        {
            "type": {
                "type": "string",
                "enum": ["dnc_optout", "subscriber_status", "status", "tariff_change", "top_up"],
                "description": "status is another name of subscriber_status; top_up carries "
                "amount. An applied event also queues the message of every running campaign "
                "it triggers (see the campaign's trigger)",
            },
            "msisdn": {"type": "string", "maxLength": 32},
            "event_id": {"type": "string", "maxLength": 100},
            "status": _enum(SubscriberStatus),
            "tariff": {"type": "string", "maxLength": 100},
            "amount": {
                "oneOf": [
                    {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 10**12},
                    {"type": "string", "pattern": "^[0-9]{1,13}(\\.[0-9]{1,6})?$"},
                ],
                "example": 1500,
                "description": "top_up: the amount topped up, a positive decimal without currency",
            },
            "occurred_at": {"type": "string", "format": "date-time"},
        },
        ("type", "msisdn"),
    ),
    "ContactReserve": _obj(
        {
            "msisdn": {"type": "string", "maxLength": 32},
            "kind": {"type": "string", "enum": ["info", "survey"]},
            "scope": {"type": "string", "enum": ["smart", "operator"]},
            "channel": {"type": "string", "enum": ["ussd", "sms", "ivr", "api", "crm", "system"]},
            "reference": {
                "type": "string",
                "maxLength": 100,
                "description": "the caller's id for the contact: a repeat for the same "
                "number, kind and month gets the first answer; for another, 409",
            },
        },
        ("msisdn", "kind"),
    ),
    "ContactReservation": _obj(
        {
            "granted": {"type": "boolean"},
            "reason": _nullable(
                {
                    "type": "string",
                    "enum": [
                        "outside_window",
                        "not_member",
                        "dnc",
                        "blocked",
                        "recycled",
                        "cap_info",
                        "cap_survey",
                    ],
                }
            ),
            "reservation_id": _nullable(INTEGER),
            "month": _nullable(STRING),
            "remaining": _nullable(INTEGER),
        },
        ("granted", "reason", "reservation_id", "month", "remaining"),
    ),
    "EventResult": _obj(
        {
            "status": {"type": "string", "enum": ["applied", "duplicate"]},
            "triggered": {
                "type": "integer",
                "description": "applied: triggered campaign messages this event queued (one "
                "per number and campaign, ever)",
            },
        },
        ("status",),
    ),
    "Trigger": _obj(
        {
            "event": {"type": "string", "enum": [*TRIGGER_EVENTS, *EVENT_ALIASES]},
            "condition": _nullable(
                _obj(
                    {
                        "field": {
                            "type": "string",
                            "enum": sorted(
                                {f for fields in TRIGGER_EVENTS.values() for f in fields}
                            ),
                        },
                        "op": {"type": "string", "enum": list(NUMBER_OPS)},
                        "value": {
                            "description": "a number (amount) or a text (tariff, status); "
                            "for in, a list of 1..50 of them"
                        },
                    },
                    ("field", "op", "value"),
                )
                | {
                    "description": "one comparison of the event's field with a constant; "
                    "tariff and status take =, != and in only; null or absent: every event"
                }
            ),
            "max_delay": {
                "type": "string",
                "example": "PT12H",
                "description": "ISO 8601 duration, PT1M..P7D (default PT24H): a message "
                "waiting (for the send window) longer than this after its event is dropped "
                "as stale",
            },
        },
        ("event",),
    )
    | {
        "description": "A triggered campaign (issue 15): no audience (an upload is 409); while "
        "running, each recorded event of this type meeting the condition queues its message "
        "for the event's number, once per number; caps, membership, 1204 and the send window "
        "apply at sending as for any campaign. It runs until its end or a cancel."
    },
    "Subscriber": _obj(
        {
            "msisdn": STRING,
            "status": _enum(SubscriberStatus),
            "language": _nullable(_enum(Language)),
            "language_chosen_at": {
                **TIME,
                "description": "when the subscriber chose the language in the *555# menu "
                "(null: the language is imported, hinted by the gateway, or unknown)",
            },
            "tariff": _nullable(STRING),
            "owner_since": TIME,
            "member": {"type": "boolean"},
            "memberships": {"type": "array", "items": {"type": "object"}},
            "dnc": _nullable({"type": "object"}),
            "counters": _obj(
                {
                    "month": STRING,
                    "info": INTEGER,
                    "survey": INTEGER,
                    "info_cap": INTEGER,
                    "survey_cap": INTEGER,
                },
                ("month", "info", "survey", "info_cap", "survey_cap"),
            ),
            "grants": {"type": "array", "items": {"type": "object"}},
            "consent": {"type": "array", "items": {"type": "object"}},
        },
        ("msisdn", "status", "member", "memberships", "dnc", "counters", "grants", "consent"),
    ),
    "NumberInfo": _obj(
        {
            "msisdn": STRING,
            "country": _nullable(STRING),
            "country_name": STRING,
            "type": {
                "type": "string",
                "description": "mobile, fixed-line, toll-free, premium-rate, … or unknown",
            },
            "home_mobile": {
                "type": "boolean",
                "description": "a mobile number of the home region (one the program can text)",
            },
            "description": {"type": "string", "example": "a mobile number of Russia"},
        },
        ("msisdn", "country", "type", "home_mobile", "description"),
    ),
    "SubscriberMessage": _obj(
        {
            "source": {
                "type": "string",
                "enum": ["campaign", "service"],
                "description": "a campaign delivery, or a program service message",
            },
            "id": INTEGER,
            "msisdn": STRING,
            "campaign": _nullable(
                _obj(
                    {
                        "id": INTEGER,
                        "name": STRING,
                        "partner": STRING,
                        "kind": _enum(ContactKind),
                        "state": _enum(CampaignState),
                    }
                )
            ),
            "kind": {
                "type": "string",
                "description": "info or survey (campaign), or the service kind "
                "(join_confirmation, bonus_notice, survey_question, …)",
            },
            "state": _enum(DeliveryState),
            "suppressed": _nullable(_enum(SuppressionReason)),
            "parts": _nullable(INTEGER),
            "parts_delivered": INTEGER,
            "attempts": INTEGER,
            "language": _nullable(_enum(Language)),
            "claimed_at": TIME,
            "submitted_at": TIME,
            "finished_at": TIME,
            "not_before": TIME,
            "submit_status": _nullable({**INTEGER, "description": "last SMPP command_status"}),
            "error": _nullable(STRING),
            "receipt": _nullable(
                _obj(
                    {
                        "state": STRING,
                        "at": TIME,
                        "error_code": _nullable({**STRING, "description": "the SMSC's err:"}),
                    },
                    ("state", "at", "error_code"),
                )
            ),
        },
        ("source", "id", "campaign", "kind", "state", "suppressed", "parts", "receipt"),
    ),
    "SubscriberMessages": _obj(
        {
            "msisdn": STRING,
            "number": ref("NumberInfo"),
            "messages": {"type": "array", "items": ref("SubscriberMessage")},
            "limit": INTEGER,
            "offset": INTEGER,
            "next_offset": _nullable(INTEGER),
        },
        ("msisdn", "number", "messages", "limit", "offset", "next_offset"),
    ),
    "WhyAnswer": _obj(
        {
            "msisdn": STRING,
            "number": ref("NumberInfo"),
            "campaign": _obj(
                {
                    "id": INTEGER,
                    "name": STRING,
                    "partner": STRING,
                    "kind": _enum(ContactKind),
                    "scope": _enum(CampaignScope),
                    "state": _enum(CampaignState),
                    "start_at": TIME,
                }
            ),
            "answer": {"type": "string", "enum": list(WHY_ANSWERS)},
            "summary": {"type": "string", "description": "the answer in plain words"},
            "details": {
                "type": "object",
                "description": "rejected_at_upload: rejections [{upload_no, line, value, "
                "reason, uploaded_at}]; suppressed: rule, at, and at a cap month, cap, used, "
                "used_by [campaigns], reservations [other channels]; waiting: reason ("
                + ", ".join(WAITING_REASONS)
                + "), until, service_ahead, ahead_in_campaign; sent/failed/unknown: outcome, "
                "submitted_at, receipt_at, error_code, parts, parts_delivered",
            },
            "message": _nullable(ref("SubscriberMessage")),
        },
        ("msisdn", "number", "campaign", "answer", "summary", "details", "message"),
    ),
    "Rejected": _obj(
        {"line": INTEGER, "value": STRING, "reason": STRING}, ("line", "value", "reason")
    ),
    "ImportResult": _obj(
        {
            "inserted": INTEGER,
            "updated": INTEGER,
            "unchanged": INTEGER,
            "recycled": INTEGER,
            "duplicates": INTEGER,
            "rejected": {"type": "array", "items": ref("Rejected")},
            "rejected_total": INTEGER,
            "lines": INTEGER,
        },
        ("inserted", "updated", "unchanged", "duplicates", "rejected", "rejected_total"),
    ),
    "Survey": _obj(
        {
            "questions": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10,
                "items": _obj(
                    {
                        "texts": LANGUAGE_TEXTS,
                        "options": {
                            "type": "array",
                            "minItems": 2,
                            "maxItems": 9,
                            "items": LANGUAGE_TEXTS,
                        },
                    },
                    ("texts", "options"),
                ),
            },
            "thanks": LANGUAGE_TEXTS,
            "timeout_hours": {
                "type": "number",
                "exclusiveMinimum": True,
                "minimum": 0,
                "maximum": 336,
            },
        },
        ("questions", "thanks"),
    ),
    "CampaignCreate": _obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "partner": {"type": "string", "maxLength": 200},
            "kind": _enum(ContactKind),
            "scope": _enum(CampaignScope),
            "texts": {
                **LANGUAGE_TEXTS,
                "description": "a text per language; each language of the SMARTD_REQUIRED_"
                "LANGUAGES setting (default kk: R15, advertising in Kazakh) must be present, "
                "for a survey in its questions, options and thank-you, else a 400 naming it",
            },
            "variables": {"type": "array", "items": {"type": "string", "pattern": "^[a-z_]\\w*$"}},
            "variable_defaults": {
                "type": "object",
                "additionalProperties": {"type": "string", "maxLength": 200},
                "description": 'what a blank audience cell of a variable takes; "" makes '
                "the variable optional (it renders empty); a blank cell of a variable without "
                "a default rejects its row",
            },
            "priority": {"type": "integer", "minimum": -32768, "maximum": 32767},
            "apply_caps": {
                "type": "boolean",
                "enum": [True],
                "deprecated": True,
                "description": "R7: caps cannot be switched off; only true is accepted "
                "(false is a 400), and the database refuses an uncapped campaign",
            },
            "survey": ref("Survey"),
            "start_at": {"type": "string", "format": "date-time"},
            "end_at": {"type": "string", "format": "date-time"},
            "variants": {
                "type": "array",
                "maxItems": 4,
                "items": ref("Variant"),
                "description": "issue 15: up to 4 text variants of an info campaign, each with "
                "every required language; their percents split the audience left after the "
                "holdout and sum to 100. With variants, texts (if given) must be variant A's. "
                "A 400 names the field, e.g. variants[1].texts → {kk: ...}",
            },
            "holdout_percent": {
                "type": "integer",
                "minimum": 0,
                "maximum": 50,
                "description": "the control group: this percent of the audience, chosen from "
                "md5(campaign id:msisdn) at upload, is recorded and never sent (no cap slot)",
            },
            "trigger": {"allOf": [ref("Trigger")], "nullable": True},
        },
        ("name", "kind"),
    ),
    "Variant": _obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 40},
            "texts": LANGUAGE_TEXTS,
            "percent": {"type": "integer", "minimum": 1, "maximum": 100},
        },
        ("texts", "percent"),
    ),
    "Campaign": _obj(
        {
            "id": INTEGER,
            "name": STRING,
            "partner": STRING,
            "kind": _enum(ContactKind),
            "scope": _enum(CampaignScope),
            "state": _enum(CampaignState),
            "priority": INTEGER,
            "apply_caps": {"type": "boolean", "enum": [True], "deprecated": True},
            "texts": {"type": "object", "additionalProperties": STRING},
            "variables": {"type": "array", "items": STRING},
            "variable_defaults": {"type": "object", "additionalProperties": STRING},
            "variants": {"type": "array", "items": ref("Variant")},
            "holdout_percent": INTEGER,
            "preview": {"type": "object", "additionalProperties": {"type": "object"}},
            "segment": _nullable(STRING),
            "start_at": TIME,
            "end_at": TIME,
            "created_by": _nullable(STRING),
            "created_at": TIME,
            "started_at": TIME,
            "finished_at": TIME,
            "start_at_local": _nullable({**STRING, "description": "local time, to the second"}),
            "end_at_local": _nullable({**STRING, "description": "local time, to the second"}),
            "warnings": {
                "type": "array",
                "items": ref("ScheduleWarning"),
                "description": "create, edit, duplicate: what the schedule means against the "
                "send window (R8)",
            },
            "duplicated_from": INTEGER,
            "content_version": {
                **INTEGER,
                "description": "bumped by every change of texts, schedule, survey or audience",
            },
            "approval": _nullable(
                {
                    **_obj(
                        {"by": STRING, "role": _nullable(STRING), "at": TIME, "version": INTEGER},
                        ("by", "at", "version"),
                    ),
                    "description": "maker-checker: who approved which content version; "
                    "null while unapproved (any change of the content clears it)",
                }
            ),
            "trigger": {"allOf": [ref("Trigger")], "nullable": True},
        },
        ("id", "name", "kind", "scope", "state", "texts"),
    ),
    "ScheduleWarning": _obj(
        {
            "code": {
                "type": "string",
                "enum": ["start_outside_window", "ends_before_window_opens"],
            },
            "field": STRING,
            "message": STRING,
            "opens_at": {"type": "string", "format": "date-time"},
        },
        ("code", "field", "message", "opens_at"),
    ),
    "CampaignPage": _obj(
        {
            "campaigns": {"type": "array", "items": ref("Campaign")},
            "next_before": _nullable(INTEGER),
        },
        ("campaigns", "next_before"),
    ),
    "CampaignReport": {
        "allOf": [
            ref("Campaign"),
            _obj(
                {
                    "total": COUNT,
                    "states": _counts(DeliveryState),
                    "suppressed": _counts(SuppressionReason),
                    "progress": {"type": "object"},
                    "status": ref("CampaignStatus"),
                    "triggered": _nullable(
                        _obj(
                            {
                                "matched": COUNT,
                                "waiting": COUNT,
                                "sent": COUNT,
                                "stale": COUNT,
                            },
                            ("matched", "waiting", "sent", "stale"),
                        )
                        | {
                            "description": "a triggered campaign's numbers whose event "
                            "matched (one message each), waiting (also for the send window), "
                            "sent (accepted by the SMSC) and dropped as stale; null otherwise"
                        }
                    ),
                    "survey": _nullable(
                        _obj(
                            {
                                "sessions": {"type": "object", "additionalProperties": COUNT},
                                "languages": {"type": "array", "items": _enum(Language)},
                                "sent": COUNT,
                                "respondents": COUNT,
                                "response_rate": _nullable(
                                    {
                                        "type": "number",
                                        "description": "respondents in percent of the surveys "
                                        "sent (first questions the SMSC accepted); null where "
                                        "a count is hidden (R11)",
                                    }
                                ),
                                "response_rate_of": {"type": "string", "enum": ["sent"]},
                                "questions": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "description": "no, texts, answers, and options: no, "
                                        "texts, count and percent (of the question's answers; "
                                        "null where a count is hidden)",
                                    },
                                },
                            },
                            ("sessions", "questions"),
                        )
                    ),
                },
                ("total", "states", "suppressed", "progress", "status", "survey"),
            ),
            _obj(
                {
                    "answered_without_receipt": _nullable(
                        {
                            "type": "integer",
                            "description": "at least this many recipients answered the survey "
                            "though their message has no delivered receipt (receipts lost, e.g. "
                            "in an SMSC restart); null for an info campaign or a hidden count",
                        }
                    )
                }
            ),
        ]
    },
    "CampaignStatus": {
        **_obj(
            {
                "phrase": _enum(Phrase),
                "reason": _enum(Reason),
                "until": TIME,
                "count": _nullable(INTEGER),
                "message": STRING,
            },
            ("phrase", "reason", "until", "count", "message"),
        ),
        "description": "What the campaign is doing in plain words (issue 14): the plain word "
        "first, then the reason. 'until' is the instant waited for (the window's opening, the "
        "scheduled start), 'count' what the reason counts (messages waiting, program messages "
        "ahead, receipts awaited; null for a partner-facing caller, R11), 'message' a "
        "sentence with local times, e.g. 'Waiting — window closed until 10:00 (local time); "
        "4 messages wait for it.'",
    },
    "Preview": _obj(
        {
            "texts": LANGUAGE_TEXTS,
            "variables": {"type": "object", "additionalProperties": STRING},
            "variable_defaults": {"type": "object", "additionalProperties": STRING},
        },
        ("texts",),
    ),
    "AudienceResult": _obj(
        {
            "accepted": INTEGER,
            "rejected": {"type": "array", "items": ref("Rejected")},
            "duplicates": INTEGER,
            "rejected_total": INTEGER,
            "upload_no": _nullable(INTEGER),
            "rejected_csv": {
                **_nullable(STRING),
                "description": "where every rejected row of this upload is downloaded as CSV",
            },
            "segment": STRING,
        },
        ("accepted", "rejected", "duplicates"),
    ),
}


_UPLIFT = _nullable(
    _obj(
        {"difference": {"type": "number"}, "low": {"type": "number"}, "high": {"type": "number"}},
        ("difference", "low", "high"),
    )
)
SCHEMAS["VariantArm"] = _obj(
    {
        "variant": {**STRING, "description": "the variant's index (0 is A), or 'holdout'"},
        "name": STRING,
        "planned_percent": {"type": "number"},
        **{
            metric: COUNT
            for metric in ("recipients", "sent", "delivered", "responded", "opted_out", "activated")
        },
        "rates_percent": {
            "type": "object",
            "additionalProperties": _nullable({"type": "number"}),
        },
        "uplift": _nullable(
            _obj(
                {"activated": _UPLIFT, "opted_out": _UPLIFT},
                ("activated", "opted_out"),
            )
        ),
    },
    ("variant", "name", "recipients", "sent", "delivered", "responded", "opted_out", "activated"),
)
SCHEMAS["VariantReport"] = _obj(
    {
        "campaign_id": INTEGER,
        "as_of": {"type": "string", "format": "date-time"},
        "holdout_percent": INTEGER,
        "opt_out_days": INTEGER,
        "activation_days": INTEGER,
        "measured_from": TIME,
        "interval": STRING,
        "arms": {"type": "array", "items": ref("VariantArm")},
    },
    ("campaign_id", "as_of", "holdout_percent", "arms"),
)

#: PATCH of a draft: any fields of a create (none required); null clears start_at or end_at.
SCHEMAS["CampaignEdit"] = {
    "type": "object",
    "description": "the fields of CampaignCreate to change; the result is validated as a create",
    "properties": {
        **SCHEMAS["CampaignCreate"]["properties"],
        "start_at": TIME,
        "end_at": TIME,
    },
}


def json_body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def json_ok(schema: Schema, description: str = "OK", status: str = "200") -> dict[str, Schema]:
    return {
        status: {"description": description, "content": {"application/json": {"schema": schema}}}
    }


_INBOX_KIND: Schema = {"type": "string", "enum": ["reply", "stop", "dnc"]}
_INBOX_ATTRIBUTION: Schema = _nullable(
    _obj({"id": INTEGER, "name": STRING, "partner": STRING}, ("id", "name", "partner"))
)
_INBOX_MESSAGE: Schema = _obj(
    {
        "id": INTEGER,
        "msisdn": STRING,
        "to": STRING,
        "text": {"type": "string", "description": "empty for a survey answer (R11)"},
        "kind": _INBOX_KIND,
        "outcome": STRING,
        "received_at": {"type": "string", "format": "date-time"},
        "campaign": _INBOX_ATTRIBUTION,
    },
    ("id", "msisdn", "kind", "received_at", "campaign"),
)
_INBOX_CAMPAIGN: Schema = _obj(
    {
        "id": INTEGER,
        "name": STRING,
        "partner": STRING,
        "counts": _obj(
            {k: COUNT for k in ("reply", "stop", "dnc", "total")},
            ("reply", "stop", "dnc", "total"),
        ),
    },
    ("id", "name", "partner", "counts"),
)


_AUDIT_EVENT: Schema = _obj(
    {
        "id": INTEGER,
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string", "description": "a token's name, or cli:<os user>"},
        "actor_role": _nullable(STRING),
        "action": _enum(AuditAction),
        "campaign_id": _nullable(INTEGER),
        "target": _nullable({**STRING, "description": "e.g. token:7"}),
        "details": {
            "type": "object",
            "description": "what changed, in field names and counts: never a token, never a "
            "subscriber's number",
        },
    },
    ("id", "at", "actor", "action", "details"),
)


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _campaign_id() -> Schema:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
    }


def _transition(action: str) -> Schema:
    return {
        "summary": f"{action.capitalize()} a campaign (a guarded state change; 409 if refused)",
        "tags": ["campaigns"],
        "parameters": [_campaign_id()],
        "responses": json_ok(ref("Campaign")),
    }


_AUDIENCE_CSV = {
    "schema": {"type": "string", "format": "binary"},
    "example": f"msisdn,name\n{EXAMPLE_MSISDN},Aigerim\n",
}

OPERATIONS: dict[tuple[str, str], Schema] = {
    ("GET", "/healthz"): {
        "summary": "Liveness: the process serves HTTP",
        "tags": ["operations"],
        "responses": json_ok(ref("Health")),
    },
    ("GET", "/readyz"): {
        "summary": "HTTP readiness (USSD gateway, events, API, console): the database answers",
        "description": "The SMPP bind is not part of it, so USSD is answered while the SMSC "
        "is down; /readyz/engine reports the bind.",
        "tags": ["operations"],
        "responses": {
            **json_ok(ref("Readiness"), "ready"),
            **json_ok(ref("Readiness"), "not ready", "503"),
        },
    },
    ("GET", "/readyz/engine"): {
        "summary": "Engine readiness: the database answers and the SMPP bind is up",
        "tags": ["operations"],
        "responses": {
            **json_ok(ref("Readiness"), "ready"),
            **json_ok(ref("Readiness"), "not ready (SMSC unbound, or no engine here)", "503"),
        },
    },
    ("GET", "/metrics"): {
        "summary": "Prometheus metrics (text exposition format)",
        "tags": ["operations"],
        "responses": {
            "200": {"description": "metrics", "content": {"text/plain": {"schema": STRING}}}
        },
    },
    ("GET", "/api/openapi.json"): {
        "summary": "This document",
        "tags": ["operations"],
        "responses": json_ok({"type": "object"}),
    },
    ("GET", "/api/v1/whoami"): {
        "summary": "The caller's token name and role",
        "tags": ["tokens"],
        "responses": json_ok(ref("Caller")),
    },
    ("GET", "/api/v1/tokens"): {
        "summary": "API tokens (never their secrets), with expiry and last use",
        "tags": ["tokens"],
        "responses": json_ok(
            _obj({"tokens": {"type": "array", "items": ref("Token")}}, ("tokens",))
        ),
    },
    ("POST", "/gateway/ussd"): {
        "summary": "A USSD request from the gateway; committed before the reply",
        "tags": ["gateway"],
        "requestBody": json_body(ref("UssdRequest")),
        "responses": json_ok(ref("UssdReply")),
    },
    ("POST", "/gateway/events"): {
        "summary": "An operator event (1204 by IVR, status, tariff, top-up); a repeated "
        "event_id is acknowledged and changes nothing; an applied one queues the messages of "
        "the running campaigns it triggers",
        "tags": ["gateway"],
        "requestBody": json_body(ref("Event")),
        "responses": json_ok(ref("EventResult")),
    },
    ("POST", "/api/v1/contacts/reserve"): {
        "summary": "Another channel (IVR, USSD push) asks for a cap slot (R7): granted, or "
        "refused with a reason; a repeated reference gets the first answer when it is for "
        "the same number, kind and month, else 409 reference_conflict",
        "tags": ["gateway"],
        "requestBody": json_body(ref("ContactReserve")),
        "responses": json_ok(ref("ContactReservation")),
    },
    ("GET", "/api/v1/subscribers/{msisdn}"): {
        "summary": "Status, membership, 1204, month counters, bonuses, consent history",
        "tags": ["subscribers"],
        "parameters": [
            {"name": "msisdn", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "responses": json_ok(ref("Subscriber")),
    },
    ("GET", "/api/v1/subscribers/{msisdn}/messages"): {
        "summary": "The number's messages, newest first: campaign deliveries and program "
        "service messages, with state, suppression reason, parts, times and receipt "
        "(operator roles only)",
        "tags": ["subscribers"],
        "parameters": [
            {"name": "msisdn", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": WHY_MAX_PAGE},
            },
            {
                "name": "offset",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
            },
        ],
        "responses": json_ok(ref("SubscriberMessages")),
    },
    ("GET", "/api/v1/subscribers/{msisdn}/campaigns/{id}"): {
        "summary": "Why the number did (not) get the campaign: not in the audience, rejected "
        "at upload, suppressed (which rule; at a cap, who used the slots), waiting (why, "
        "until when), sending, sent with its receipt, failed, unknown",
        "tags": ["subscribers"],
        "parameters": [
            {"name": "msisdn", "in": "path", "required": True, "schema": {"type": "string"}},
            _campaign_id(),
        ],
        "responses": json_ok(ref("WhyAnswer")),
    },
    ("POST", "/api/v1/subscribers/import"): {
        "summary": "Bulk upsert of subscribers from CSV msisdn,status,language (streamed)",
        "tags": ["subscribers"],
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": f"msisdn,status,language\n{EXAMPLE_MSISDN},active,kk\n",
                }
            },
        },
        "responses": json_ok(ref("ImportResult")),
    },
    ("POST", "/api/v1/campaigns"): {
        "summary": "Create a draft campaign",
        "tags": ["campaigns"],
        "requestBody": json_body(ref("CampaignCreate")),
        "responses": json_ok(ref("Campaign"), "created", "201"),
    },
    ("GET", "/api/v1/campaigns"): {
        "summary": "A page of campaigns, newest first",
        "tags": ["campaigns"],
        "parameters": [
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 500},
            },
            {
                "name": "before",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
            },
            {"name": "state", "in": "query", "schema": _enum(CampaignState)},
            *(
                {
                    "name": name,
                    "in": "query",
                    "description": f"{what} contains this, any case",
                    "schema": {"type": "string", "maxLength": 200},
                }
                for name, what in (
                    ("q", "name or partner"),
                    ("name", "name"),
                    ("partner", "partner"),
                )
            ),
        ],
        "responses": json_ok(ref("CampaignPage")),
    },
    ("PATCH", "/api/v1/campaigns/{id}"): {
        "summary": "Edit a draft: the fields given replace its own, validated as a create "
        "(409 not_a_draft unless it is a draft; 409 audience_columns_fixed when its uploaded "
        "audience's columns would change); the answer has schedule warnings",
        "tags": ["campaigns"],
        "parameters": [_campaign_id()],
        "requestBody": json_body(ref("CampaignEdit")),
        "responses": json_ok(ref("Campaign")),
    },
    ("POST", "/api/v1/campaigns/{id}/duplicate"): {
        "summary": "Copy any campaign into a new draft named '… (copy)': texts and settings, "
        "no audience, no time in the past",
        "tags": ["campaigns"],
        "parameters": [_campaign_id()],
        "responses": json_ok(ref("Campaign"), "created", "201"),
    },
    ("POST", "/api/v1/campaigns/preview"): {
        "summary": "Encoding, SMS parts and characters of texts per language",
        "tags": ["campaigns"],
        "requestBody": json_body(ref("Preview")),
        "responses": json_ok({"type": "object", "additionalProperties": {"type": "object"}}),
    },
    ("GET", "/api/v1/campaigns/{id}"): {
        "summary": "State, status in plain words (why it is not sending), counts by delivery "
        "state and suppression reason, survey results",
        "tags": ["campaigns"],
        "parameters": [_campaign_id()],
        "responses": json_ok(ref("CampaignReport")),
    },
    ("GET", "/api/v1/campaigns/{id}/results.csv"): {
        "summary": "Survey results as CSV: counts per question and option, never a number",
        "tags": ["campaigns"],
        "parameters": [
            _campaign_id(),
            {"name": "lang", "in": "query", "schema": _enum(Language)},
        ],
        "responses": {
            "200": {"description": "results", "content": {"text/csv": {"schema": STRING}}}
        },
    },
    ("GET", "/api/v1/campaigns/{id}/variants"): {
        "summary": "Variants and holdout: counts per arm and each variant's uplift",
        "description": "Issue 15: per text variant and for the holdout (control group), counts "
        "only: recipients, sent, delivered, survey respondents, opt-outs (STOP, *555*2#, 1204) "
        "within 7 days and bonus activations within 30 days, both counted from the campaign's "
        "start for every recipient of the arm (intention to treat); rates per recipient; and "
        "each variant's uplift over the holdout in percentage points (activation and opt-out "
        "rate) with a 95% Newcombe hybrid score interval. Partner-facing roles see small counts "
        "hidden (R11), and a rate or uplift computed from a hidden count is null.",
        "tags": ["campaigns"],
        "parameters": [_campaign_id()],
        "responses": json_ok(ref("VariantReport")),
    },
    ("GET", "/api/v1/campaigns/{id}/forecast"): {
        "summary": "Forecast before start: eligible, suppressed by reason, SMS parts, finish",
        "description": "For the campaign's still-queued audience, as of now, by the claim's "
        "own rules (eligibility, 1204, caps already used this month): how many would be sent, "
        "how many suppressed and why; each recipient's SMS parts with their own values and "
        "language (per encoding: how many get 1, 2, 3… parts), the worst case, the total parts "
        "(cost) and when sending would finish at the configured TPS through the send window. "
        "Nothing is changed. Counts for partner-facing roles as in the report (R11); the "
        "total parts, the finish and the warnings only where no cell they derive from is "
        "hidden.",
        "tags": ["campaigns"],
        "parameters": [_campaign_id()],
        "responses": json_ok(
            _obj(
                {
                    "campaign_id": INTEGER,
                    "as_of": {"type": "string", "format": "date-time"},
                    "audience": COUNT,
                    "eligible": COUNT,
                    "suppressed": _counts(FORECAST_REASONS),
                    "left_program": COUNT,
                    "parts": _obj(
                        {
                            "distribution": {
                                "type": "object",
                                "description": "encoding (gsm7, ucs2) → parts → recipients",
                                "additionalProperties": {
                                    "type": "object",
                                    "additionalProperties": COUNT,
                                },
                            },
                            "worst": _nullable(
                                _obj(
                                    {"encoding": _enum_strings(("gsm7", "ucs2")), "parts": INTEGER},
                                    ("encoding", "parts"),
                                )
                            ),
                            "limit": INTEGER,
                            "over_limit": _nullable(INTEGER),
                            "unsendable": COUNT,
                            "total": _nullable(INTEGER),
                        },
                        ("distribution", "worst", "limit", "over_limit", "unsendable", "total"),
                    ),
                    "rate_per_second": {"type": "number"},
                    "starts_at": {"type": "string", "format": "date-time"},
                    "finishes_at": TIME,
                    "warnings": {"type": "array", "items": STRING},
                    "holdout": {
                        **COUNT,
                        "description": "the control group (issue 15): recorded at the "
                        "audience's upload, never sent; not part of the queued audience",
                    },
                },
                (
                    "campaign_id",
                    "as_of",
                    "audience",
                    "eligible",
                    "suppressed",
                    "left_program",
                    "parts",
                    "rate_per_second",
                    "starts_at",
                    "finishes_at",
                    "warnings",
                ),
            )
        ),
    },
    ("POST", "/api/v1/campaigns/{id}/audience"): {
        "summary": "Add recipients: a CSV body, a multipart field 'file', or a segment",
        "tags": ["campaigns"],
        "description": "Numbers that cannot receive SMS (fixed-line, foreign, toll-free, "
        "premium-rate, …; SMARTD_AUDIENCE_MOBILE_PREFIXES / _REFUSED_PREFIXES) are rejected "
        "with their kind. Every rejected row is kept: GET …/audience/rejected.csv?upload=N. "
        "Without a mapping the number is the first column and headers are matched to the "
        "variables ignoring case and spaces; a header that cannot be matched is a 400 "
        "unmapped_columns naming the columns found.",
        "parameters": [
            _campaign_id(),
            {
                "name": "number_column",
                "in": "query",
                "schema": STRING,
                "description": "the header (or 1-based position) of the number column",
            },
            {
                "name": "column.{variable}",
                "in": "query",
                "schema": STRING,
                "description": "per variable, the header (or position) of its column, "
                "e.g. column.name=Имя",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": _AUDIENCE_CSV,
                "multipart/form-data": {
                    "schema": _obj(
                        {
                            "number_column": STRING,
                            "column.{variable}": STRING,
                            "file": {"type": "string", "format": "binary"},
                        },
                        ("file",),
                    )
                },
                "application/json": {
                    "schema": _obj(
                        {"segment": {"type": "string", "enum": list(SEGMENTS)}},
                        ("segment",),
                    )
                },
            },
        },
        "responses": json_ok(ref("AudienceResult")),
    },
    ("GET", "/api/v1/campaigns/{id}/audience/rejected.csv"): {
        "summary": "Every rejected row of the campaign's audience uploads as CSV",
        "description": "Columns upload, line, value, reason; cells a spreadsheet would run "
        "as formulas start with an apostrophe. All uploads, or one with ?upload=N.",
        "tags": ["campaigns"],
        "parameters": [
            _campaign_id(),
            {"name": "upload", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        ],
        "responses": {
            "200": {"description": "rejected rows", "content": {"text/csv": {"schema": STRING}}}
        },
    },
    **{("POST", f"/api/v1/campaigns/{{id}}/{a}"): _transition(a) for a in CAMPAIGN_ACTIONS},
    ("GET", "/api/v1/inbox"): {
        "summary": "Subscribers' SMS (replies, STOP, 1204), each attributed to the campaign "
        "that last reached the number within SMARTD_INBOX_ATTRIBUTION_DAYS: messages newest "
        "first for admins; counts per campaign and kind only for viewer and marketer (R11)",
        "tags": ["inbox"],
        "parameters": [
            {
                "name": "campaign",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
            },
            {"name": "kind", "in": "query", "schema": _INBOX_KIND},
            {
                "name": "before",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
            },
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 500},
            },
        ],
        "responses": json_ok(
            {
                "oneOf": [
                    _obj(
                        {
                            "messages": {"type": "array", "items": _INBOX_MESSAGE},
                            "next_before": _nullable(INTEGER),
                        },
                        ("messages", "next_before"),
                    ),
                    _obj(
                        {"campaigns": {"type": "array", "items": _INBOX_CAMPAIGN}},
                        ("campaigns",),
                    ),
                ]
            }
        ),
    },
    ("GET", "/api/v1/calendar"): {
        "summary": "The send calendar (R8): weekly hours, dated exceptions (public holidays: "
        "closed or other hours), whether it is open now, when it closes or next opens, and the "
        "next `days` local days' hours; instants in the program's local time with offset",
        "tags": ["calendar"],
        "parameters": [
            {
                "name": "days",
                "in": "query",
                "description": "local days to list from today (default 14)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 366},
            }
        ],
        "responses": json_ok(ref("Calendar")),
    },
    ("POST", "/api/v1/campaigns/{id}/approve"): {
        "summary": "Maker-checker: approve a draft's texts and audience (never its creator)",
        "description": "With SMARTD_APPROVAL_REQUIRED a campaign starts only once approved; "
        "any later change of its texts, schedule, survey or audience clears the approval (a "
        "scheduled campaign goes back to draft). Give the content_version you reviewed as "
        "version: a change since is 409 content_changed. 403 not_an_approver (a role outside "
        "SMARTD_APPROVER_ROLES); 409 self_approval, already_approved, not_a_draft.",
        "tags": ["campaigns"],
        "parameters": [_campaign_id()],
        "requestBody": json_body(
            _obj({"version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}),
            required=False,
        ),
        "responses": json_ok(ref("Campaign")),
    },
    ("GET", "/api/v1/audit"): {
        "summary": "The audit trail: every operator action (create, edit, upload, approve, "
        "start, pause, resume, cancel, token create and revoke, console sign-in and "
        "sign-out), newest first",
        "description": "Append-only, written in the transaction of each action. Admins read "
        "all of it; a marketer one campaign's history (campaign_id required, else 403 "
        "campaign_required).",
        "tags": ["audit"],
        "parameters": [
            _query(
                "campaign_id",
                {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                "one campaign's events",
            ),
            _query("actor", {"type": "string", "minLength": 1, "maxLength": 200}, "exactly"),
            _query("action", _enum(AuditAction), "one kind of action"),
            _query("since", {"type": "string", "format": "date-time"}, "at or after"),
            _query("until", {"type": "string", "format": "date-time"}, "before"),
            _query(
                "before",
                {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                "events older than this id (the last page's next_before)",
            ),
            _query(
                "limit", {"type": "integer", "minimum": 1, "maximum": AUDIT_MAX_PAGE}, "page size"
            ),
        ],
        "responses": json_ok(
            _obj(
                {
                    "events": {"type": "array", "items": _AUDIT_EVENT},
                    "next_before": _nullable(INTEGER),
                },
                ("events", "next_before"),
            )
        ),
    },
}

_HOURS: dict[str, Schema] = {
    "hours": _nullable({**STRING, "description": "HH:MM-HH:MM; null: closed"}),
    "opens": _nullable({**STRING, "description": "HH:MM local"}),
    "closes": _nullable({**STRING, "description": "HH:MM local (past midnight when earlier)"}),
}
_LOCAL_TIME: Schema = _nullable({"type": "string", "format": "date-time"})
SCHEMAS["Calendar"] = _obj(
    {
        "zone": STRING,
        "now": {"type": "string", "format": "date-time"},
        "open_now": {"type": "boolean"},
        "closes_at": _LOCAL_TIME,
        "next_opening": {
            "type": "string",
            "format": "date-time",
            "description": "the next opening after now (after closes_at when open now)",
        },
        "weekly_text": STRING,
        "weekly": {
            "type": "array",
            "items": _obj({"day": _enum_strings(DAY_NAMES), **_HOURS}, ("day", "hours")),
        },
        "exceptions": {
            "type": "array",
            "items": _obj(
                {"date": {"type": "string", "format": "date"}, **_HOURS, "note": STRING},
                ("date", "hours", "note"),
            ),
        },
        "days": {
            "type": "array",
            "items": _obj(
                {
                    "date": {"type": "string", "format": "date"},
                    "weekday": _enum_strings(DAY_NAMES),
                    "open": {"type": "boolean"},
                    **_HOURS,
                    "opens_at": _LOCAL_TIME,
                    "closes_at": _LOCAL_TIME,
                    "exception": {"type": "boolean"},
                    "note": STRING,
                },
                ("date", "weekday", "open", "hours", "opens_at", "closes_at", "exception"),
            ),
        },
    },
    ("zone", "now", "open_now", "closes_at", "next_opening", "weekly", "exceptions", "days"),
)
# ---------------------------------------------------------------- opt-out attribution (issue 15)

_RATE: Schema = _nullable(
    {
        "type": "number",
        "description": "opt-outs in percent of the recipients reached (messages the SMSC "
        "accepted, not reported undelivered), two decimals; null when nobody was reached or "
        "a count is hidden (R11)",
    }
)
_OPT_OUT_KINDS: Schema = _counts(OptOutKind)
SCHEMAS["OptOuts"] = {
    **_obj(
        {
            "total": COUNT,
            "by_kind": _OPT_OUT_KINDS,
            "reached": COUNT,
            "rate": _RATE,
            "rate_of": {"type": "string", "enum": ["reached"]},
            "span_days": INTEGER,
        },
        ("total", "by_kind", "reached", "rate", "span_days"),
    ),
    "description": "Opt-outs (STOP by SMS, 1204 by any channel, a leave by USSD) attributed "
    "to the campaign whose message last reached the number within span_days "
    "(SMARTD_INBOX_ATTRIBUTION_DAYS); a delivery is blamed for one opt-out at most",
}
SCHEMAS["CampaignReport"]["allOf"].append(_obj({"opt_outs": ref("OptOuts")}, ("opt_outs",)))
SCHEMAS["PartnerStanding"] = _obj(
    {
        "rank": INTEGER,
        "partner": STRING,
        "campaigns": INTEGER,
        "reached": COUNT,
        "opt_outs": COUNT,
        "by_kind": _OPT_OUT_KINDS,
        "rate": _RATE,
    },
    ("rank", "partner", "campaigns", "reached", "opt_outs", "by_kind", "rate"),
)
_PERIOD_BOUND: Schema = {
    "type": "string",
    "description": "a date YYYY-MM-DD (Astana time: since from its start, until through its "
    "end) or an ISO 8601 instant with its UTC offset",
    "example": "2026-11-01",
}
OPERATIONS[("GET", "/api/v1/partners")] = {
    "summary": "Partners ranked by opt-out rate: per partner its campaigns that reached anyone "
    "in the period, the recipients reached, the opt-outs attributed to them and the rate",
    "description": "Highest rate first. Recipients count by their message's submit time, "
    "opt-outs by theirs; until is exclusive. Viewer and marketer (partner-facing, R11) see "
    "small counts hidden and no rate made from a hidden count; those rows come last, by name.",
    "tags": ["partners"],
    "parameters": [
        {"name": "since", "in": "query", "schema": _PERIOD_BOUND},
        {"name": "until", "in": "query", "schema": _PERIOD_BOUND},
    ],
    "responses": json_ok(
        _obj(
            {
                "since": TIME,
                "until": TIME,
                "span_days": INTEGER,
                "rate_of": {"type": "string", "enum": ["reached"]},
                "partners": {"type": "array", "items": ref("PartnerStanding")},
            },
            ("since", "until", "span_days", "partners"),
        )
    ),
}
