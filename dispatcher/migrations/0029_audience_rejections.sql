-- Issue 14: every audience upload is recorded, with every row it rejected (not only the
-- first ones shown in the response), so an operator can download them all as CSV and the
-- "why did number X not get campaign Y" answer can say "rejected at upload, line N: reason".
--
-- A campaign may receive several uploads (they append; duplicates are counted), so a
-- rejected row is keyed by (campaign, upload, line). Both tables are distributed by
-- campaign_id under Citus (README, "Past one PostgreSQL"): a rejected row may hold no valid
-- number at all, so it cannot sit beside a subscriber. `number` is the cell read as a
-- number in any country (E.164 digits without '+') when it could be, for the lookup by
-- number; NULL when the cell is not a number.
CREATE TABLE audience_uploads (
    campaign_id  bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    upload_no    integer NOT NULL CHECK (upload_no > 0),
    uploaded_at  timestamptz NOT NULL,
    uploaded_by  text,
    lines        integer NOT NULL CHECK (lines >= 0),
    accepted     integer NOT NULL CHECK (accepted >= 0),
    duplicates   integer NOT NULL CHECK (duplicates >= 0),
    rejected     integer NOT NULL CHECK (rejected >= 0),
    PRIMARY KEY (campaign_id, upload_no)
);

CREATE TABLE audience_rejections (
    campaign_id  bigint NOT NULL,
    upload_no    integer NOT NULL,
    line         integer NOT NULL CHECK (line > 0),
    value        text NOT NULL,
    number       text CHECK (number ~ '^[0-9]{3,15}$'),
    reason       text NOT NULL,
    PRIMARY KEY (campaign_id, upload_no, line),
    FOREIGN KEY (campaign_id, upload_no)
        REFERENCES audience_uploads (campaign_id, upload_no) ON DELETE CASCADE
);
CREATE INDEX audience_rejections_number ON audience_rejections (campaign_id, number)
    WHERE number IS NOT NULL;
