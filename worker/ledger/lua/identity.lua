-- Preamble, prepended by the loader (worker/lua.py) to the scripts that name it in their header.
-- Defines `identity(id_key, losses_key, status_prefix, seen_run, seen_epoch)`: whether Redis may have lost
-- acknowledged writes since the ledger (or this process) last saw it. The ledger keeps the run id of the Redis that
-- wrote it and an epoch; a restart or failover (another run id), a restore to before the record existed, or an epoch
-- lower than one this process saw is a loss: the epoch moves on and the loss is noted (time, why).
-- Returns run id, epoch, the time of the latest loss (a string, '' if none), why ('' unless a loss was found now).
local function identity(id_key, losses_key, status_prefix, seen_run, seen_epoch)
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  local stored = redis.call('HGET', id_key, 'run_id')
  local epoch = tonumber(redis.call('HGET', id_key, 'epoch') or '0')
  local why = ''
  if not stored then
    if seen_run ~= '' then
      why = 'the ledger lost its record of Redis (emptied, or restored from before the record)'
    else
      for _, status in ipairs({'queued', 'running', 'waiting', 'done', 'failed', 'cancelled'}) do
        if redis.call('EXISTS', status_prefix .. status) == 1 then
          why = 'the ledger holds orders but no record of the Redis that wrote them'
          break
        end
      end
    end
  elseif stored ~= run then
    why = 'Redis restarted or failed over (run id ' .. string.sub(stored, 1, 8) .. ' -> ' .. string.sub(run, 1, 8) .. ')'
  elseif seen_epoch ~= '' and tonumber(seen_epoch) > epoch then
    why = 'the ledger went back to an earlier state (epoch ' .. epoch .. ', seen ' .. seen_epoch .. ')'
  end
  if not stored or why ~= '' then
    if seen_epoch ~= '' and tonumber(seen_epoch) > epoch then epoch = tonumber(seen_epoch) end
    epoch = epoch + 1
    redis.call('HSET', id_key, 'run_id', run, 'epoch', epoch, 'since', now)
    if why ~= '' then
      redis.call('HSET', id_key, 'loss_at', tostring(now))
      redis.call('ZADD', losses_key, now, cjson.encode({epoch = epoch, at = now, why = why}))
      redis.call('ZREMRANGEBYRANK', losses_key, 0, -51)
    end
  end
  return run, epoch, redis.call('HGET', id_key, 'loss_at') or '', why
end
