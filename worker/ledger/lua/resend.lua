-- The keeper sends an order again: queued under a new ticket (older messages of it become stale); for a finished
-- order with a step sent on its own pending, only the watch moves.
-- Preamble: now, move (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the status-set prefix, KEYS[3] the watch set
-- ARGV[1] external id, ARGV[2] the status the keeper saw, ARGV[3] the new ticket, ARGV[4] seconds it has to start
--   within, ARGV[5] counts as a re-drive ('1'/'0')
-- Returns the new ticket, or false if the order moved meanwhile (or is finished with nothing pending).
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= ARGV[2] then return false end
if status == 'done' or status == 'failed' then
  if not redis.call('HGET', KEYS[1], 'single') then return false end
else
  move(KEYS[1], KEYS[2], ARGV[1], 'queued')
  redis.call('HSET', KEYS[1], 'ticket', ARGV[3])
end
redis.call('HDEL', KEYS[1], 'parked_until', 'parked_reason')
if ARGV[5] == '1' then
  redis.call('HINCRBY', KEYS[1], 'redrives', 1)
  redis.call('HINCRBY', KEYS[1], 'resends', 1)
end
redis.call('HSET', KEYS[1], 'updated_at', now)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
return ARGV[3]
