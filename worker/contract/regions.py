"""ISO 3166 countries and subdivisions (from pycountry): ISO-2 ↔ ISO-3 and state codes or names → ISO 3166-2.

Keap wants ISO 3166-1 alpha-3 country codes and ISO 3166-2 region codes (`US-NY`); store exports carry alpha-2
countries and either state codes (`NY`) or names (`New York`).
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

import pycountry


@lru_cache(maxsize=1)
def _countries() -> tuple[dict[str, str], dict[str, str]]:
    alpha2 = {c.alpha_2: c.alpha_3 for c in pycountry.countries}
    return alpha2, {alpha_3: alpha_2 for alpha_2, alpha_3 in alpha2.items()}


def alpha3(code: str) -> str | None:
    """The alpha-3 code of an alpha-2 or alpha-3 country code (any case), or None if there is no such country."""
    by_alpha2, by_alpha3 = _countries()
    code = code.strip().upper()
    if code in by_alpha3:
        return code
    return by_alpha2.get(code)


def alpha2(code: str) -> str | None:
    by_alpha2, by_alpha3 = _countries()
    code = code.strip().upper()
    return code if code in by_alpha2 else by_alpha3.get(code)


def _folded(text: str) -> str:
    # "Île-de-France", "ILE-DE-FRANCE" and "ile de france" are the same region to a person typing an address.
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())


@lru_cache(maxsize=1)
def _subdivisions() -> tuple[frozenset[str], dict[tuple[str, str], str]]:
    codes = frozenset(s.code for s in pycountry.subdivisions)
    by_name: dict[tuple[str, str], str] = {}
    for sub in pycountry.subdivisions:
        by_name.setdefault((sub.country_code, _folded(sub.name)), sub.code)
    return codes, by_name


def is_region_code(code: str) -> bool:
    return code in _subdivisions()[0]


def region_code(country: str, region: str) -> str | None:
    """ISO 3166-2 code for a region given as a code (`NY`, `US-NY`) or a name (`New York`) in a country
    (alpha-2 or alpha-3); None when it is none of the country's subdivisions."""
    country2 = alpha2(country)
    text = region.strip()
    if not country2 or not text:
        return None
    codes, by_name = _subdivisions()
    upper = text.upper()
    for candidate in (upper, f"{country2}-{upper}"):
        if candidate in codes and candidate.startswith(f"{country2}-"):
            return candidate
    return by_name.get((country2, _folded(text)))
