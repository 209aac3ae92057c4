-- Cancel an order for good: no script moves an order out of `cancelled`.
-- Preamble: move (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the status-set prefix, KEYS[3] the watch set
-- ARGV[1] external id
-- Returns the status it had, or false when the order is unknown.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
move(KEYS[1], KEYS[2], ARGV[1], 'cancelled')
redis.call('HDEL', KEYS[1], 'single', 'parked_until', 'parked_reason')
redis.call('ZREM', KEYS[3], ARGV[1])
return status
