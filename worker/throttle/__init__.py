"""The rate limit shared by every worker process on every host: Keap's limits (limits), paced in Redis (pacing),
taken by the HTTP session right before each request leaves (session)."""
from worker.throttle.limits import ACCOUNT_LIMITS, PROFILES, Scope, Window, parse_limits
from worker.throttle.pacing import LANE, Permit, QuotaWait, Reservation, Throttle
from worker.throttle.session import ThrottledSession

__all__ = ["ACCOUNT_LIMITS", "LANE", "PROFILES", "Permit", "QuotaWait", "Reservation", "Scope", "Throttle",
           "ThrottledSession", "Window", "parse_limits"]
