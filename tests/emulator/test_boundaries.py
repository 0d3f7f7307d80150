"""The emulator stands alone: it never shares the client's or the domain's models."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import attentive_sync.emulator as emulator
from attentive_sync.emulator.contract import SPEC_FILES, load_bundle

PACKAGE = Path(emulator.__file__).parent
SHARED_SPEC = Path("/work/shared/attentive-openapi")
FORBIDDEN = ("attentive_sync.attentive", "attentive_sync.domain", "prefect")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_client_domain_or_prefect_imports(path: Path) -> None:
    bad = {
        name
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad


@pytest.mark.skipif(not SHARED_SPEC.is_dir(), reason="the shared OpenAPI folder is not present")
@pytest.mark.parametrize("version", sorted(SPEC_FILES))
def test_packaged_specs_equal_the_shared_contract(version: str) -> None:
    shared = json.loads((SHARED_SPEC / SPEC_FILES[version]).read_text(encoding="utf-8"))
    assert load_bundle(version) == shared
