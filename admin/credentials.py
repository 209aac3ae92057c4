"""`keap-orders auth resume`: after a refused credential was fixed, check it with one read call, lift the fleet's
pause on it and release the orders that waited for it."""
from __future__ import annotations

from worker.keap import KeapError
from worker.steps.base import StepContext


class StillRefused(Exception):
    """The credential still does not work; the message says what Keap answered and the fix."""


def resume(ctx: StepContext) -> int:
    """Returns how many orders were released. Raises StillRefused (the orders stay held) when Keap refuses."""
    pause = getattr(ctx.keap.auth, "pause", None)
    if pause is not None:
        pause.resume()  # else the check below would be refused unsent; a refusal raises the pause again
    try:
        ctx.keap.orders.get_model()
    except KeapError as exc:
        raise StillRefused(str(exc)) from None
    return ctx.ledger.release_held("reauth")
