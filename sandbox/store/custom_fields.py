"""Custom fields of orders and subscriptions: the models, new fields, checked values and filters by field_name."""
from __future__ import annotations

import copy
import re

from sandbox.query import CMP, Field
from sandbox.store.core import ApiError, Core

TEXT_FIELD_TYPES = frozenset({"TEXT", "TEXT_AREA", "NAME", "EMAIL", "PHONE_NUMBER", "WEBSITE",
                              "SOCIAL_SECURITY_NUMBER", "DROPDOWN", "RADIO", "STATE"})
NUMBER_FIELD_TYPES = frozenset({"WHOLE_NUMBER", "DECIMAL_NUMBER", "CURRENCY", "PERCENT", "YEAR", "MONTH",
                                "DAY_OF_WEEK", "USER"})


class CustomFields(Core):
    """`/v2/{orders,subscriptions}/model` and their `customFields`; values are kept by field id on each record."""

    def _load_custom_fields(self, seed: dict) -> None:
        # Custom field definitions per record type (ids are unique across both, as in Keap).
        self.fields: dict[str, dict[str, dict]] = {
            "ORDER": {f["id"]: f for f in seed.get("order_custom_fields", [])},
            "SUBSCRIPTION": {f["id"]: f for f in seed.get("subscription_custom_fields", [])},
        }

    def custom_model(self, record_type: str) -> dict:
        with self.lock:
            return {"custom_fields": [copy.deepcopy(f) for f in self.fields[record_type].values()],
                    "optional_properties": []}

    def create_custom_field(self, record_type: str, body: dict) -> dict:
        with self.lock:
            fields = self.fields[record_type]
            label = body["label"].strip()
            if not label:
                raise ApiError(400, "Invalid label: must not be blank")
            if any(f["label"].lower() == label.lower() for f in fields.values()):
                raise ApiError(400, f"A custom field labelled {label!r} already exists on {record_type.title()}")
            # Keap's database column name: underscore + label without spaces/punctuation + running index.
            field_name = "_" + re.sub(r"[^A-Za-z0-9]", "", label) + str(len(fields))
            field = {"id": self._new_id("custom_field"), "label": label, "record_type": record_type,
                     "field_type": body["field_type"], "field_name": field_name,
                     "options": [{"id": str(i + 1), "label": o.get("label", "")}
                                 for i, o in enumerate(body.get("options") or [])]}
            if body.get("group_id"):
                field["group_id"] = body["group_id"]
            fields[field["id"]] = field
            return copy.deepcopy(field)

    def _custom_field(self, record_type: str, name: str) -> Field | None:
        """A custom field as a filter field, by its field_name (case-insensitive, as Keap)."""
        for meta in self.fields[record_type].values():
            if meta["field_name"].lower() == name.lower():
                kind = meta["field_type"]
                getter = lambda o, fid=meta["id"]: o["custom_fields"].get(fid)  # noqa: E731
                if kind in NUMBER_FIELD_TYPES:
                    return Field("number", getter, ops=CMP)
                if kind in ("DATE", "DATE_TIME"):
                    return Field("datetime", getter, ops=CMP)
                if kind == "YES_NO":
                    return Field("bool", getter)
                return Field("text", getter, wildcard=kind in TEXT_FIELD_TYPES)
        return None

    def _custom_values(self, record_type: str, values: list[dict]) -> dict[str, object]:
        out = {}
        for index, value in enumerate(values):
            meta = self.fields[record_type].get(str(value.get("id")))
            if meta is None:
                raise ApiError(400, f"Invalid custom_fields[{index}].id: no {record_type.lower()} custom field with "
                                    f"id {value.get('id')!r} (see GET /v2/{record_type.lower()}s/model)")
            content, kind = value.get("content"), meta["field_type"]
            if content is not None and kind in TEXT_FIELD_TYPES | {"TEXT_AREA"} and (
                    not isinstance(content, str) or len(content) > 65535):
                raise ApiError(400, f"Invalid custom_fields[{index}].content: {meta['label']} takes text "
                                    "of at most 65535 characters")
            if content is not None and kind in NUMBER_FIELD_TYPES and (
                    isinstance(content, bool) or not isinstance(content, (int, float))):
                raise ApiError(400, f"Invalid custom_fields[{index}].content: {meta['label']} takes a number")
            out[meta["id"]] = content
        return out
