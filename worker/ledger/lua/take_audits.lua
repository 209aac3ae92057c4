-- Take the orders whose audit is due, each for a while (another keeper skips them meanwhile).
-- Preamble: now (prepended by the loader)
-- KEYS[1] the audit index, KEYS[2] the order-hash prefix ('<prefix>:order:')
-- ARGV[1] how many at most, ARGV[2] seconds they are held (they are due again after, unless done)
-- Returns a flat list: external id, the writes to audit (comma-separated), ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, ext in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ext)
  table.insert(out, ext)
  table.insert(out, redis.call('HGET', KEYS[2] .. ext, 'audit') or '')
end
return out
