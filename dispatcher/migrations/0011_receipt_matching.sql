-- Issue 11: receipts matched across id formats and across SMSC restarts.

-- An SMSC that restarts numbers its ids from 1 again, so one (smsc, message_id) names
-- several submits over time: the unique index made insert_submits drop the new message's
-- row. The applier finds the newest part with an id by walking this index backwards.
DROP INDEX submits_message_id;
CREATE INDEX submits_message_id ON submits (smsc, message_id, id);

-- A repeated receipt is recognised by the applier (its part already holds a final
-- receipt), not by a unique key: (smsc, message_id, state) also swallowed the receipt of a
-- new message whose reused id and state were an older message's.
ALTER TABLE receipts DROP CONSTRAINT receipts_once;

-- The receipt's id read under each id format, in the response's own form (see
-- smpp.receipts.IdReadings): message_id is the as-is reading. NULL where the id does not
-- fit the base. msisdn: the receipt's source address (the subscriber), when it is a number:
-- it tells a late receipt of an older message from a new message's under a reused id.
ALTER TABLE receipts ADD COLUMN id_hex text, ADD COLUMN id_dec text, ADD COLUMN msisdn text;

-- How each SMSC writes one message's id in submit_sm_resp and in the receipt (mirrors
-- smpp.receipts.IdFormat). setting is the operator's (SMARTD_SMPP_ID_FORMAT, written at
-- engine start); detected is what the receipt applier learned when the setting is auto.
CREATE TYPE message_id_format AS ENUM (
    'auto', 'as-is', 'hex-response-decimal-receipt', 'decimal-response-hex-receipt'
);
CREATE TABLE smsc_id_formats (
    smsc        text PRIMARY KEY,
    setting     message_id_format NOT NULL,
    detected    message_id_format CHECK (detected <> 'auto'),
    detected_at timestamptz,
    CHECK ((detected IS NULL) = (detected_at IS NULL))
);
