-- A worker received a chain message of an order (it may hold it a while: prefetched, or a retry's countdown): the
-- order remembers who holds it, so the keeper re-sends it as soon as that worker is gone, not after the stall time.
-- Preamble: now
-- KEYS[1] the order's hash, KEYS[2] the watch set
-- ARGV[1] external id, ARGV[2] the message's ticket, ARGV[3] its step, ARGV[4] the worker's name, ARGV[5] seconds
--   after which the keeper looks whether the holder still lives
-- Returns 1 when recorded; 0 when the message is not the order's current one (stale, or the order moved on).
local f = redis.call('HMGET', KEYS[1], 'status', 'ticket', 'step')
if f[1] ~= 'queued' or f[2] ~= ARGV[2] or f[3] ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
local at = now + tonumber(ARGV[5])
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if score and tonumber(score) > at then redis.call('ZADD', KEYS[2], at, ARGV[1]) end
return 1
