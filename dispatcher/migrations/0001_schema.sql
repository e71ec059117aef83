-- Schema v1 of smart-dispatcher: the whole domain, so later work adds columns, not tables.
--
-- Conventions
-- * msisdn: E.164 digits without '+', e.g. '77011234567'. Every per-subscriber table carries
--   it, so they can be distributed by msisdn (Citus) with co-located joins.
-- * month: the first day of the calendar month in Astana time (a date).
-- * State machines are enum types mirrored by Python enums in dispatcher/states.py.
-- * Rules the database can enforce, it does: caps (CHECK), one grant per month (UNIQUE),
--   one delivery per campaign recipient (UNIQUE), an append-only consent ledger (trigger).

-- ---------------------------------------------------------------- enum types

CREATE TYPE subscriber_status AS ENUM ('active', 'outgoing_blocked', 'blocked', 'recycled');
CREATE TYPE language AS ENUM ('kk', 'ru', 'en');
CREATE TYPE channel AS ENUM ('ussd', 'sms', 'ivr', 'api', 'crm', 'system');
CREATE TYPE consent_event AS ENUM (
    'joined',       -- R1: consent to partner SMS/USSD/calls, survey calls, personal data
    'left',         -- R2: consent withdrawn
    'dnc_blocked',  -- R9: 1204 dialled or texted
    'dnc_lifted',   -- R9: a later explicit join lifts the block
    'recycled'      -- R12: the number passed to a new owner; everything before ends
);
CREATE TYPE role AS ENUM ('admin', 'marketer', 'viewer', 'gateway');
CREATE TYPE contact_kind AS ENUM ('info', 'survey');
CREATE TYPE campaign_scope AS ENUM ('smart', 'operator');
CREATE TYPE campaign_state AS ENUM (
    'draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled', 'expired'
);
CREATE TYPE delivery_state AS ENUM (
    'queued', 'claimed', 'in_flight', 'submitted',
    'delivered', 'undelivered', 'expired', 'failed', 'unknown', 'suppressed'
);
CREATE TYPE suppression_reason AS ENUM (
    'not_member', 'dnc', 'blocked', 'cap_info', 'cap_survey', 'opted_out',
    'outside_campaign_window', 'cancelled', 'recycled', 'invalid_text'
);
CREATE TYPE service_kind AS ENUM (
    'join_confirmation', 'leave_confirmation', 'dnc_confirmation', 'bonus_notice',
    'survey_question', 'survey_thanks', 'survey_reprompt', 'help'
);
CREATE TYPE receipt_state AS ENUM (
    'delivered', 'undelivered', 'expired', 'rejected', 'deleted', 'unknown', 'accepted', 'enroute'
);
CREATE TYPE survey_session_state AS ENUM ('open', 'completed', 'timed_out', 'closed');
CREATE TYPE grant_state AS ENUM ('pending', 'active', 'expired', 'cancelled', 'forfeited');
CREATE TYPE credit_state AS ENUM ('pending', 'credited', 'failed');

-- ---------------------------------------------------------------- subscribers

CREATE TABLE subscribers (
    msisdn            text PRIMARY KEY CHECK (msisdn ~ '^[1-9][0-9]{6,14}$'),
    status            subscriber_status NOT NULL DEFAULT 'active',
    language          language,
    tariff            text,
    -- R12: when the current owner got the number (NULL: the first owner we know of);
    -- history before it belongs to another person.
    owner_since       timestamptz,
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- R10 and R12: every life-cycle or tariff change, as it came from the operator's systems.
CREATE TABLE subscriber_events (
    id          bigserial PRIMARY KEY,
    msisdn      text NOT NULL,
    event_type  text NOT NULL,
    event_id    text,             -- the operator system's id: a repeat is recognised
    payload     jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX subscriber_events_event_id ON subscriber_events (event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX subscriber_events_msisdn ON subscriber_events (msisdn, occurred_at);

-- R1/R2: one row per membership period; at most one open period per number.
CREATE TABLE memberships (
    id            bigserial PRIMARY KEY,
    msisdn        text NOT NULL REFERENCES subscribers (msisdn),
    joined_at     timestamptz NOT NULL,
    join_channel  channel NOT NULL,
    left_at       timestamptz,
    leave_channel channel,
    leave_reason  text,           -- 'stop', 'ussd', 'dnc', 'recycled', 'blocked'
    CHECK (left_at IS NULL OR left_at >= joined_at),
    CHECK ((left_at IS NULL) = (leave_channel IS NULL))
);
CREATE UNIQUE INDEX memberships_one_open ON memberships (msisdn) WHERE left_at IS NULL;
CREATE INDEX memberships_msisdn ON memberships (msisdn, joined_at);

-- The consent ledger: append-only evidence of every consent change (R1, R2, R9, R12).
CREATE TABLE consent_ledger (
    id          bigserial PRIMARY KEY,
    msisdn      text NOT NULL,
    event       consent_event NOT NULL,
    -- what the consent covers: partner_sms, partner_ussd, partner_calls, survey_calls,
    -- personal_data (R1); empty for a withdrawal of everything.
    scopes      text[] NOT NULL DEFAULT '{}',
    channel     channel NOT NULL,
    -- what proves it: {"ussd_session": ..} | {"mo_message_id": ..} | {"event_id": ..}
    evidence    jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_ledger_msisdn ON consent_ledger (msisdn, occurred_at);

CREATE FUNCTION consent_ledger_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER consent_ledger_no_update_delete
    BEFORE UPDATE OR DELETE ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_is_append_only();
CREATE TRIGGER consent_ledger_no_truncate
    BEFORE TRUNCATE ON consent_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_is_append_only();

-- R9: numbers that dialled or texted 1204. Lifting deletes the row; the ledger keeps both.
CREATE TABLE dnc_blocks (
    msisdn     text PRIMARY KEY,
    blocked_at timestamptz NOT NULL,
    channel    channel NOT NULL,
    evidence   jsonb NOT NULL DEFAULT '{}'
);

-- ---------------------------------------------------------------- contact caps (R7)

-- One row per number and month. The limits are copied into the row from configuration
-- when it is created, so a CHECK can hold them: no process, however buggy or concurrent,
-- can commit an 11th info message or a 3rd survey.
CREATE TABLE contact_counters (
    msisdn     text NOT NULL,
    month      date NOT NULL CHECK (extract(day FROM month) = 1),
    info_count smallint NOT NULL DEFAULT 0,
    survey_count smallint NOT NULL DEFAULT 0,
    info_cap   smallint NOT NULL,
    survey_cap smallint NOT NULL,
    PRIMARY KEY (msisdn, month),
    CONSTRAINT info_within_cap CHECK (info_count BETWEEN 0 AND info_cap),
    CONSTRAINT survey_within_cap CHECK (survey_count BETWEEN 0 AND survey_cap)
);

-- Contacts reserved by other channels (an IVR dialer, USSD push) through the API.
CREATE TABLE contact_reservations (
    id          bigserial PRIMARY KEY,
    msisdn      text NOT NULL,
    month       date NOT NULL,
    kind        contact_kind NOT NULL,
    channel     channel NOT NULL,
    reference   text,             -- the caller's id for the contact; a repeat is idempotent
    reserved_at timestamptz NOT NULL,
    released_at timestamptz
);
CREATE UNIQUE INDEX contact_reservations_reference ON contact_reservations (reference)
    WHERE reference IS NOT NULL;
CREATE INDEX contact_reservations_msisdn ON contact_reservations (msisdn, month);

-- ---------------------------------------------------------------- campaigns

CREATE TABLE campaigns (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    partner      text NOT NULL DEFAULT '',
    kind         contact_kind NOT NULL,
    scope        campaign_scope NOT NULL,
    state        campaign_state NOT NULL DEFAULT 'draft',
    texts        jsonb NOT NULL,   -- {"ru": "...", "kk": "...", "en": "..."}
    variables    text[] NOT NULL DEFAULT '{}',
    priority     smallint NOT NULL DEFAULT 0,  -- higher first
    apply_caps   boolean NOT NULL DEFAULT true,
    start_at     timestamptz,
    end_at       timestamptz,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    CHECK (end_at IS NULL OR start_at IS NULL OR end_at > start_at)
);
CREATE INDEX campaigns_active ON campaigns (priority DESC, id)
    WHERE state IN ('scheduled', 'running');

-- One row per campaign recipient: the unit of at-most-once sending (invariant 2).
CREATE TABLE deliveries (
    id             bigserial PRIMARY KEY,
    campaign_id    bigint NOT NULL REFERENCES campaigns (id),
    msisdn         text NOT NULL,
    variables      jsonb,
    state          delivery_state NOT NULL DEFAULT 'queued',
    suppressed     suppression_reason,
    cap_month      date,          -- set when a cap slot is held for this delivery
    attempts       smallint NOT NULL DEFAULT 0,
    not_before     timestamptz,   -- retry backoff
    claimed_by     text,
    claimed_at     timestamptz,
    submitted_at   timestamptz,
    finished_at    timestamptz,
    parts          smallint,
    parts_done     smallint NOT NULL DEFAULT 0,
    last_status    integer,       -- last SMPP command_status
    error          text,
    CONSTRAINT deliveries_one_per_recipient UNIQUE (campaign_id, msisdn),
    CHECK ((state = 'suppressed') = (suppressed IS NOT NULL))
);
-- The claim scans only queued rows of a campaign, in id order.
CREATE INDEX deliveries_queued ON deliveries (campaign_id, id) WHERE state = 'queued';
CREATE INDEX deliveries_msisdn ON deliveries (msisdn) WHERE state IN ('queued', 'claimed');
CREATE INDEX deliveries_campaign_state ON deliveries (campaign_id, state);

-- Program service messages: confirmations, bonus notices, survey follow-ups. Not counted
-- against caps (R7). in_window: whether R8 applies (a subscriber-initiated confirmation
-- may go out at any hour).
CREATE TABLE service_messages (
    id           bigserial PRIMARY KEY,
    msisdn       text NOT NULL,
    kind         service_kind NOT NULL,
    campaign_id  bigint REFERENCES campaigns (id),
    body         text NOT NULL,
    in_window    boolean NOT NULL,
    dedupe_key   text UNIQUE,     -- e.g. 'bonus_notice:<grant id>': never queued twice
    state        delivery_state NOT NULL DEFAULT 'queued',
    suppressed   suppression_reason,
    attempts     smallint NOT NULL DEFAULT 0,
    not_before   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    claimed_by   text,
    claimed_at   timestamptz,
    submitted_at timestamptz,
    finished_at  timestamptz,
    parts        smallint,
    parts_done   smallint NOT NULL DEFAULT 0,
    last_status  integer,
    error        text,
    CHECK ((state = 'suppressed') = (suppressed IS NOT NULL))
);
CREATE INDEX service_messages_queued ON service_messages (id) WHERE state = 'queued';
CREATE INDEX service_messages_msisdn ON service_messages (msisdn) WHERE state = 'queued';

-- One row per submit_sm part accepted by the SMSC: what receipts are matched against.
CREATE TABLE submits (
    id                 bigserial PRIMARY KEY,
    smsc               text NOT NULL,
    message_id         text NOT NULL,  -- normalised (dispatcher matches receipts on it)
    delivery_id        bigint REFERENCES deliveries (id),
    service_message_id bigint REFERENCES service_messages (id),
    msisdn             text NOT NULL,
    part_no            smallint NOT NULL DEFAULT 1,
    parts              smallint NOT NULL DEFAULT 1,
    submitted_at       timestamptz NOT NULL,
    receipt            receipt_state,
    receipt_at         timestamptz,
    CHECK ((delivery_id IS NULL) <> (service_message_id IS NULL)),
    CHECK (part_no BETWEEN 1 AND parts)
);
CREATE UNIQUE INDEX submits_message_id ON submits (smsc, message_id);
CREATE INDEX submits_delivery ON submits (delivery_id) WHERE delivery_id IS NOT NULL;

-- Delivery receipts as received (invariant 4): committed before deliver_sm_resp. A receipt
-- whose submit is not yet known (it came before submit_sm_resp) waits here unmatched.
CREATE TABLE receipts (
    id          bigserial PRIMARY KEY,
    smsc        text NOT NULL,
    message_id  text NOT NULL,
    state       receipt_state NOT NULL,
    error_code  text,
    done_at     timestamptz,
    received_at timestamptz NOT NULL,
    applied_at  timestamptz,
    CONSTRAINT receipts_once UNIQUE (smsc, message_id, state)
);
CREATE INDEX receipts_unapplied ON receipts (id) WHERE applied_at IS NULL;

-- Subscribers' SMS (MO) as received (invariant 4); dedupe_key recognises an SMSC's resend.
CREATE TABLE mo_messages (
    id          bigserial PRIMARY KEY,
    smsc        text NOT NULL,
    msisdn      text NOT NULL,
    destination text NOT NULL,
    body        text NOT NULL,
    dedupe_key  text NOT NULL UNIQUE,
    received_at timestamptz NOT NULL,
    handled_at  timestamptz,
    outcome     text          -- 'left', 'dnc', 'survey_answer', 'help', 'ignored'
);
CREATE INDEX mo_messages_msisdn ON mo_messages (msisdn, received_at);

-- ---------------------------------------------------------------- surveys (R13)

CREATE TABLE surveys (
    id          bigserial PRIMARY KEY,
    campaign_id bigint NOT NULL UNIQUE REFERENCES campaigns (id),
    -- [{"texts": {"ru": "...", ...}, "options": [{"ru": "...", ...}, ...]}, ...]
    questions   jsonb NOT NULL,
    thanks      jsonb NOT NULL,  -- {"ru": "...", ...}
    timeout     interval NOT NULL DEFAULT interval '24 hours'
);

CREATE TABLE survey_sessions (
    id           bigserial PRIMARY KEY,
    survey_id    bigint NOT NULL REFERENCES surveys (id),
    delivery_id  bigint REFERENCES deliveries (id),
    msisdn       text NOT NULL,
    state        survey_session_state NOT NULL DEFAULT 'open',
    question_no  smallint NOT NULL DEFAULT 1,
    reprompted   boolean NOT NULL DEFAULT false,
    opened_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    closed_at    timestamptz,
    UNIQUE (survey_id, msisdn)
);
-- A reply to the short code goes to the number's one open survey.
CREATE UNIQUE INDEX survey_sessions_one_open ON survey_sessions (msisdn) WHERE state = 'open';
CREATE INDEX survey_sessions_expiry ON survey_sessions (expires_at) WHERE state = 'open';

-- Answers carry no msisdn: results are counts per option (R11).
CREATE TABLE survey_answers (
    session_id  bigint NOT NULL REFERENCES survey_sessions (id),
    question_no smallint NOT NULL,
    option_no   smallint NOT NULL,
    answered_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, question_no)
);

-- ---------------------------------------------------------------- bonuses (R3-R6)

CREATE TABLE bonus_grants (
    id              bigserial PRIMARY KEY,
    msisdn          text NOT NULL,
    month           date NOT NULL CHECK (extract(day FROM month) = 1),
    units           integer NOT NULL CHECK (units > 0),
    state           grant_state NOT NULL DEFAULT 'pending',
    granted_at      timestamptz NOT NULL,
    deadline_at     timestamptz NOT NULL,  -- granted_at + 30 days (R4)
    activated_at    timestamptz,
    activated_month date,                  -- the calendar month of the activation
    expires_at      timestamptz,           -- activated_at + 7 days (R4)
    closed_at       timestamptz,
    CONSTRAINT one_grant_per_month UNIQUE (msisdn, month),
    CONSTRAINT one_activation_per_month UNIQUE (msisdn, activated_month),
    CHECK ((state = 'active') <= (activated_at IS NOT NULL))
);
CREATE INDEX bonus_grants_pending ON bonus_grants (deadline_at) WHERE state = 'pending';
CREATE INDEX bonus_grants_active ON bonus_grants (expires_at) WHERE state = 'active';

-- Credits sent to the charging system; the grant id is the idempotency key (invariant 5).
CREATE TABLE bonus_credits (
    grant_id        bigint PRIMARY KEY REFERENCES bonus_grants (id),
    msisdn          text NOT NULL,
    state           credit_state NOT NULL DEFAULT 'pending',
    attempts        smallint NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    external_ref    text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    credited_at     timestamptz
);

-- ---------------------------------------------------------------- USSD, API, jobs

CREATE TABLE ussd_sessions (
    session_id text PRIMARY KEY,
    msisdn     text NOT NULL,
    menu       text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         role NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,  -- sha256 of the token; the token itself is never kept
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Periodic jobs that must run once per period across replicas (monthly grant catch-up).
CREATE TABLE job_runs (
    job         text NOT NULL,
    period      text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    result      jsonb,
    PRIMARY KEY (job, period)
);
