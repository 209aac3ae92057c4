"""The sandbox's Keap account: every resource's part composed into the one `Store` the server calls."""
from __future__ import annotations

import copy

from sandbox.store.payments import Payments
from sandbox.store.subscriptions import Subscriptions


class Store(Payments, Subscriptions):
    """All account state behind one lock; every public method is one API operation's business logic."""

    def reset(self) -> None:
        with self.lock:
            seed = copy.deepcopy(self.seed)
            self._load_payments(seed)
            self._load_orders(seed)
            self._load_contacts(seed)
            self._load_products(seed)
            self._load_custom_fields(seed)
            self._load_subscriptions(seed)
            self._start_ids({"contact": self.contacts, "product": self.products, "plan": self.plans,
                             "payment_method": self.payment_methods,
                             "custom_field": {**self.fields["ORDER"], **self.fields["SUBSCRIPTION"]}})
