-- Take one send slot for one Keap call, in every scope at once (worker/throttle/pacing.py, Throttle.reserve).
-- `now` and `DAY` come from the preamble now.lua.
-- Preamble: now (prepended by the loader)
-- A scope is a credential or a Keap account: a hash (pacing time `tat`, pause, today's counters, the limits Keap
-- reported) and a sorted set of the sends in its longest rolling window (member = a send, score = its slot ms).
--
-- KEYS: per scope i, its hash KEYS[2i-1] and its sorted set KEYS[2i].
-- ARGV: [1] now ms ('' = Redis TIME), [2] lane ('live' or 'backfill'), [3] horizon ms (how far ahead this call
--   may reserve), [4] backfill share of the day (0..1), [5] member (names this send in the sorted sets),
--   [6] reset margin ms (after a daily reset); then per scope i, from ARGV[7 + 4(i-1)]: interval ms (the pace),
--   window limit (0 = no rolling window), window width ms, day limit (0 = none).
-- Returns {granted (1/0), wait in µs (to the slot, or to the first slot this lane could get), daily (1/0: the
--   wait runs to a daily reset), slot ms ('' when not granted), now ms}. Nothing is written unless granted.
local lane, horizon, share = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local member, reset_margin = ARGV[5], tonumber(ARGV[6])
local scopes = {}
for i = 1, #KEYS / 2 do
  local a = 6 + (i - 1) * 4
  local f = redis.call('HMGET', KEYS[2 * i - 1], 'tat', 'pause_until', 'pause_daily', 'day', 'total', 'live',
                       'backfill', 'keap_window_limit', 'keap_day_limit', 'keap_reset')
  local s = {h = KEYS[2 * i - 1], z = KEYS[2 * i], interval = tonumber(ARGV[a + 1]), limit = tonumber(ARGV[a + 2]),
             width = tonumber(ARGV[a + 3]), day_limit = tonumber(ARGV[a + 4]), tat = tonumber(f[1]) or 0,
             pause = tonumber(f[2]) or 0, pause_daily = f[3] == '1', day = tonumber(f[4]) or -1,
             total = tonumber(f[5]) or 0, live = tonumber(f[6]) or 0, backfill = tonumber(f[7]) or 0,
             keap_reset = tonumber(f[10]) or 0}
  -- Keap's own figure wins when it is lower than ours (a custom plan, or a profile that does not fit), for the
  -- window and for the pace that fills it.
  if f[8] and s.limit > 0 and tonumber(f[8]) < s.limit then
    s.limit = tonumber(f[8])
    s.interval = math.max(s.interval, s.width / s.limit)
  end
  if f[9] and s.day_limit > 0 then s.day_limit = math.min(s.day_limit, tonumber(f[9])) end
  if s.limit > 0 then redis.call('ZREMRANGEBYSCORE', s.z, '-inf', now - s.width) end
  scopes[i] = s
end
-- The earliest time every scope allows; moving it for one scope can matter to another, hence the passes.
local t, daily = now, false
for pass = 1, 4 do
  local moved = false
  for _, s in ipairs(scopes) do
    local start = math.max(t, s.tat)
    if s.pause > start then start = s.pause; daily = daily or s.pause_daily end
    if s.limit > 0 then
      local inside = redis.call('ZCOUNT', s.z, '(' .. (start - s.width), '+inf')
      if inside >= s.limit then
        local n = redis.call('ZCARD', s.z)
        local oldest = redis.call('ZRANGE', s.z, n - s.limit, n - s.limit, 'WITHSCORES')
        start = math.max(start, tonumber(oldest[2]) + s.width)
      end
    end
    local d = math.floor(start / DAY)
    local total, live, bf = 0, 0, 0
    if d == s.day then total, live, bf = s.total, s.live, s.backfill end
    if s.day_limit > 0 then
      local full = total >= s.day_limit
      if lane == 'backfill' then
        -- The backfill stops at its share, and never eats the part of the day live calls have not used yet.
        local reserve = math.max(0, math.ceil((1 - share) * s.day_limit) - live)
        full = full or bf >= math.floor(share * s.day_limit) or total >= s.day_limit - reserve
      end
      if full then
        local reset = (d + 1) * DAY
        if s.keap_reset > reset and s.keap_reset < reset + DAY then reset = s.keap_reset end
        start = math.max(start, reset + reset_margin)
        daily = true
      end
    end
    if start > t then t = start; moved = true end
  end
  if not moved then break end
end
local wait = t - now
if wait > horizon then return {0, math.floor(wait * 1000), daily and 1 or 0, '', string.format('%.3f', now)} end
for _, s in ipairs(scopes) do
  local d = math.floor(t / DAY)
  if d ~= s.day then redis.call('HSET', s.h, 'day', d, 'total', 0, 'live', 0, 'backfill', 0) end
  redis.call('HSET', s.h, 'tat', string.format('%.3f', t + s.interval))
  redis.call('HINCRBY', s.h, 'total', 1)
  redis.call('HINCRBY', s.h, lane == 'backfill' and 'backfill' or 'live', 1)
  redis.call('PEXPIRE', s.h, 2 * DAY)
  if s.limit > 0 then
    redis.call('ZADD', s.z, t, member)
    redis.call('PEXPIRE', s.z, s.width + 60000)
  end
end
return {1, math.floor(wait * 1000), 0, string.format('%.3f', t), string.format('%.3f', now)}
