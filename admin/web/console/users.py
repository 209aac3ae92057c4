"""Who may use the console: CONSOLE_USERS entries `name:hash:role` (PBKDF2-SHA256 hashes, never passwords), and the
signed session cookie that carries a login and its CSRF token."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

ROLES = ("admin", "read-only")
ITERATIONS = 260_000
SESSION_SECONDS = 12 * 3600


def hash_password(password: str, *, salt: str | None = None, iterations: int = ITERATIONS) -> str:
    """`pbkdf2-sha256.<iterations>.<salt>.<hex digest>`: no ':' or ',' so it sits in CONSOLE_USERS, no '$' so
    compose and shells leave it alone."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2-sha256.{iterations}.{salt}.{digest}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split(".")
    except ValueError:
        return False
    if scheme != "pbkdf2-sha256":
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations)).hex()
    return hmac.compare_digest(candidate, digest)


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def can_act(self) -> bool:
        return self.role == "admin"


def parse_users(text: str) -> dict[str, tuple[str, str]]:
    """CONSOLE_USERS → {name: (hash, role)}; a malformed entry is a clear error at start, not a failed login."""
    users = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or parts[2] not in ROLES or not parts[1].startswith("pbkdf2-sha256."):
            raise ValueError(f"CONSOLE_USERS: an entry is not name:hash:role with role {' or '.join(ROLES)} "
                             "(`keap-orders console-user NAME` prints one)")
        users[parts[0]] = (parts[1], parts[2])
    return users


class Sessions:
    """A session is a cookie `<base64 json>.<hmac>`: user, role, CSRF token and expiry, signed with the secret."""

    def __init__(self, secret: str, users: dict[str, tuple[str, str]]):
        self.key = (secret or secrets.token_hex(32)).encode()
        self.users = users

    def login(self, name: str, password: str) -> User | None:
        # A missing user costs the same hash as a wrong password, so timing does not tell names apart.
        stored, role = self.users.get(name, (hash_password("x", salt="none"), ""))
        return User(name, role) if check_password(password, stored) and role else None

    def cookie(self, user: User) -> str:
        body = json.dumps({"u": user.name, "r": user.role, "c": secrets.token_urlsafe(24),
                           "e": int(time.time()) + SESSION_SECONDS}, separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(body).decode()
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None) -> tuple[User, str] | None:
        """(user, CSRF token) of a valid, unexpired cookie whose user still exists with that role; else None."""
        if not cookie or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except ValueError:
            return None
        known = self.users.get(data.get("u"))
        if data.get("e", 0) < time.time() or known is None or known[1] != data.get("r"):
            return None
        return User(data["u"], data["r"]), data["c"]

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()
