-- Before a non-idempotent Keap write: if Redis lost writes this order may have made (it was registered before the
-- latest loss, or within a grace after it), treat the write as unanswered, sent at the loss: an intent, so the
-- write looks in Keap first. An order with an intent for the write (a lost answer) is put in the audit index.
-- Preamble: now, identity (prepended by the loader)
-- KEYS[1] the ledger's record of Redis, KEYS[2] the losses found, KEYS[3] the status-set prefix, KEYS[4] the
--   order's hash, KEYS[5] the audit index (orders by the time they are audited)
-- ARGV[1] what is written, ARGV[2] run id seen last, ARGV[3] epoch seen last, ARGV[4] grace seconds after a loss,
--   ARGV[5] lookups already counted in such an intent, ARGV[6] seconds until the audit, ARGV[7] external id
-- Returns {run id, epoch, time of the latest loss, why (a loss found now), the write's intent (JSON) or ''}.
local run, epoch, loss_at, why = identity(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3])
local created = redis.call('HGET', KEYS[4], 'created_at')
if not created then return {run, epoch, loss_at, why, ''} end
local intent = redis.call('HGET', KEYS[4], 'i:' .. ARGV[1])
if not intent and loss_at ~= '' and tonumber(created) < tonumber(loss_at) + tonumber(ARGV[4])
    and redis.call('HGET', KEYS[4], 'x:' .. ARGV[1]) ~= loss_at then
  -- x:<what> remembers the loss this write was looked up for: once per write and loss.
  intent = cjson.encode({at = tonumber(loss_at), checks = tonumber(ARGV[5])})
  redis.call('HSET', KEYS[4], 'i:' .. ARGV[1], intent, 'x:' .. ARGV[1], loss_at)
end
if not intent then return {run, epoch, loss_at, why, ''} end
redis.call('ZADD', KEYS[5], 'NX', now + tonumber(ARGV[6]), ARGV[7])
local whats = redis.call('HGET', KEYS[4], 'audit') or ''
if not string.find(',' .. whats .. ',', ',' .. ARGV[1] .. ',', 1, true) then
  redis.call('HSET', KEYS[4], 'audit', whats == '' and ARGV[1] or (whats .. ',' .. ARGV[1]))
end
return {run, epoch, loss_at, why, intent}
