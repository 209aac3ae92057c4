-- One Sentry warning per refusal reason and interval, fleet-wide (worker/ops/sentry.py, Refusals.report): counts the
-- refusals held back since the last warning, and lets one through per interval.
-- Preamble: none
-- KEYS: [1] the reason's "sent lately" flag, [2] its counter.
-- ARGV: [1] seconds between warnings.
-- Returns how many refusals the warning to send now stands for (this one and those held back since the last), or 0
-- to hold this one back.
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 2 * tonumber(ARGV[1]) + 86400)
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('SET', KEYS[2], 0, 'KEEPTTL')
  return n
end
return 0
