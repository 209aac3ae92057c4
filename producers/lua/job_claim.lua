-- Take a backfill job to read its file: the job must be queued or running (its feeder died) and its lease free.
-- KEYS[1] job hash, KEYS[2] the job's lease key
-- ARGV[1] token, ARGV[2] lease milliseconds, ARGV[3] server time now (seconds)
-- Returns "ok", "busy" (another feeder holds it) or the job's status when it is not to be read.
-- Preamble: none
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then
  return status or 'missing'
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 'busy'
end
redis.call('HSET', KEYS[1], 'status', 'running', 'feeder_at', ARGV[3])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'claims', 1)
return 'ok'
