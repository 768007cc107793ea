"""Structured log fields: no ``extra=`` dict may hold a key and a dotted child of it.

ecs-logging nests dotted keys (``topics.added`` -> ``{"topics": {"added": ...}}``), so ``topics`` next to
``topics.added`` makes the formatter raise ``TypeError: Type mismatch at key 'topics'`` and the record
is lost ("--- Logging error ---" on stderr). This reads every literal ``extra={...}`` in the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = [p for d in ("libs", "services", "examples") for p in (ROOT / d).rglob("src/**/*.py")]


def conflicting_keys(keys: list[str]) -> list[tuple[str, str]]:
    """Pairs (parent, child) where ``child`` starts with ``parent + "."``."""
    return [(a, b) for a in keys for b in keys if b.startswith(a + ".")]


def test_conflicting_keys_are_found() -> None:
    assert conflicting_keys(["topics", "topics.added", "x"]) == [("topics", "topics.added")]
    assert conflicting_keys(["topics.subscribed", "topics.added"]) == []


@pytest.mark.parametrize("path", CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_log_call_nests_a_field_under_another(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extra" and isinstance(node.value, ast.Dict):
            keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            bad += [f"line {node.value.lineno}: {a!r} and {b!r}" for a, b in conflicting_keys(keys)]
    assert not bad, f"{path.relative_to(ROOT)}: {bad}"
