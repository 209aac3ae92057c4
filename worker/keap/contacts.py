"""Keap contacts: find by email, create (optionally deduplicated by Keap), read, update, payment methods."""
from __future__ import annotations

from worker.keap.resource import Resource
from worker.keap.wire import build_filter


class Contacts(Resource):
    def find_by_email(self, email: str) -> dict | None:
        """The oldest contact Keap finds for `email==email` whose email equals it ignoring case, or None. (Keap
        does not say whether `==` ignores case; a contact listed without emails is taken on the filter's word.)"""
        contacts, _ = self._client.list_page("/v2/contacts", "contacts", filter=build_filter({"email": email}),
                                             page_size=10, order_by="id asc")
        for contact in contacts:
            listed = [str(e.get("email") or "") for e in contact.get("email_addresses") or []]
            if not listed or any(e.casefold() == email.casefold() for e in listed):
                return contact
        return None

    def create(self, body: dict, duplicate_option: str | None = None) -> dict:
        """Create a contact; with duplicate_option ("Email", ...) Keap updates the match instead (200, not 201)."""
        return self.upsert(body, duplicate_option)[1]

    def upsert(self, body: dict, duplicate_option: str | None = None) -> tuple[bool, dict]:
        """(created, contact): created is False when Keap's duplicate check updated an existing contact (200)."""
        status, contact = self._client.request("POST", "/v2/contacts", params={"duplicate_option": duplicate_option},
                                               json=body, with_status=True)
        return status == 201, contact

    def get(self, contact_id: str) -> dict:
        return self._client.request("GET", "/v2/contacts/{contact_id}", path_params={"contact_id": contact_id})

    def update(self, contact_id: str, body: dict, update_mask: list[str] | None = None) -> dict:
        """PATCH a contact; with update_mask only those properties change (lists are replaced, not merged)."""
        return self._client.request("PATCH", "/v2/contacts/{contact_id}", path_params={"contact_id": contact_id},
                                    params={"update_mask": update_mask}, json=body)

    def list_payment_methods(self, contact_id: str) -> list[dict]:
        return list(self._client.iter_items("/v2/contacts/{contact_id}/paymentMethods", "records",
                                            path_params={"contact_id": contact_id}))
