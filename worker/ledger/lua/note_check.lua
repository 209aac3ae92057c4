-- One more lookup in Keap found nothing for an unanswered write: count it in its intent.
-- Preamble: none
-- KEYS[1] the order's hash
-- ARGV[1] what was written (the intent `i:<what>`)
-- Returns the intent's lookups so far, 0 when there is no such intent.
local raw = redis.call('HGET', KEYS[1], 'i:' .. ARGV[1])
if not raw then return 0 end
local intent = cjson.decode(raw)
intent.checks = (intent.checks or 0) + 1
redis.call('HSET', KEYS[1], 'i:' .. ARGV[1], cjson.encode(intent))
return intent.checks
