"""The rule that keeps use cases out of the platform's code: services and libs know no pack.

A use case (banking's fraud scoring, retail's next-item recommendations) is data under ``examples/``:
its sources, features and training spec are applied through the public APIs. ``use_case_names`` finds
the places where code under ``services/*/src`` or ``libs/*/src`` names one anyway. The rule, precisely:

- **What is read**: every identifier (names, attributes, function, class and argument names, keyword
  arguments, imported names and their aliases) and every string literal without whitespace (a field,
  topic, key or label name; f-string parts included), parsed with ``ast``. Docstrings, comments and
  literals with whitespace (messages, help texts) are prose and may use any word (e.g. "card and
  customer" as an example of several entities, a help text naming a pack's file).
- **Words**: a token is split into lowercase words at every non-alphanumeric character and at camelCase
  boundaries (``PanMasker`` -> ``pan``, ``masker``; ``user_id`` -> ``user``, ``id``), so ``discard``
  never matches ``card``. A token names a use case when it contains a word of ``USE_CASE_WORDS``, two
  adjacent words of ``USE_CASE_PHRASES``, or is, as a whole, a compound name (with ``_`` or ``.``) that
  a pack declares (``pack_names``: its sources, their topics, feature views, features and feature
  services, read from ``examples/src/aimesh/examples/*/pack/*.yaml``).
- **Generic words stay allowed**: ``user`` (a database user, a feature's users), ``item`` and
  ``recommend`` (the generic top-k API: ``Recommend``, ``RecommendedItem.item_id``, ``TASK_NEXT_ITEM``),
  ``session``, ``transaction`` (Kafka's, SQL's), ``account``, ``amount``, ``pan`` (ingest masks PAN-like
  digit runs in any source: generic PII handling). Pack model names are not matched (retail's
  ``next_item`` is the generic task's name).
- **Exempt**: ``EXEMPT`` files, each with its reason.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKS = ROOT / "examples" / "src" / "aimesh" / "examples"

BANKING_WORDS = frozenset(
    {"bank", "banking", "card", "cards", "chargeback", "chargebacks", "fraud", "iban", "merchant", "merchants"}
    | {"payment", "payments", "customer", "customers"}
)
RETAIL_WORDS = frozenset(
    {"retail", "retailer", "basket", "baskets", "cart", "carts", "checkout", "purchase", "purchases", "purchased"}
    | {"shopper", "shoppers", "interaction", "interactions"}
)
USE_CASE_WORDS = BANKING_WORDS | RETAIL_WORDS
USE_CASE_PHRASES = frozenset({("user", "id"), ("session", "id")})
"""The packs' own field names built of generic words (retail's ``user_id`` and ``session_id``)."""

EXEMPT = {
    "services/feature/src/aimesh/feature/migrations/versions/r0001_online_store.py": (
        "an applied Alembic revision is history: its banking columns (amount, merchant_id) are dropped with "
        "its table by r0002_views_and_registry"
    ),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    token: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.token!r} ({self.why})"


def code_files(root: Path = ROOT) -> list[Path]:
    """The platform's code: ``services/*/src`` and ``libs/*/src`` (generated protobuf modules included)."""
    return sorted([*root.glob("services/*/src/**/*.py"), *root.glob("libs/*/src/**/*.py")])


def words(token: str) -> list[str]:
    """``token`` split into lowercase words at non-alphanumerics and camelCase boundaries."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", token)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def pack_names(packs: Path = PACKS) -> frozenset[str]:
    """Every compound name (containing ``_`` or ``.``) a pack declares: sources and their topics, feature
    views, features and feature services, lowercased."""
    names: set[str] = set()
    for path in packs.glob("*/pack/*.yaml"):
        document = yaml.safe_load(path.read_text("utf-8")) or {}
        for source in document.get("sources", []):
            names |= {source["name"], source.get("topic", "")}
        for view in document.get("feature_views", []):
            names |= {view["name"], *(f["name"] for f in view.get("features", []))}
        names |= {service["name"] for service in document.get("feature_services", [])}
    return frozenset(n.lower() for n in names if "_" in n or "." in n)


def why_use_case(token: str, declared: frozenset[str]) -> str | None:
    """Why ``token`` names a use case under the rule, or None when it does not."""
    if token.lower() in declared:
        return "a name a pack declares"
    split = words(token)
    for word in split:
        if word in USE_CASE_WORDS:
            return f"use-case word {word!r}"
    for pair in itertools.pairwise(split):
        if pair in USE_CASE_PHRASES:
            return f"use-case name {'_'.join(pair)!r}"
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _is_name_literal(node: ast.Constant, docstrings: set[int]) -> bool:
    """A string literal that is no docstring and has no whitespace: a name, not prose."""
    value = node.value
    return isinstance(value, str) and id(node) not in docstrings and not any(c.isspace() for c in value)


def tokens(source: str) -> Iterator[tuple[int, str]]:
    """(line, token) for every identifier and every string literal without whitespace that is not a docstring
    in ``source`` (see the rule)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name
        elif isinstance(node, ast.arg) or (isinstance(node, ast.keyword) and node.arg):
            yield line, str(node.arg)
        elif isinstance(node, ast.alias):
            yield line, node.name
            if node.asname:
                yield line, node.asname
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield line, node.module
        elif isinstance(node, ast.Constant) and _is_name_literal(node, docstrings):
            yield line, str(node.value)


def use_case_names(files: Iterable[Path] | None = None, root: Path = ROOT) -> list[Finding]:
    """Every token of the platform's code (``code_files``, ``EXEMPT`` left out) that names a use case."""
    declared = pack_names()
    findings = []
    for path in code_files(root) if files is None else files:
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        if relative in EXEMPT:
            continue
        for line, token in tokens(path.read_text("utf-8")):
            why = why_use_case(token, declared)
            if why is not None:
                findings.append(Finding(relative, line, token[:80], why))
    return findings
