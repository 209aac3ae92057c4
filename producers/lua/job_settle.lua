-- Orders of a job that finished: each leaves the in-flight set and adds to one count, once (SREM decides), so
-- any process may settle a job at any time and none counts an order twice.
-- KEYS[1] job hash, KEYS[2] in-flight set
-- ARGV pairs: external id, counter (done, failed, cancelled)
-- Returns how many were settled by this call.
-- Preamble: none
local settled = 0
for i = 1, #ARGV, 2 do
  if redis.call('SREM', KEYS[2], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[i + 1], 1)
    settled = settled + 1
  end
end
return settled
