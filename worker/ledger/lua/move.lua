-- Preamble, prepended by the loader (worker/lua.py) to the scripts that name it in their header.
-- move(order, index, id, new[, lane]): moves the order (its hash key) from its status to `new`, in the hash and in
-- the status sets (`index` is the status-set prefix, `id` the external id), and its count in the hash of counts by
-- lane and status (`index .. 'by-lane'`, fields `<lane>:<status>`); `lane` (optional) moves it to that lane too.
-- A count goes down only when the order left a set and up only when it entered one, so the counts by lane always
-- add up to the status sets' SCARD. Returns the old status (false if none).
local function move(order, index, id, new, lane)
  local old = redis.call('HGET', order, 'status')
  local was = redis.call('HGET', order, 'lane') or 'live'
  lane = lane or was
  if old and redis.call('SREM', index .. old, id) == 1 then
    redis.call('HINCRBY', index .. 'by-lane', was .. ':' .. old, -1)
  end
  if redis.call('SADD', index .. new, id) == 1 then
    redis.call('HINCRBY', index .. 'by-lane', lane .. ':' .. new, 1)
  end
  redis.call('HSET', order, 'status', new, 'lane', lane)
  return old
end
