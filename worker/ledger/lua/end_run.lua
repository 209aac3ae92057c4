-- End a step run: release the run's lease and move the order as the verb says (Ledger.advance, retry, ...).
-- Preamble: now, move (prepended by the loader)
-- KEYS[1] the order's hash, KEYS[2] the status-set prefix, KEYS[3] the watch set, KEYS[4] the order's lease,
--   KEYS[5] the done index
-- ARGV[1] external id, ARGV[2] the run's lease token ('' outside a run), ARGV[3] ticket ('' = a step sent on its
--   own, or outside a run), ARGV[4] the verb, then the verb's arguments:
--   advance        ARGV[5] the next step, ARGV[6] seconds it has to start within, ARGV[7] (optional) seconds after
--                  which the keeper looks whether the worker that sends the next message still lives: queued at the
--                  next step, that worker its holder (the finished step's time and attempts kept as `s:<step>`)
--   retry          ARGV[5] the same step, ARGV[6] seconds it has to start within: queued again (re-drives kept)
--   park           ARGV[5] step, ARGV[6] until (server time), ARGV[7] reason: waiting, watched until then
--   finish         (none): done, in the done index, no longer watched unless a step sent on its own is pending
--   fail           ARGV[5] error, ARGV[6] step, ARGV[7] error kind: failed, no longer watched (a step sent on its
--                  own failing on an order failed already keeps the first failure)
--   finish_single  ARGV[5] step: a step sent on its own finished; it leaves the pending single steps (and, with none
--                  left, the watch of a finished order goes)
--   release        (none): only the lease goes and updated_at is set; the order is not moved
-- A chain verb (advance, retry, park, finish) counts only under the order's current ticket.
-- Returns 1, or 0 when the order is missing or cancelled or moved on without this run (another ticket).
local status = redis.call('HGET', KEYS[1], 'status')
if redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
if not status or status == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', now)
local verb = ARGV[4]
-- The chain step this run finished: when, and the order's attempts so far (the console's timeline per step).
local function stamp()
  local step = redis.call('HGET', KEYS[1], 'step')
  if step then
    redis.call('HSET', KEYS[1], 's:' .. step, string.format('%.3f %d', now, tonumber(redis.call('HGET', KEYS[1],
               'attempts') or '0')))
  end
end
-- Takes `step` out of the order's pending single steps (watch_single.lua); returns those left ('' for none).
local function unpend(step)
  local left = {}
  for name in string.gmatch(redis.call('HGET', KEYS[1], 'single') or '', '%S+') do
    if name ~= step then table.insert(left, name) end
  end
  if #left == 0 then redis.call('HDEL', KEYS[1], 'single') return '' end
  redis.call('HSET', KEYS[1], 'single', table.concat(left, ' '))
  return table.concat(left, ' ')
end
if verb == 'fail' and ARGV[3] == '' and status == 'failed' then
  -- A step sent on its own failed on an order that had failed already: the first failure stays the one to fix
  -- (and the step a retry resumes at).
  unpend(ARGV[6])
  return 1
end
if verb == 'fail' then
  move(KEYS[1], KEYS[2], ARGV[1], 'failed')
  redis.call('HSET', KEYS[1], 'error', ARGV[5], 'error_step', ARGV[6], 'error_kind', ARGV[7])
  redis.call('HDEL', KEYS[1], 'single', 'parked_until', 'parked_reason')
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
if ARGV[3] == '' then
  if verb == 'finish_single' and unpend(ARGV[5]) == '' and (status == 'done' or status == 'failed') then
    redis.call('ZREM', KEYS[3], ARGV[1])
  end
  return 1
end
if redis.call('HGET', KEYS[1], 'ticket') ~= ARGV[3] then return 0 end
if verb == 'finish' then
  stamp()
  move(KEYS[1], KEYS[2], ARGV[1], 'done')
  redis.call('HSET', KEYS[1], 'done_at', now)
  redis.call('ZADD', KEYS[5], now, ARGV[1])
  redis.call('HDEL', KEYS[1], 'step', 'parked_until', 'parked_reason')
  if not redis.call('HGET', KEYS[1], 'single') then redis.call('ZREM', KEYS[3], ARGV[1]) end
elseif verb == 'advance' or verb == 'retry' then
  if verb == 'advance' then stamp() end
  move(KEYS[1], KEYS[2], ARGV[1], 'queued')
  redis.call('HSET', KEYS[1], 'step', ARGV[5])
  local watch = now + tonumber(ARGV[6])
  if verb == 'advance' then
    redis.call('HSET', KEYS[1], 'redrives', 0)
    -- The worker that held this step's message sends the next one: until another worker receives it, that worker is
    -- its holder, so its death before the message left is seen within ARGV[7] seconds, not the stall time.
    local held, _, worker = string.match(redis.call('HGET', KEYS[1], 'holder') or '', '^(%S+) (%S+) (.+)$')
    if held == ARGV[3] and ARGV[7] then
      redis.call('HSET', KEYS[1], 'holder', ARGV[3] .. ' ' .. ARGV[5] .. ' ' .. worker)
      watch = math.min(watch, now + tonumber(ARGV[7]))
    end
  end
  redis.call('ZADD', KEYS[3], watch, ARGV[1])
elseif verb == 'park' then
  move(KEYS[1], KEYS[2], ARGV[1], 'waiting')
  redis.call('HSET', KEYS[1], 'step', ARGV[5], 'parked_until', ARGV[6], 'parked_reason', ARGV[7])
  redis.call('ZADD', KEYS[3], tonumber(ARGV[6]), ARGV[1])
end
return 1
