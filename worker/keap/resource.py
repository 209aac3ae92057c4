"""Base of the per-resource classes (contacts, products, orders, subscriptions): they call through one client."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: the client imports every resource module
    from worker.keap.client import KeapClient


class Resource:
    def __init__(self, client: KeapClient) -> None:
        self._client = client
