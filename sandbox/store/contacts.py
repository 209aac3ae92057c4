"""Contacts and their payment methods: upsert with Keap's duplicate options, update, get, filtered lists."""
from __future__ import annotations

import copy

from sandbox.query import CMP, Field
from sandbox.store.core import ApiError, Core, iso


class Contacts(Core):
    """`/v2/contacts` and `/v2/contacts/{id}/paymentMethods`."""

    def _load_contacts(self, seed: dict) -> None:
        self.contacts: dict[str, dict] = {}
        self.payment_methods: dict[str, dict] = {}
        for contact in seed.get("contacts", []):
            for method in contact.pop("payment_methods", []):
                self.payment_methods[method["payment_method_id"]] = {**method, "contact_id": contact["id"]}
            contact.setdefault("create_time", iso(self.now()))
            contact.setdefault("update_time", contact["create_time"])
            self.contacts[contact["id"]] = contact

    def _contact_ref(self, contact_id, what: str = "contact_id") -> dict:
        """The contact a request body refers to; a missing one is the body's fault (400), not a 404."""
        contact = self.contacts.get(str(contact_id))
        if contact is None:
            raise ApiError(400, f"Invalid {what}: contact {contact_id} does not exist")
        return contact

    def _check_contact(self, body: dict, creating: bool) -> None:
        if creating and not any(body.get(k) for k in ("email_addresses", "phone_numbers", "addresses")):
            raise ApiError(400, "Contact must contain at least one item in email_addresses, phone_numbers, "
                                "or addresses")
        for index, address in enumerate(body.get("addresses") or []):
            if (address.get("region") or address.get("region_code")) and not address.get("country_code"):
                raise ApiError(400, f"addresses[{index}].country_code is required if region is specified")

    def _write_contact(self, contact: dict, body: dict) -> None:
        # Lists are replaced whole, as Keap documents: items not sent are removed.
        for key, value in body.items():
            if key == "utm_parameters":
                contact[key] = [{"keapSourceId": value.get("keap_source_id"),
                                 **{f"utm{k[4:].capitalize()}": v for k, v in value.items() if k.startswith("utm_")}}]
            else:
                contact[key] = copy.deepcopy(value)
        contact["update_time"] = iso(self.now())

    def upsert_contact(self, body: dict, duplicate_option: str | None) -> tuple[int, dict]:
        with self.lock:
            self._check_contact(body, creating=True)
            existing = self._find_duplicate(body, duplicate_option) if duplicate_option else None
            if existing is not None:
                self._write_contact(existing, body)
                return 200, self.contact_view(existing)
            contact = {"id": self._new_id("contact"), "create_time": iso(self.now())}
            self._write_contact(contact, body)
            self.contacts[contact["id"]] = contact
            return 201, self.contact_view(contact)

    def _find_duplicate(self, body: dict, option: str) -> dict | None:
        emails = {e.get("email", "").lower() for e in body.get("email_addresses") or [] if e.get("email")}
        if not emails:
            return None
        for contact in self.contacts.values():
            theirs = {e.get("email", "").lower() for e in contact.get("email_addresses", [])}
            if not emails & theirs:
                continue
            if option in ("EmailAndName", "EmailAndNameAndCompany") and any(
                    (contact.get(k) or "").lower() != (body.get(k) or "").lower() for k in ("given_name", "family_name")):
                continue
            if option == "EmailAndNameAndCompany" and (contact.get("company") or {}).get("company_name") != \
                    (body.get("company") or {}).get("company_name"):
                continue
            return contact
        return None

    def update_contact(self, contact_id: str, body: dict, update_mask: list[str]) -> dict:
        with self.lock:
            contact = self._get(self.contacts, contact_id, "Contact")
            self._check_contact(body, creating=False)
            self._write_contact(contact, {k: v for k, v in body.items() if not update_mask or k in update_mask})
            return self.contact_view(contact)

    def get_contact(self, contact_id: str) -> dict:
        with self.lock:
            return self.contact_view(self._get(self.contacts, contact_id, "Contact"))

    @staticmethod
    def contact_view(contact: dict) -> dict:
        return copy.deepcopy(contact)

    def _contact_fields(self) -> dict[str, Field]:
        emails = lambda c: [e.get("email") for e in c.get("email_addresses", [])]  # noqa: E731
        return {"email": Field("text", emails, wildcard=True, case_sensitive=self.reading("email-case-sensitive")),
                "given_name": Field("text", lambda c: c.get("given_name"), wildcard=True),
                "family_name": Field("text", lambda c: c.get("family_name"), wildcard=True),
                "ids": Field("ids", lambda c: c["id"]),
                "contact_id": Field("id", lambda c: c["id"], ops=CMP)}

    def list_contacts(self, query: dict) -> dict:
        with self.lock:
            page, token = self._list(self.contacts.values(), query, self._contact_fields(), {
                "id": lambda c: int(c["id"]), "create_time": lambda c: c["create_time"],
                "update_time": lambda c: c["update_time"],
                "email": lambda c: ((c.get("email_addresses") or [{}])[0].get("email") or "").lower()})
            return self._page("contacts", [self.contact_view(c) for c in page], token)

    def list_payment_methods(self, contact_id: str, query: dict) -> dict:
        with self.lock:
            self._get(self.contacts, contact_id, "Contact")
            methods = [m for m in self.payment_methods.values() if m["contact_id"] == contact_id]
            page, token = self._list(methods, query, {
                "merchant_account_id": Field("text", lambda m: m.get("merchant_account_id"))},
                {"created_time": lambda m: m.get("created_time")}, id_key="payment_method_id")
            return self._page("records", copy.deepcopy(page), token)
