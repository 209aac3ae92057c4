"""Keap sales transactions (`GET /v2/sales/transactions`): what a charge or a recorded payment really did."""
from __future__ import annotations

from worker.keap.resource import Resource
from worker.keap.wire import build_filter


class Transactions(Resource):
    def for_order(self, order_id: str) -> list[dict]:
        """Every transaction against this order (`is_successful`, `payment_id`, `transaction_method`, ...)."""
        return list(self._client.iter_items("/v2/sales/transactions", "transactions",
                                            filter=build_filter({"order_id": order_id})))

    def page(self, page_size: int = 1) -> list[dict]:
        """The first transactions of the account (the probe's check that the endpoint answers)."""
        return self._client.list_page("/v2/sales/transactions", "transactions", page_size=page_size)[0]
