-- Preamble, prepended by the loader (worker/lua.py) to the scripts that name it in their header.
-- Defines `now`: Redis server time in seconds (a float), the clock every host and every script shares.
local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
