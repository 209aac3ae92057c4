-- The fence: note that a non-idempotent Keap write is being sent (right before its bytes leave, after its send
-- slot), only while the caller holds the lease.
-- Preamble: now (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the order's lease
-- ARGV[1] what is written (e.g. payment:ch_1), ARGV[2] the caller's lease token ('' = no lease check)
-- Returns 1 when the intent `i:<what>` = {"at": server time, "checks": 0, "by": the token} was written, 0 when the
-- lease is not ours.
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'i:' .. ARGV[1], cjson.encode({at = now, checks = 0, by = ARGV[2]}))
return 1
