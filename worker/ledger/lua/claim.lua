-- Start a run of a step: take the order's lease, mark the order running (for a chain message).
-- Preamble: now, move (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the status-set prefix, KEYS[3] the watch set, KEYS[4] the order's lease
-- ARGV[1] external id, ARGV[2] step, ARGV[3] the run's lease token, ARGV[4] lease milliseconds, ARGV[5] ticket
--   ('' for a step sent on its own), ARGV[6] the steps' names joined by ',' (to compare positions)
-- Returns {verdict, status, lane}; verdict: ok (the lease is ours), busy (another run holds it), stale (a message
-- of an earlier sending or for a step behind the current one), cancelled, missing.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', '', ''} end
local lane = redis.call('HGET', KEYS[1], 'lane') or 'live'
if status == 'cancelled' then return {'cancelled', status, lane} end
if ARGV[5] ~= '' then
  -- A chain message counts only for the current sending of an active order, and never for a step behind it.
  if redis.call('HGET', KEYS[1], 'ticket') ~= ARGV[5] then return {'stale', status, lane} end
  if status ~= 'queued' and status ~= 'running' and status ~= 'waiting' then return {'stale', status, lane} end
  local names = ',' .. ARGV[6] .. ','
  local current = string.find(names, ',' .. (redis.call('HGET', KEYS[1], 'step') or '') .. ',', 1, true)
  if current and current > string.find(names, ',' .. ARGV[2] .. ',', 1, true) then return {'stale', status, lane} end
end
local holder = redis.call('GET', KEYS[4])
if holder and holder ~= ARGV[3] then return {'busy', status, lane} end
redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'updated_at', now)
local deadline = now + tonumber(ARGV[4]) / 1000 + 1
if ARGV[5] ~= '' then
  move(KEYS[1], KEYS[2], ARGV[1], 'running')
  redis.call('HSET', KEYS[1], 'step', ARGV[2], 'step_started_at', now)
  redis.call('HDEL', KEYS[1], 'parked_until', 'parked_reason')
  redis.call('ZADD', KEYS[3], deadline, ARGV[1])
elseif status == 'done' or status == 'failed' then
  redis.call('ZADD', KEYS[3], deadline, ARGV[1])
end
return {'ok', status, lane}
