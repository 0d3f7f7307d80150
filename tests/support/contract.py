"""Validate real request bodies against Attentive's published OpenAPI schemas.

The project's own copy under ``../shared/attentive-openapi`` is the source of truth; the copy
the emulator ships is used only where that folder is absent (an installed package, say).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [
    ROOT.parent / "shared" / "attentive-openapi",
    ROOT / "src/attentive_sync/emulator/spec",
]


def spec_dir() -> Path:
    for candidate in CANDIDATES:
        if (candidate / "attentive-v2-openapi.json").exists():
            return candidate
    raise FileNotFoundError("no copy of the Attentive OpenAPI contract found")


@cache
def validator(version: str, schema_name: str) -> Draft202012Validator:
    document = json.loads((spec_dir() / f"attentive-{version}-openapi.json").read_text())
    uri = f"urn:attentive-{version}"
    registry = Registry().with_resource(uri, Resource.opaque(document))
    schema = {"$ref": f"{uri}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())


def errors(version: str, schema_name: str, body: object) -> list[str]:
    return [e.message for e in validator(version, schema_name).iter_errors(body)]
