-- Preamble, prepended by the loader (worker/lua.py) to the scripts that name it in their header.
-- move(order, index, id, new): moves the order (its hash key) from its status to `new`, in the hash and in the
-- status sets (`index` is the status-set prefix, `id` the external id); returns the old status (false if none).
local function move(order, index, id, new)
  local old = redis.call('HGET', order, 'status')
  if old then redis.call('SREM', index .. old, id) end
  redis.call('SADD', index .. new, id)
  redis.call('HSET', order, 'status', new)
  return old
end
