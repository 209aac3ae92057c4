"""The rate limit shared by every worker process on every host: Keap's limits (limits), paced in Redis (pacing),
taken by the HTTP session right before each request leaves (session)."""
from worker.throttle.limits import Scope, Window, parse_limits
from worker.throttle.pacing import LANE, QuotaWait, Throttle
from worker.throttle.session import ThrottledSession

__all__ = ["LANE", "QuotaWait", "Scope", "Throttle", "ThrottledSession", "Window", "parse_limits"]
