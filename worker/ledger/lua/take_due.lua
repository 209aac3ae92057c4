-- The keeper takes a due order and gets what it needs to decide; two keepers never take the same order at once.
-- Preamble: now (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the watch set, KEYS[3] the order's lease
-- ARGV[1] external id, ARGV[2] seconds until the keeper may look at it again
-- Returns nil when the order is not due (any more), else {status, step, lane, single, parked_until, redrives,
-- parked_reason ('' for each missing field), lease alive (1/0), server time}; the order's watch moves ARGV[2] on.
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > now then return nil end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local fields = redis.call('HMGET', KEYS[1], 'status', 'step', 'lane', 'single', 'parked_until', 'redrives',
                          'parked_reason')
for i = 1, #fields do if not fields[i] then fields[i] = '' end end
table.insert(fields, redis.call('EXISTS', KEYS[3]))
table.insert(fields, tostring(now))
return fields
