-- One row of a job's file is handled: its position, one count, the order in flight or the invalid row, at once;
-- only by the feeder holding the lease (a feeder that lost it writes nothing, so no row counts twice).
-- KEYS[1] job hash, KEYS[2] lease key, KEYS[3] in-flight set, KEYS[4] invalid-rows list
-- ARGV[1] token, ARGV[2] rows read so far, ARGV[3] file line, ARGV[4] counter (sent, skipped, cancelled,
-- invalid), ARGV[5] external id to watch ('' for none), ARGV[6] the invalid row as JSON ('' for none)
-- Returns 1, or 0 when the lease is not the caller's.
-- Preamble: none
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'position', ARGV[2], 'line', ARGV[3])
redis.call('HDEL', KEYS[1], 'pending')
redis.call('HINCRBY', KEYS[1], ARGV[4], 1)
if ARGV[5] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[5])
end
if ARGV[6] ~= '' then
  redis.call('RPUSH', KEYS[4], ARGV[6])
end
return 1
