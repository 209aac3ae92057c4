-- What Keap said in one answer corrects the shared state of every scope (worker/throttle/pacing.py,
-- Throttle.observe). `now` and `DAY` come from the preamble now.lua.
-- Preamble: now (prepended by the loader)
--
-- KEYS: per scope i, its hash KEYS[2i-1] and its sorted set KEYS[2i] (as for reserve.lua).
-- ARGV: [1] now ms ('' = Redis TIME), [2] the slot of the answered call (ms), [3] jitter ms (how far from its slot
--   a send of ours may have been counted), [4] member prefix (for calls of others added to the window), [5] push
--   ms (how much later than its slot the call left, beyond what the margin covers), [6] ceiling ms (the schedule
--   never moves further than this ahead of now); then per scope i, from ARGV[7 + 10(i-1)]: window used, window
--   limit, window width ms, day used, day limit, reset ms, pause ms,
--   shortest pause ms (set: a spike arrest Keap does not time, the pause doubles while 429s keep coming),
--   pause daily ('1'/'0'), said (JSON of the answer's headers, kept for operators). '' = unknown, for each.
-- Returns the number of calls of others added to the windows (Keap counted more than we sent).
local slot, jitter, member, push = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local ceiling = tonumber(ARGV[6])
local added = 0
for i = 1, #KEYS / 2 do
  local h, z, a = KEYS[2 * i - 1], KEYS[2 * i], 6 + (i - 1) * 10
  local used, limit, width = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local day_used, day_limit, reset = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local pause, pause_min, pause_daily, said = tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8]), ARGV[a + 9], ARGV[a + 10]
  if said ~= '' then redis.call('HSET', h, 'said', said, 'said_at', string.format('%.0f', now)) end
  if limit then redis.call('HSET', h, 'keap_window_limit', limit) end
  if day_limit then redis.call('HSET', h, 'keap_day_limit', day_limit) end
  if reset then redis.call('HSET', h, 'keap_reset', reset) end
  if push > 0 then
    -- The call left late: later slots move by as much, so every N sends still span the window; never further
    -- than the ceiling, so the lateness of calls that left together does not add up to a stall.
    local tat = tonumber(redis.call('HGET', h, 'tat')) or 0
    if tat > now then redis.call('HSET', h, 'tat', string.format('%.3f', math.min(tat + push, now + ceiling))) end
  end
  if used and width then
    -- Keap counted this call among `used`; ours that Keap may have counted lie within the jitter of the slot.
    -- The rest is someone else on the same key (or counters we lost): they stay in our window a full width.
    local ours = redis.call('ZCOUNT', z, slot - width - jitter, slot + jitter)
    local extra = math.min(used - ours, limit or used)
    for j = 1, extra do redis.call('ZADD', z, slot, member .. ':' .. j) end
    if extra > 0 then
      redis.call('PEXPIRE', z, width + 60000)
      added = added + extra
    end
  end
  if day_used then
    local d = math.floor(slot / DAY)
    local f = redis.call('HMGET', h, 'day', 'total')
    local day = tonumber(f[1]) or -1
    if d > day then
      redis.call('HSET', h, 'day', d, 'total', day_used, 'live', 0, 'backfill', 0)
    elseif d == day and day_used > (tonumber(f[2]) or 0) then
      redis.call('HSET', h, 'total', day_used)
    end
  end
  if pause and pause > 0 then
    local f = redis.call('HMGET', h, 'pause_set', 'pause_until', 'pause_streak')
    local set, until_, streak = tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0
    -- Once: a 429 for a call sent before the current pause was decided is the same news, not a new pause.
    if slot > set then
      if pause_min then
        -- A spike arrest Keap does not time: short at first, doubling while 429s keep coming.
        if now - until_ < 2000 then streak = streak + 1 else streak = 0 end
        pause = math.min(pause, pause_min * 2 ^ streak)
      end
      redis.call('HSET', h, 'pause_set', string.format('%.3f', now), 'pause_streak', streak,
                 'pause_until', string.format('%.3f', math.max(until_, now + pause)), 'pause_daily', pause_daily)
    end
  end
  redis.call('PEXPIRE', h, 2 * DAY)
end
return added
