-- Release a lease, only for its holder.
-- Preamble: none
-- KEYS[1] the lease
-- ARGV[1] the holder's token
-- Returns 1 when released, 0 when the lease is gone or held by another token.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
