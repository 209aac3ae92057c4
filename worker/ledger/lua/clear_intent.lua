-- Drop an intent whose write is known not to be in Keap (Keap refused it, or its request never left), only when the
-- caller wrote it: another run's intent for the same write stays, lease or not.
-- Preamble: none
-- KEYS[1] the order's hash
-- ARGV[1] what was written (the intent `i:<what>`), ARGV[2] the caller's lease token (its intent's "by")
-- Returns 1 when the intent was dropped, 0 when there is none or it is another run's.
local raw = redis.call('HGET', KEYS[1], 'i:' .. ARGV[1])
if not raw or (cjson.decode(raw).by or '') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'i:' .. ARGV[1])
return 1
