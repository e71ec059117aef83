-- Maker-checker (migration 0038) freezes what a checker approved. Variants and the holdout
-- (0039) and the trigger (0041) came in beside it and are content too: changing any of them
-- bumps content_version, which clears the approval (and the CHECK then keeps an unapproved
-- campaign from starting while approval is required).
CREATE OR REPLACE FUNCTION campaigns_content_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.name, NEW.partner, NEW.kind, NEW.scope, NEW.texts, NEW.variables,
        NEW.variable_defaults, NEW.priority, NEW.start_at, NEW.end_at,
        NEW.variants, NEW.holdout_percent,
        NEW.trigger_event, NEW.trigger_condition, NEW.trigger_max_delay)
       IS DISTINCT FROM
       (OLD.name, OLD.partner, OLD.kind, OLD.scope, OLD.texts, OLD.variables,
        OLD.variable_defaults, OLD.priority, OLD.start_at, OLD.end_at,
        OLD.variants, OLD.holdout_percent,
        OLD.trigger_event, OLD.trigger_condition, OLD.trigger_max_delay) THEN
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
