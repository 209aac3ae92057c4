-- Check that Redis has not lost acknowledged writes since the ledger (or this process) last saw it (see identity.lua).
-- Preamble: now, identity (prepended by the loader)
-- KEYS[1] the ledger's record of Redis, KEYS[2] the losses found, KEYS[3] the status-set prefix
-- ARGV[1] the run id this process saw last ('' if none), ARGV[2] the epoch it saw last ('' if none)
-- Returns {run id, epoch, time of the latest loss ('' if none), why ('' unless a loss was found by this call)}.
local run, epoch, loss_at, why = identity(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
return {run, epoch, loss_at, why}
