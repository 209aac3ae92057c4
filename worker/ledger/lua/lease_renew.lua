-- Renew a lease, only for its holder.
-- Preamble: none
-- KEYS[1] the lease
-- ARGV[1] the holder's token, ARGV[2] the new lifetime in milliseconds
-- Returns 1 when renewed, 0 when the lease is gone or held by another token.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
