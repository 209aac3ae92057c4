"""Removes customer data and secrets from text and nested structures before they leave a process (Sentry events,
log lines, the operator messages stored in the ledger): emails, phone numbers, street addresses, values under
names such as `given_name` or `api_key`, Keap keys, bearer and Fernet tokens, long opaque secrets.

Text is scrubbed by patterns, so it is best effort for free text (a bare name in a sentence is not recognisable);
structures are scrubbed by key name as well, which is where names and addresses usually sit.
"""
from __future__ import annotations

import re
from typing import Any

FILTERED = "[filtered]"

# Keys whose values are customer data or secrets, wherever they appear (dict keys, `key=value`, JSON in text).
# A bare `name` is not among them: it names a task, a product or a shipping line; a person's is given/family/...
_CUSTOMER_KEYS = (r"given_name|family_name|first_name|last_name|full_name|middle_name|customer|email\w*|"
                  r"phone\w*|mobile|fax|address\w*|line[12]|street\w*|city|locality|postal_code|zip\w*|company\w*|"
                  r"birthday|input_value|input")
_SECRET_KEYS = (r"\w*token\w*|\w*secret\w*|\w*passw\w*|\w*api[_-]?key\w*|apikey|\w*authorization\w*|"
                r"\w*encryption_key\w*|\w*private_key\w*|key|cookie\w*|\w*credential\w*|\w*signature\w*|dsn|code")
_KEY_NAME = re.compile(rf"(?i)^(?:{_CUSTOMER_KEYS}|{_SECRET_KEYS})$|(?i:token|secret|passw|api[_-]?key|email|phone)")

_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [token]"),
    # key: 'value' / "key": "value" / key='value' inside text (reprs of dicts, JSON, pydantic's input_value=...).
    (re.compile(rf"""(?i)(["']?\b(?:{_CUSTOMER_KEYS}|{_SECRET_KEYS})\b["']?\s*[:=]\s*)(["'])(?:\\.|(?!\2).)*\2"""),
     rf"\1\2{FILTERED}\2"),
    # key=value without quotes (query strings, headers, env dumps) for secret names.
    (re.compile(rf"(?i)(\b(?:{_SECRET_KEYS})\b\s*[:=]\s*)(?![\"'\[])([^\s,;&}}\]]+)"), rf"\1{FILTERED}"),
    # Python echoing the value it could not convert.
    (re.compile(r"(?i)((?:could not convert string to \w+|invalid literal for \w+\(\) with base \d+|"
                r"invalid \w+(?: \w+)?):\s*)(['\"]).*?\2(?=$|[\s,;)\]])"), rf"\1\2{FILTERED}\2"),
    (re.compile(r"\bKeap[A-Za-z]{1,4}-[A-Za-z0-9_-]{4,}"), "[key]"),
    (re.compile(r"\bgAAAAA[A-Za-z0-9_=-]{20,}"), "[token]"),  # a Fernet token
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"), "[key]"),  # a Fernet key
    # Starting at a run's start, with bounded parts (RFC 5321 lengths): linear time on long runs without an "@".
    (re.compile(r"(?<![A-Za-z0-9._+-])[A-Za-z0-9._+-]{1,64}(?:@|%40)[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"),
     "[email]"),
    # A house number, up to four capitalised words and a street type; or a German/Dutch street name and number.
    (re.compile(r"\b\d{1,6}[A-Za-z]?,?\s+(?:[A-Z0-9][\w'.-]*\s+){0,4}?(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|"
                r"Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|Terrace|Ter|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|"
                r"Cir|Trail|Alley|Crescent|Close|Row|Walk|Loop|Plaza)\b\.?"), "[address]"),
    (re.compile(r"\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|laan|straat)\s+\d+\s*[a-z]?\b"),
     "[address]"),
]
# Long runs of token characters; one is a secret when it mixes upper and lower case with digits (tokens and keys
# do, identifiers, host names, UUIDs and hex digests such as task ids and lease tokens do not).
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_~-])[A-Za-z0-9_~-]{24,}(?![A-Za-z0-9_~-])")
# Candidates for phone numbers: digits with the separators people write them with.
_PHONE = re.compile(r"(?<![\w.:/-])\+?\(?\d[\d ().-]{5,20}\d(?![\w:/-]|\.\d)")
_NOT_PHONE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,3}(?:\.\d{1,3}){3}$|^\d+(?:\.\d+)?$|^\d{1,2}:\d{2}")


def text(value: str) -> str:
    """`value` with customer data and secrets replaced by placeholders."""
    if not value:
        return value
    for pattern, replacement in _PATTERNS:
        value = pattern.sub(replacement, value)
    return _PHONE.sub(_phone, _OPAQUE.sub(_opaque, value))


def _opaque(match: re.Match) -> str:
    found = match.group(0)
    mixed = any(c.isupper() for c in found) and any(c.islower() for c in found) and any(c.isdigit() for c in found)
    return "[token]" if mixed else found


def _phone(match: re.Match) -> str:
    found = match.group(0)
    digits = sum(c.isdigit() for c in found)
    plain = found.strip()
    # Dates, IPs, amounts, epoch times and plain ids are not phone numbers; a plain digit run counts only with a "+".
    if not 7 <= digits <= 15 or _NOT_PHONE.match(plain) or plain.isdigit():
        return found
    return "[phone]"


def sensitive_key(name: Any) -> bool:
    """Is a value under this key customer data or a secret (whatever it looks like)?"""
    return isinstance(name, str) and bool(_KEY_NAME.search(name))


def data(value: Any, depth: int = 0) -> Any:
    """A copy of a nested structure with values under sensitive keys filtered and every string scrubbed."""
    if depth > 20:
        return FILTERED
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {k: FILTERED if sensitive_key(k) and v not in (None, "", [], {}) else data(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(data(v, depth + 1) for v in value)
    return value


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_NUMBER = re.compile(r"\b\d+(?:[.,:]\d+)*\b")
# Keap's words after a server error (5xx: "INTERNAL: Internal Server Error", "UNAVAILABLE: ...") vary with the
# status, not with the cause: one outage is one reason.
_SERVER_WORDS = re.compile(r"(\(HTTP 5\d\d[^)]*\)): [^;)]*")


def reason(error: str, external_id: str) -> str:
    """The gist of an operator message with its order id and values stripped: the same text for every order refused
    for the same reason (Sentry's grouping, log lines, Flower). The first clause; the rest says what to do."""
    gist = text(error or "").replace(external_id, "{order}")
    gist = _SERVER_WORDS.sub(r"\1", gist)
    gist = _NUMBER.sub("N", _QUOTED.sub("'…'", gist)).split("; ")[0]
    return gist.removeprefix("order {order}: ").strip()[:200]
