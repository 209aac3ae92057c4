-- The time this script runs at, shared by reserve.lua and observe.lua: the loader (worker/lua.py) puts this file in
-- front of them, so they use `now` and `DAY` without defining them.
-- ARGV[1]: now in ms ('' = Redis server TIME; tests pass an explicit time).
-- Defines: now (ms since the epoch, with µs as decimals), DAY (a UTC day in ms).
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 end
local DAY = 86400000
