-- Issue 14: a subscriber's message history (GET /api/v1/subscribers/{msisdn}/messages, the
-- console's subscriber page, dispatcher/sql/why.sql) reads a number's service messages and
-- the receipts of its parts. Neither was findable by number: service_messages had only its
-- queued rows indexed by msisdn, receipts nothing (at 10M rows each, a sequential scan per
-- lookup). A number's campaign deliveries need no index: they are probed campaign by
-- campaign through deliveries_one_per_recipient (campaign_id, msisdn).
--
-- EXPLAIN ANALYZE on 10M deliveries (400 campaigns of 25,000 over 2M numbers), 6M service
-- messages, 6M receipts, 3M submits (PostgreSQL 18, embedded): the history (why.sql
-- `messages`) took 26 ms with these indexes and 1.95 s without (a parallel sequential scan
-- of service_messages); the parts' receipts (`parts`) 0.2 ms with, 2.7 s without (a walk
-- of receipts_pkey). The deliveries' side: 402 searches of deliveries_one_per_recipient,
-- 3 ms warm; the why answer's own delivery one probe, 0.1 ms.
--
-- Both keys lead with msisdn, so under Citus (distributed by msisdn) each lookup stays on
-- the number's shard. A receipt whose source address is not a number ('' since 0024) can't
-- be found by number anyway: left out of the index.
CREATE INDEX service_messages_msisdn_history ON service_messages (msisdn, id);
CREATE INDEX receipts_msisdn ON receipts (msisdn, id) WHERE msisdn <> '';
