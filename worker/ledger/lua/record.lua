-- Record Keap effects (ids) and clear their intents, only while the caller holds the order's lease. Without it the
-- ledger is left as it is; the answer to a write is kept in the orphans instead, unless the ledger already has it.
-- Preamble: now (prepended by the loader)
-- The Keap order id and contact id are indexed on the way (the console finds an order by either): the order id in
-- the hash of Keap ids (`order:<id>` -> external id), the contact id in the contact's set of orders.
-- KEYS[1] the order's hash, KEYS[2] the order's lease, KEYS[3] the orphans (sorted set by Redis time), KEYS[4] the
--   hash of Keap order ids, KEYS[5] the contact-index prefix ('<prefix>:contact:')
-- ARGV[1] the caller's lease token ('' = no lease check), ARGV[2] the order's external id, ARGV[3] the write these
--   results answer ('' = not a write's answer), then pairs: ARGV[4] name, ARGV[5] value, ...
-- Returns 1 when recorded, 0 when not (no lease) and nothing was kept, -1 when kept as an orphan write.
if ARGV[1] == '' or redis.call('GET', KEYS[2]) == ARGV[1] then
  for i = 4, #ARGV, 2 do
    local was = redis.call('HGET', KEYS[1], 'r:' .. ARGV[i])
    if ARGV[i] == 'order_id' then
      if was and was ~= ARGV[i + 1] and redis.call('HGET', KEYS[4], 'order:' .. was) == ARGV[2] then
        redis.call('HDEL', KEYS[4], 'order:' .. was)
      end
      redis.call('HSET', KEYS[4], 'order:' .. ARGV[i + 1], ARGV[2])
    elseif ARGV[i] == 'contact_id' then
      if was and was ~= ARGV[i + 1] then redis.call('SREM', KEYS[5] .. was, ARGV[2]) end
      redis.call('SADD', KEYS[5] .. ARGV[i + 1], ARGV[2])
    end
    redis.call('HSET', KEYS[1], 'r:' .. ARGV[i], ARGV[i + 1])
    redis.call('HDEL', KEYS[1], 'i:' .. ARGV[i])
  end
  return 1
end
if ARGV[3] == '' then return 0 end
local results, same = {}, true
for i = 4, #ARGV, 2 do
  results[ARGV[i]] = ARGV[i + 1]
  if redis.call('HGET', KEYS[1], 'r:' .. ARGV[i]) ~= ARGV[i + 1] then same = false end
end
if same then return 0 end  -- the run that took over found this very write and recorded it
redis.call('ZADD', KEYS[3], now, cjson.encode({external_id = ARGV[2], what = ARGV[3], results = results,
                                               at = now}))
return -1
