"""Payments on an order's invoice: a charge to a saved card or a manual payment type, the invoice's payments, and
the account's sales transactions (one per payment: CAPTURE for a charge, MANUAL for a recorded payment)."""
from __future__ import annotations

from sandbox.query import CMP, EQ_CMP, Field
from sandbox.store.core import ApiError, cents, dollars, iso
from sandbox.store.orders import Orders


class Payments(Orders):
    """`/v2/orders/{id}/payments`; a payment never exceeds the balance due; a card may be declined (a fault)."""

    def _load_payments(self, seed: dict) -> None:
        self.payment_types: list[str] = seed.get("manual_payment_types") or []

    def create_payment(self, order_id: str, body: dict, declined: bool = False) -> dict:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            amount = cents(body["payment_amount"], "payment_amount")
            method_id, method_type = body.get("payment_method_id"), body.get("payment_method_type")
            if not method_id and not method_type:
                raise ApiError(400, "At least one of payment_method_id or payment_method_type is required")
            if method_id:
                method = self.payment_methods.get(str(method_id))
                if method is None or method["contact_id"] != order["contact_id"]:
                    raise ApiError(400, f"Invalid payment_method_id: payment method {method_id} does not belong "
                                        f"to contact {order['contact_id']} of order {order_id}")
                if amount <= 0:
                    raise ApiError(400, "Invalid payment_amount: must be greater than 0 when charging a "
                                        "payment_method_id")
                status = ("Do Not Honor" if self.reading("decline-words") else "DECLINED") if declined else "APPROVED"
            else:
                if method_type not in self.payment_types:
                    raise ApiError(400, f"Invalid payment_method_type {method_type!r}: must exactly match a "
                                        f"configured Manual Payment Type ({', '.join(self.payment_types)})")
                if amount < 0:
                    raise ApiError(400, "Invalid payment_amount: must not be negative")
                status = "MANUAL_PAID"
            due = self._totals(order)[2]
            if amount > due:
                raise ApiError(400, f"Invalid payment_amount {dollars(amount):.2f}: exceeds the balance due "
                                    f"{dollars(due):.2f} of order {order_id}")
            now = iso(self.now())
            payment = {"id": self._new_id("invoice_payment"), "payment_id": self._new_id("payment"),
                       "amount_cents": amount, "pay_status": "FAILED" if method_id and declined else status,
                       "pay_time": body.get("payment_time") or now,
                       "last_updated_time": now, "skip_commission": not body["apply_to_commissions"],
                       "note": body.get("notes"), "method_id": method_id, "method_type": method_type,
                       **{k: v for k, v in body.items() if k.startswith("external_")}}
            order["payments"].append(payment)
            order["modification_time"] = now
            result = {"id": payment["payment_id"], "invoice_id": order["invoice_id"],
                      "payment_amount": dollars(amount), "payment_status_message": status}
            if method_id:
                result["transaction_id"] = f"txn-{payment['payment_id']}"
            return result

    def payment_view(self, order: dict, payment: dict) -> dict:
        view = {"id": payment["id"], "amount": dollars(payment["amount_cents"]), "invoice_id": order["invoice_id"],
                "payment_id": payment["payment_id"], "pay_time": payment["pay_time"],
                "pay_status": payment["pay_status"], "last_updated_time": payment["last_updated_time"],
                "skip_commission": payment["skip_commission"]}
        if payment.get("note") is not None and not self.reading("no-notes"):
            view["note"] = payment["note"]
        return view

    def list_payments(self, order_id: str, query: dict) -> dict:
        with self.lock:
            order = self._get(self.orders, order_id, "Order")
            views = [self.payment_view(order, p) for p in order["payments"]]
            page, token = self._list(views, query, {
                "invoice_id": Field("id", lambda p: p["invoice_id"]),
                "payment_id": Field("id", lambda p: p["payment_id"]),
                "amount": Field("number", lambda p: p["amount"], ops=CMP),
                "pay_status": Field("text", lambda p: p["pay_status"]),
                "skip_commission": Field("bool", lambda p: p["skip_commission"])},
                {k: (lambda p, k=k: p.get(k)) for k in ("invoice_id", "payment_id", "amount", "pay_time",
                                                         "pay_status", "skip_commission", "last_updated_time")})
            return self._page("invoice_order_payments", page, token)

    def transaction_view(self, order: dict, payment: dict) -> dict:
        charged = bool(payment["method_id"])
        ok = payment["pay_status"] != "FAILED"
        contact = self.contacts.get(order["contact_id"], {})
        view = {"amount": dollars(payment["amount_cents"]), "status": "APPROVED" if ok else "FAILED",
                "order_ids": [order["id"]], "contact_id": order["contact_id"],
                "contact": {"id": order["contact_id"], **{k: contact[k] for k in ("given_name", "family_name")
                                                          if contact.get(k)}},
                "transaction_method": "CAPTURE" if charged else "MANUAL", "transaction_time": payment["pay_time"],
                "payment_id": payment["payment_id"], "is_successful": ok}
        if charged:
            view["external_reference_id"] = f"txn-{payment['payment_id']}"
        if not ok:
            view["error_details"] = "Do Not Honor" if self.reading("decline-words") else "DECLINED"
        return view

    def list_transactions(self, query: dict) -> dict:
        with self.lock:
            views = [self.transaction_view(o, p) for o in self.orders.values() for p in o["payments"]]
            page, token = self._list(views, query, {
                "amount": Field("number", lambda t: t["amount"], ops=EQ_CMP),
                "order_id": Field("id", lambda t: t["order_ids"]),
                "contact_id": Field("id", lambda t: t["contact_id"]),
                "since_time": Field("since", lambda t: t["transaction_time"]),
                "until_time": Field("until", lambda t: t["transaction_time"]),
                "status": Field("text", lambda t: t["status"]),
                "transaction_method": Field("text", lambda t: t["transaction_method"]),
                "is_successful": Field("bool", lambda t: t["is_successful"])},
                {"amount": lambda t: t["amount"], "transaction_time": lambda t: t["transaction_time"],
                 "contact_id": lambda t: int(t["contact_id"])}, id_key="payment_id")
            return self._page("transactions", page, token)
