-- Register an order: store its message and mark it queued (a producer's enqueue, an operator's retry).
-- Preamble: now, move (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the status-set prefix, KEYS[3] the watch set, KEYS[4] the email-index prefix
--   ('<prefix>:email:')
-- ARGV[1] external id, ARGV[2] the message (JSON), ARGV[3] lane, ARGV[4] force ('1'/'0'), ARGV[5] the step to
--   start from ('' = resume: a failed order at its failed step, a new one at the first), ARGV[6] the first step,
--   ARGV[7] the new ticket, ARGV[8] seconds the order has to start within (its watch deadline), ARGV[9] the digest
--   of the customer's email ('' for none): the order joins that email's set (and leaves the one of an earlier email)
-- Returns {registered (1/0), previous status ('' if new), the step to send}. Refused when cancelled, and when the
-- order exists and is not failed unless forced.
local old = redis.call('HGET', KEYS[1], 'status')
if old == 'cancelled' or (old and ARGV[4] ~= '1' and old ~= 'failed') then return {0, old, ''} end
local step = ARGV[5]
if step == '' then
  step = (old == 'failed' and redis.call('HGET', KEYS[1], 'error_step')) or ARGV[6]
end
move(KEYS[1], KEYS[2], ARGV[1], 'queued', ARGV[3])
local email = redis.call('HGET', KEYS[1], 'email_digest')
if email and email ~= ARGV[9] then redis.call('SREM', KEYS[4] .. email, ARGV[1]) end
if ARGV[9] ~= '' then
  redis.call('SADD', KEYS[4] .. ARGV[9], ARGV[1])
  redis.call('HSET', KEYS[1], 'email_digest', ARGV[9])
else
  redis.call('HDEL', KEYS[1], 'email_digest')
end
redis.call('HSET', KEYS[1], 'message', ARGV[2], 'step', step, 'ticket', ARGV[7],
           'updated_at', now, 'redrives', 0)
redis.call('HSETNX', KEYS[1], 'created_at', now)
redis.call('HDEL', KEYS[1], 'error', 'error_step', 'error_kind', 'parked_until', 'parked_reason', 'single',
           'compacted_at')
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[8]), ARGV[1])
return {1, old or '', step}
