-- A step sent on its own for a done or failed order: it joins the order's pending single steps (`single`, names
-- separated by spaces: two sent at once are both seen through) and the keeper watches the order until they finish.
-- Preamble: now (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the watch set
-- ARGV[1] external id, ARGV[2] the step, ARGV[3] seconds it has to start within
-- Returns the pending single steps after this one joined.
local pending = redis.call('HGET', KEYS[1], 'single') or ''
if not string.find(' ' .. pending .. ' ', ' ' .. ARGV[2] .. ' ', 1, true) then
  pending = (pending == '' and ARGV[2]) or (pending .. ' ' .. ARGV[2])
  redis.call('HSET', KEYS[1], 'single', pending)
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return pending
