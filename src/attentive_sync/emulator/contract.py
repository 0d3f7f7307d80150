"""The published Attentive contract, loaded once and compiled into fast validators.

The two OpenAPI bundles ship as package data in ``spec/``. A request body is checked against
a component schema by ``jsonschema``'s Draft 4 validator (OpenAPI 3.0 schemas are a Draft 4
dialect), with every ``$ref`` resolved through a ``referencing`` registry.

Two emulator decisions sit on top of the published text:

* Objects that list their properties are closed (``additionalProperties: false``), so a
  misspelt field such as ``firstname`` fails loudly instead of vanishing. Objects that say
  what extra keys may hold (``custom``, event ``properties``) stay open, and so do schemas
  whose ``required`` names a field they never define (they could not be satisfied closed).
* A full ``jsonschema`` pass costs about 65 microseconds per bulk user, too slow for 25,600
  users a second. The verdict of these schemas depends only on an instance's *shape* (keys,
  JSON types, array lengths) plus the values of the few fields with value keywords such as
  ``enum``, so verdicts are memoised by shape; messages never quote values, so a memoised
  message is right for every instance of that shape and carries no personal data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPEC_FILES = {"v1": "attentive-v1-openapi.json", "v2": "attentive-v2-openapi.json"}
_VALUE_KEYWORDS = frozenset(
    {
        "enum",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    }
)
_SHAPE_CACHE_LIMIT = 4096
_NESTED = frozenset({dict, list})


@cache
def load_bundle(version: str) -> dict[str, Any]:
    """The OpenAPI bundle of one API version, exactly as published."""
    text = files(__package__).joinpath("spec", SPEC_FILES[version]).read_text(encoding="utf-8")
    return json.loads(text)


def close_objects(node: Any) -> Any:
    """Return a copy of a schema tree with listed-property objects closed (see module doc)."""
    if isinstance(node, list):
        return [close_objects(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: close_objects(value) for key, value in node.items()}
    props = node.get("properties")
    if (
        isinstance(props, dict)
        and "additionalProperties" not in node
        and set(node.get("required", ())) <= set(props)
    ):
        out["additionalProperties"] = False
    return out


@cache
def registry() -> Registry:
    """Both bundles, closed, addressable as ``urn:attentive:v1`` and ``urn:attentive:v2``."""
    return Registry().with_resources(
        (f"urn:attentive:{version}", DRAFT4.create_resource(close_objects(load_bundle(version))))
        for version in SPEC_FILES
    )


def component(version: str, name: str) -> dict[str, Any]:
    """One component schema (closed), for callers that derive a narrower schema from it."""
    return close_objects(load_bundle(version)["components"]["schemas"][name])


def _reachable(bundle: dict[str, Any], name: str) -> list[Any]:
    """The component schema and every component it references, directly or not."""
    schemas = bundle["components"]["schemas"]
    seen: dict[str, Any] = {}
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen[current] = schemas[current]
        refs = re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schemas[current]))
        pending.extend(refs)
    return list(seen.values())


def _value_sensitive_names(node: Any, found: set[str]) -> set[str]:
    """Property names whose schema constrains the value itself, not only its JSON type."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for prop, sub in props.items():
                if isinstance(sub, dict) and _VALUE_KEYWORDS & sub.keys():
                    found.add(prop)
        for value in node.values():
            _value_sensitive_names(value, found)
    elif isinstance(node, list):
        for item in node:
            _value_sensitive_names(item, found)
    return found


def shape(value: Any, sensitive: frozenset[str], key: str | None = None) -> Any:
    """A hashable skeleton of a JSON value: keys, types and array lengths, not values.

    An object becomes one flat tuple ``(dict, key, shape, key, shape, ...)``, with leaves
    inlined rather than recursed into: this runs for every bulk user.
    """
    kind = type(value)
    if kind is dict:
        out: list[Any] = [dict]
        for k, v in value.items():
            leaf = type(v)
            out.append(k)
            out.append(shape(v, sensitive, k) if leaf in _NESTED or k in sensitive else leaf)
        return tuple(out)
    if kind is list:
        return (list, *[shape(item, sensitive, key) for item in value])
    if kind is str and key in sensitive:
        return (str, value)
    return kind


def _where(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "body"


def describe(error: ValidationError) -> str:
    """A message naming the field and the broken rule, never quoting the offending value."""
    where = _where(error.absolute_path)
    rule, expected = error.validator, error.validator_value
    if rule == "type" and error.instance is None:
        return f"{where} must not be null"
    if rule == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{where} must be of type {wanted}"
    if rule == "required":
        return f"{where}: {error.message}"
    if rule == "additionalProperties" and isinstance(error.instance, dict):
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{where} has unknown field(s): {', '.join(map(str, extra))}"
    if rule == "minItems":
        return f"{where} needs at least {expected} item(s)"
    if rule == "maxItems":
        return f"{where} allows at most {expected} items"
    if rule == "minProperties":
        return f"{where} needs at least {expected} field(s)"
    if rule == "enum":
        return f"{where} must be one of {', '.join(map(str, expected))}"
    return f"{where} breaks the contract's '{rule}' rule"


class SchemaCheck:
    """Validates instances against one component schema, memoising verdicts by shape."""

    def __init__(self, version: str, name: str) -> None:
        self.name = name
        self._validator = Draft4Validator(
            {"$ref": f"urn:attentive:{version}#/components/schemas/{name}"}, registry=registry()
        )
        self._sensitive = frozenset(
            _value_sensitive_names(_reachable(load_bundle(version), name), set())
        )
        self._verdicts: dict[Any, str | None] = {}

    def problem(self, instance: Any) -> str | None:
        """``None`` when the instance satisfies the schema, else one clear message."""
        key = shape(instance, self._sensitive)
        try:
            return self._verdicts[key]
        except KeyError:
            pass
        error = best_match(self._validator.iter_errors(instance))
        verdict = None if error is None else describe(error)
        if len(self._verdicts) >= _SHAPE_CACHE_LIMIT:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        return verdict


def schema_for(version: str, name: str, overrides: Mapping[str, Any]) -> Draft4Validator:
    """A validator for a component schema with some keywords replaced (a documented decision)."""
    return Draft4Validator({**component(version, name), **overrides}, registry=registry())
