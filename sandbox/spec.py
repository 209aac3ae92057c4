"""Keap's official REST v2 OpenAPI spec, loaded once: path-template routing and strict JSON Schema checks.

Strict means every object schema that declares `properties` also rejects undeclared ones, as Keap does.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_ENV = "KEAP_OPENAPI_SPEC"
# A JSON copy of Keap's official spec ships with the sandbox (see openapi/README.md), so it runs anywhere.
DEFAULT_SPEC_PATH = Path(__file__).resolve().parent / "openapi" / "keap-rest-v2.openapi.json"
_ROOT_URI = "urn:keap-rest-v2"
_METHODS = ("get", "post", "put", "patch", "delete")

_format_checker = FormatChecker(formats=())


@_format_checker.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # Keap documents ISO-8601 with an explicit offset ("2024-05-21T23:00:00Z"); a naive time is ambiguous.
    if not isinstance(value, str):
        return True
    if "T" not in value:
        raise ValueError("expected an ISO-8601 date-time such as 2024-05-21T23:00:00Z")
    if dt.datetime.fromisoformat(value).tzinfo is None:
        raise ValueError("a date-time needs a timezone offset (e.g. Z)")
    return True


@_format_checker.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("expected an ISO-8601 date such as 2024-05-21")
    if isinstance(value, str):
        dt.date.fromisoformat(value)
    return True


class SpecNotFound(FileNotFoundError):
    """The OpenAPI file is missing; the message says where it was looked for and how to point at it."""


@dataclass(frozen=True)
class Violation:
    """One schema violation: `where` is a JSON path like `order_items[0].price`, `message` reads like Keap's."""

    where: str
    message: str

    def __str__(self) -> str:
        return self.message


def spec_path() -> Path:
    return Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC_PATH)


def load_spec(path: str | os.PathLike | None = None) -> "Spec":
    """Parse the spec once per file (JSON: ~0.05 s, YAML: about a second with libyaml), cached per process."""
    return _load_spec((Path(path) if path else spec_path()).resolve())


@functools.lru_cache(maxsize=4)
def _load_spec(location: Path) -> "Spec":
    if not location.is_file():
        raise SpecNotFound(
            f"Keap OpenAPI spec not found at {location}; set {SPEC_ENV} to the path of keap-rest-v2.openapi.yml"
        )
    with open(location, encoding="utf-8") as fh:
        if location.suffix == ".json":
            return Spec(json.load(fh))
        return Spec(yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def _strict(node):
    """Copy of a schema tree where objects with declared properties forbid others."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _strict(value) for key, value in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        copy["additionalProperties"] = False
    return copy


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _json_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Spec:
    """Routing and validation over one parsed OpenAPI document."""

    def __init__(self, document: dict):
        self.document = document
        self.paths: dict[str, dict] = document["paths"]
        strict = {"components": _strict(document.get("components", {})), "paths": _strict(self.paths)}
        self._registry = Registry().with_resource(_ROOT_URI, Resource(contents=strict, specification=DRAFT202012))
        self._routes = sorted(
            ((self._template_regex(template), template) for template in self.paths),
            key=lambda pair: (pair[1].count("{"), -len(pair[1])),  # literal segments beat parameters
        )
        self._validators: dict[str, Draft202012Validator] = {}

    @staticmethod
    def _template_regex(template: str) -> re.Pattern:
        pattern = re.sub(r"\\\{([a-z_]+)\\\}", r"(?P<\1>[^/:]+)", re.escape(template))
        return re.compile(pattern + r"\Z")

    def match(self, path: str) -> tuple[str, dict[str, str]] | None:
        """`/rest/v2/orders/12` → (`/rest/v2/orders/{order_id}`, {"order_id": "12"}), or None."""
        for regex, template in self._routes:
            found = regex.match(path)
            if found:
                return template, found.groupdict()
        return None

    def methods(self, template: str) -> list[str]:
        return [method.upper() for method in self.paths.get(template, {}) if method in _METHODS]

    def operation(self, method: str, template: str) -> dict | None:
        return self.paths.get(template, {}).get(method.lower())

    def operations(self) -> set[tuple[str, str]]:
        return {(method, template) for template in self.paths for method in self.methods(template)}

    def request_schema_pointer(self, method: str, template: str) -> str | None:
        op = self.operation(method, template) or {}
        if "application/json" not in op.get("requestBody", {}).get("content", {}):
            return None
        return _pointer("paths", template, method.lower(), "requestBody", "content", "application/json", "schema")

    def response_schema_pointer(self, method: str, template: str, status: int) -> str | None:
        responses = (self.operation(method, template) or {}).get("responses", {})
        content = responses.get(str(status), {}).get("content", {})
        if "application/json" not in content:
            return None
        return _pointer("paths", template, method.lower(), "responses", str(status), "content", "application/json",
                        "schema")

    def request_body_required(self, method: str, template: str) -> bool:
        return bool((self.operation(method, template) or {}).get("requestBody", {}).get("required"))

    def declares_status(self, method: str, template: str, status: int) -> bool:
        return str(status) in (self.operation(method, template) or {}).get("responses", {})

    def violations(self, pointer: str, instance) -> list[Violation]:
        """Every violation of the (strict) schema at `pointer`, most useful first."""
        validator = self._validators.get(pointer)
        if validator is None:
            validator = Draft202012Validator({"$ref": f"{_ROOT_URI}#/{pointer}"}, registry=self._registry,
                                             format_checker=_format_checker)
            self._validators[pointer] = validator
        errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
        return [self._describe(error) for error in errors]

    def request_violations(self, method: str, template: str, body) -> list[Violation]:
        pointer = self.request_schema_pointer(method, template)
        return self.violations(pointer, body) if pointer else []

    def response_violations(self, method: str, template: str, status: int, body) -> list[Violation]:
        pointer = self.response_schema_pointer(method, template, status)
        if pointer is None:
            if body is None:
                return []
            return [Violation("", f"status {status} with a JSON body is not declared for {method} {template}")]
        return self.violations(pointer, body)

    @staticmethod
    def _describe(error) -> Violation:
        where = _json_path(error.absolute_path)
        if error.validator == "additionalProperties":
            declared = error.schema.get("properties", {})
            extra = sorted(key for key in error.instance if key not in declared)
            name = extra[0] if extra else "?"
            at = f" (in {where})" if where else ""
            return Violation(where, f"Unrecognized property: {name}{at}")
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            full = f"{where}.{missing}" if where else missing
            return Violation(where, f"Missing required property: {full}")
        if error.validator == "type":
            return Violation(where, f"Invalid value for {where or 'body'}: expected {error.validator_value}, "
                                    f"got {type(error.instance).__name__} {error.instance!r}")
        if error.validator == "enum":
            allowed = ", ".join(map(str, error.validator_value))
            return Violation(where, f"Invalid value for {where}: {error.instance!r} is not one of [{allowed}]")
        if error.validator == "format":
            return Violation(where, f"Invalid value for {where}: {error.instance!r} is not a valid "
                                    f"{error.validator_value} ({error.cause or 'bad format'})")
        return Violation(where, f"Invalid value for {where or 'body'}: {error.message}")
