-- Retention: compact a done order to its done marker. It keeps its status, when it finished and the ids of every
-- write that has no idempotency key in Keap (what a step checks before writing, so a re-sent order writes nothing
-- again) and its lane (its count by lane stays right); the message (the customer's data), custom-field values,
-- checks, errors and counters go, and so do its entries in the indexes by email, Keap order id and contact id.
-- Preamble: now (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the done index, KEYS[3] the email-index prefix ('<prefix>:email:'), KEYS[4] the
--   hash of Keap order ids, KEYS[5] the contact-index prefix ('<prefix>:contact:')
-- ARGV[1] external id, ARGV[2] cutoff (server time: only orders finished before it), ARGV[3] when to look again
--   at an order busy with a step sent on its own
-- Returns 1 when compacted, else 0 (not due; not done any more: dropped from the index; busy: looked at later).
local done_at = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not done_at or tonumber(done_at) > tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'done' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'single') == 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return 0
end
local found = redis.call('HMGET', KEYS[1], 'email_digest', 'r:order_id', 'r:contact_id', 'lane')
if found[1] then redis.call('SREM', KEYS[3] .. found[1], ARGV[1]) end
if found[2] and redis.call('HGET', KEYS[4], 'order:' .. found[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[4], 'order:' .. found[2])
end
if found[3] then redis.call('SREM', KEYS[5] .. found[3], ARGV[1]) end
local fields = redis.call('HGETALL', KEYS[1])
local keep = {'status', 'done', 'done_at', done_at, 'compacted_at', tostring(now), 'lane', found[4] or 'live'}
for i = 1, #fields, 2 do
  local name = fields[i]
  if name == 'r:order_id' or name == 'r:contact_id' or string.match(name, '^r:item:') or
     string.match(name, '^r:payment:') or string.match(name, '^r:subscription:') or string.match(name, '^r:invoice:') then
    table.insert(keep, name)
    table.insert(keep, fields[i + 1])
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(keep))
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
