-- Count the orders of every status by lane from the status sets, in one script (nothing moves while it counts),
-- and write the counts by lane (lua/move.lua keeps them from then on). O(orders): a one-off after an upgrade
-- (`keap-orders gc --index-existing`), never a page's read.
-- Preamble: none
-- KEYS[1] the status-set prefix, KEYS[2] the order-hash prefix ('<prefix>:order:'), KEYS[3] the counts by lane
-- ARGV[1], ARGV[2], ... the statuses
-- Returns the counts as a flat list: field (`<lane>:<status>`), count, ...
local counts, out = {}, {}
for _, status in ipairs(ARGV) do
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1] .. status)) do
    local field = (redis.call('HGET', KEYS[2] .. id, 'lane') or 'live') .. ':' .. status
    counts[field] = (counts[field] or 0) + 1
  end
end
redis.call('DEL', KEYS[3])
for field, n in pairs(counts) do
  table.insert(out, field)
  table.insert(out, n)
end
if #out > 0 then redis.call('HSET', KEYS[3], unpack(out)) end
return out
