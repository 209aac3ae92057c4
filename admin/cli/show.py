"""How commands take what an operator types (order ids as the store shows them, durations) and show what they
found (tables with a header, colour only on a terminal, or JSON)."""
from __future__ import annotations

import json
import re
import sys
from typing import Any, Sequence

import click

from admin.cli import base
from admin.console import find_orders

DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
DURATION_HELP = "a duration: 90s, 5m, 2h, 1d (a bare number is seconds)"


def duration(ctx, param, value):
    """A click callback: "5m" -> 300.0 (the one duration syntax of every command)."""
    if value is None or isinstance(value, (int, float)):
        return value
    found = DURATION.match(str(value).strip())
    if not found:
        raise click.BadParameter(f"{value!r} is not {DURATION_HELP}")
    return float(found.group(1)) * _UNIT[found.group(2)]


def order_id(text: str, *, wide: bool = False) -> str:
    """The order an operator means: the external id as stored, or a store's number (`#1001`, `1001`) under the
    configured prefixes (SHOPIFY_ID_PREFIX, WOOCOMMERCE_ID_PREFIX); `wide` (a command that only reads): also a
    customer email or a Keap order or contact id. Reads indexes only, never scans (`admin.console.find_orders`)."""
    found = find_orders(base.ledger(), base.settings(), text, wide=wide)
    if text in found.matches:
        return text
    if len(found.ids) == 1:
        return found.ids[0]
    if found.ids:
        raise click.ClickException(f"order {_shown(text)}: several orders match: "
                                   f"{', '.join(_labelled(found.matches))}; give one id")
    raise click.ClickException(f"order {_shown(text)}: not in the ledger (looked for {found.looked_for})")


def _labelled(matches: dict[str, str]) -> list[str]:
    """Each match, with how it matched unless by its external id."""
    return [ext if how == "external id" else f"{ext} ({how})" for ext, how in matches.items()]


def _shown(text: str) -> str:
    """What the operator typed, fit for a message: an email is never repeated."""
    return "with that email" if "@" in text else text


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Aligned columns under a bold header (bold only on a terminal); the last column whole (the reason, what to
    do), wrapped by the terminal."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    color = sys.stdout.isatty()
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()
    click.echo(click.style(line, bold=True) if color else line)
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), color=color)
