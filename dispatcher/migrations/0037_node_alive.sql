-- One definition of "this replica is alive": its node lock (dispatch.sql node_lock: advisory
-- lock class 1935762244, key hashtext(node)) is held by some session. A replica that was
-- killed, or whose connection is gone, holds none. Read by smsc.sql forget_dead (the shares
-- of the SMSC account's grant) and status.sql record_bind / binds (the campaign status's
-- "SMSC not bound"); before, each spelled out the probe of pg_locks.
--
-- pg_locks' objid is the key's low 32 bits (hashtext's int4 as an unsigned oid), objsubid 2
-- marks a two-key advisory lock.
CREATE FUNCTION node_alive(node text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = 1935762244::oid
          AND l.objid::bigint = (hashtext(node)::bigint & 4294967295)
          AND l.objsubid = 2
    )
$$;
