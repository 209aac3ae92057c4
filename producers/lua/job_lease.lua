-- Renew or give up a feeder's lease on a job, only while `token` holds it.
-- KEYS[1] the job's lease key
-- ARGV[1] token, ARGV[2] "renew" or "release", ARGV[3] lease milliseconds (renew)
-- Returns 1 if the token held the lease, else 0.
-- Preamble: none
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
