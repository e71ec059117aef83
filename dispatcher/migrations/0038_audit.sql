-- Maker-checker approval and the audit trail (issue 15).
--
-- audit_events: every operator action (create, edit, upload, approve, start, pause, resume,
-- cancel, token create and revoke), written in the transaction of the action itself
-- (dispatcher/kernel/audit.py), so there is never an action without its record nor a record
-- without its action. Append-only: UPDATE, DELETE and TRUNCATE are refused by triggers, as
-- for the consent ledger. No foreign key to campaigns: the record outlives its subject.
-- details never hold a secret (a token's value) or a subscriber's number.
CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    actor_role  text,
    action      text NOT NULL CHECK (action ~ '^[a-z][a-z_]{0,39}$'),
    campaign_id bigint,
    target      text,
    details     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object')
);
-- A campaign's history (the campaign page, GET /api/v1/audit?campaign_id=), newest first.
CREATE INDEX audit_events_campaign ON audit_events (campaign_id, id)
    WHERE campaign_id IS NOT NULL;

CREATE FUNCTION audit_events_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_is_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_is_append_only();

-- The approval of a campaign's content, by someone other than its creator.
--   content_version   counts changes of what a checker approves: texts, variables, schedule,
--                     name, partner, survey (triggers below) and audience (each upload or
--                     segment bumps it: campaigns.sql begin_upload, set_segment);
--   approved_*        the current approval, of content_version approved_version; any change
--                     of the content clears it (the trigger), so an approval is never stale;
--   approval_required set by a start made while SMARTD_APPROVAL_REQUIRED was on: such a
--                     campaign cannot be past draft without an approval (CHECK), so no path
--                     that skips the application's check can send an unapproved campaign.
ALTER TABLE campaigns
    ADD COLUMN content_version   integer NOT NULL DEFAULT 1,
    ADD COLUMN approval_required boolean NOT NULL DEFAULT false,
    ADD COLUMN approved_by       text,
    ADD COLUMN approved_role     text,
    ADD COLUMN approved_at       timestamptz,
    ADD COLUMN approved_version  integer,
    ADD CONSTRAINT campaigns_approval_whole CHECK (
        (approved_by IS NULL) = (approved_at IS NULL)
        AND (approved_by IS NULL) = (approved_version IS NULL)
    ),
    ADD CONSTRAINT campaigns_not_self_approved CHECK (
        approved_by IS NULL OR approved_by IS DISTINCT FROM created_by
    ),
    ADD CONSTRAINT campaigns_approval_current CHECK (
        approved_by IS NULL OR approved_version = content_version
    ),
    ADD CONSTRAINT campaigns_started_approved CHECK (
        NOT approval_required OR state IN ('draft', 'cancelled') OR approved_by IS NOT NULL
    );

-- A change of a campaign's content is a new content_version, and clears its approval.
CREATE FUNCTION campaigns_content_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.name, NEW.partner, NEW.kind, NEW.scope, NEW.texts, NEW.variables,
        NEW.variable_defaults, NEW.priority, NEW.start_at, NEW.end_at)
       IS DISTINCT FROM
       (OLD.name, OLD.partner, OLD.kind, OLD.scope, OLD.texts, OLD.variables,
        OLD.variable_defaults, OLD.priority, OLD.start_at, OLD.end_at) THEN
        NEW.content_version := greatest(NEW.content_version, OLD.content_version + 1);
    END IF;
    IF NEW.content_version <> OLD.content_version THEN
        NEW.approved_by := NULL;
        NEW.approved_role := NULL;
        NEW.approved_at := NULL;
        NEW.approved_version := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER campaigns_content_version
    BEFORE UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION campaigns_content_changed();

-- A survey's questions, thanks or timeout edited: its campaign's content changed.
CREATE FUNCTION surveys_content_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.questions, NEW.thanks, NEW.timeout)
       IS DISTINCT FROM (OLD.questions, OLD.thanks, OLD.timeout) THEN
        UPDATE campaigns SET content_version = content_version + 1 WHERE id = NEW.campaign_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER surveys_content_version
    AFTER UPDATE ON surveys
    FOR EACH ROW EXECUTE FUNCTION surveys_content_changed();
