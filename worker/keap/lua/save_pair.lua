-- Store a refreshed token pair and lift a pause that a losing twin of this refresh raised
-- (worker/keap/tokens.py, TokenStore.save).
-- Preamble: none
-- One SET, so a reader sees the old pair or the new one, never neither. A pause caused by a refresh that raced
-- with this one (it sent the same refresh token and lost) is lifted: the grant is alive.
--
-- KEYS: [1] the pair, [2] the pause flag (JSON with `grant`, the fingerprint of the refused refresh token).
-- ARGV: [1] the encrypted pair, [2] fingerprint of the refresh token it replaces ('' = none).
-- Returns 1 when it lifted a pause, else 0.
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  local paused = redis.call('GET', KEYS[2])
  if paused and cjson.decode(paused).grant == ARGV[2] then
    redis.call('DEL', KEYS[2])
    return 1
  end
end
return 0
