"""Injectable faults (latency, 5xx, 429 bursts, commit-then-timeout, late commits), reproducible from a seed."""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from sandbox.readings import parse_readings

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERROR_STATUSES = (500, 502, 503)


@dataclass
class FaultConfig:
    """What `POST /__sandbox__/faults` accepts; every key optional, `{}` means no faults."""

    latency_ms: float | list[float] = 0
    error_rate: float = 0.0
    commit_then_timeout_rate: float = 0.0
    stall_seconds: float = 0.0
    # A write whose answer is lost at once and that Keap applies this many seconds later (after the settle time and
    # the lookups, if long enough): what the audit is for.
    late_commit_rate: float = 0.0
    late_commit_seconds: float = 0.0
    burst_429: int = 0
    routes: list[str] | None = None
    decline_rate: float = 0.0  # stored-card charges the card issuer declines (201, DECLINED, a FAILED payment)
    readings: list[str] = field(default_factory=list)  # other readings of what Keap leaves undocumented

    @classmethod
    def from_dict(cls, data: dict) -> "FaultConfig":
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}")
        config = cls(**data)
        config._check()
        return config

    def _check(self) -> None:
        latency = self.latency_ms
        if isinstance(latency, list):
            if len(latency) != 2 or not all(isinstance(v, (int, float)) and v >= 0 for v in latency) \
                    or latency[0] > latency[1]:
                raise ValueError("latency_ms must be a number or [min, max] with 0 <= min <= max")
        elif not isinstance(latency, (int, float)) or latency < 0:
            raise ValueError("latency_ms must be a number >= 0 or [min, max]")
        for name in ("error_rate", "commit_then_timeout_rate", "decline_rate", "late_commit_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a fraction between 0 and 1")
        if not isinstance(self.stall_seconds, (int, float)) or self.stall_seconds < 0:
            raise ValueError("stall_seconds must be a number >= 0 (0 drops the connection at once)")
        self.readings = sorted(parse_readings(self.readings))
        if not isinstance(self.late_commit_seconds, (int, float)) or self.late_commit_seconds < 0:
            raise ValueError("late_commit_seconds must be a number >= 0")
        if not isinstance(self.burst_429, int) or self.burst_429 < 0:
            raise ValueError("burst_429 must be an integer >= 0")
        if self.routes is not None and not (
                isinstance(self.routes, list) and all(isinstance(r, str) and " " in r for r in self.routes)):
            raise ValueError('routes must be a list like ["POST /rest/v2/orders", "* /rest/v2/orders/{order_id}"]')

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class Faults:
    """The active fault configuration plus its seeded random source; every decision takes the lock."""

    seed: int | None = None
    config: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)
        self._burst_left = self.config.burst_429

    def set(self, data: dict) -> None:
        config = FaultConfig.from_dict(data)
        with self._lock:
            self.config, self._burst_left = config, config.burst_429

    def as_dict(self) -> dict:
        with self._lock:
            return {**self.config.as_dict(), "burst_429_remaining": self._burst_left}

    def reseed(self) -> None:
        with self._lock:
            self._random = random.Random(self.seed)
            self._burst_left = self.config.burst_429

    def _applies(self, method: str, template: str) -> bool:
        routes = self.config.routes
        if routes is None:
            return True
        for route in routes:
            want_method, _, want_template = route.partition(" ")
            if want_method in ("*", method) and want_template.strip() == template:
                return True
        return False

    def take_burst_429(self, method: str, template: str) -> bool:
        with self._lock:
            if self._burst_left > 0 and self._applies(method, template):
                self._burst_left -= 1
                return True
            return False

    def latency_seconds(self, method: str, template: str) -> float:
        with self._lock:
            latency = self.config.latency_ms
            if not self._applies(method, template):
                return 0.0
            if isinstance(latency, list):
                return self._random.uniform(latency[0], latency[1]) / 1000.0
            return latency / 1000.0

    def error_status(self, method: str, template: str) -> int | None:
        with self._lock:
            if self.config.error_rate and self._applies(method, template) \
                    and self._random.random() < self.config.error_rate:
                return self._random.choice(ERROR_STATUSES)
            return None

    def reading(self, name: str) -> bool:
        """Whether the sandbox plays this reading now (see sandbox/readings.py)."""
        return name in self.config.readings

    def declined(self) -> bool:
        with self._lock:
            return bool(self.config.decline_rate) and self._random.random() < self.config.decline_rate

    def commit_then_timeout(self, method: str, template: str) -> float | None:
        """Seconds to stall before dropping this write's answer (0 = drop at once), or None to answer."""
        with self._lock:
            rate = self.config.commit_then_timeout_rate
            if rate and method in WRITE_METHODS and self._applies(method, template) \
                    and self._random.random() < rate:
                return float(self.config.stall_seconds)
            return None

    def late_commit(self, method: str, template: str) -> float | None:
        """Seconds after which this write is applied, its answer lost at once; None to apply it now."""
        with self._lock:
            rate = self.config.late_commit_rate
            if rate and method in WRITE_METHODS and self._applies(method, template) and self._random.random() < rate:
                return float(self.config.late_commit_seconds)
            return None
