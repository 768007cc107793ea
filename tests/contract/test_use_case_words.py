"""Services and libs know no use case: no banking or retail name in their code (the rule:
``tests.contract.use_case_words``); the rule itself catches what it should and nothing generic."""

from __future__ import annotations

from pathlib import Path

from tests.contract.use_case_words import (
    EXEMPT,
    ROOT,
    code_files,
    pack_names,
    tokens,
    use_case_names,
    why_use_case,
    words,
)


def test_no_banking_or_retail_name_in_services_or_libs() -> None:
    assert len(code_files()) > 100, "the scan must see the services' and libs' code"
    findings = use_case_names()
    assert not findings, "use-case names in the platform's code:\n" + "\n".join(map(str, findings))


def test_the_exempt_files_exist() -> None:
    assert all((ROOT / path).is_file() for path in EXEMPT), EXEMPT


def test_words_split_at_case_and_separators() -> None:
    assert words("PanMasker") == ["pan", "masker"]
    assert words("user_id") == ["user", "id"]
    assert words("HTTPServerURL.add-to-cart") == ["http", "server", "url", "add", "to", "cart"]


def test_the_packs_compound_names_are_read() -> None:
    names = pack_names()
    assert {"retail_interactions", "retail.interactions", "user_recent_items", "next_item_v1"} <= names
    assert {"card_transactions", "fraud_v1", "card_txn_stats"} <= names
    assert all("_" in n or "." in n for n in names)


def test_the_rule_catches_use_case_names_and_leaves_generic_ones() -> None:
    declared = pack_names()
    caught = [
        "basket_total", "AddToCart", "purchase", "user_id", "sessionId", "card", "FraudScorer", "merchant_id",
        "retail.items", "user_recent_items", "item_stats", "next_item_v1",
    ]  # fmt: skip
    allowed = [
        "discard", "users", "item_id", "RecommendedItem", "TASK_NEXT_ITEM", "next_item", "session", "PanMasker",
        "transaction", "_account", "amount", "view", "event_type",
    ]  # fmt: skip
    assert [t for t in caught if why_use_case(t, declared) is None] == []
    assert {t: why_use_case(t, declared) for t in allowed if why_use_case(t, declared) is not None} == {}


def test_docstrings_are_prose_and_code_is_not(tmp_path: Path) -> None:
    source = '''"""Scores a card payment; recommends items to a user."""
def score(user_id: str) -> str:
    """The basket's total."""
    return f"cart-{user_id}" + " ".join(["a cart of", "items"])
'''
    assert not {"The basket's total.", "a cart of"} & {t for _, t in tokens(source)}
    module = tmp_path / "module.py"
    module.write_text(source)
    found = {(f.line, f.token) for f in use_case_names([module])}
    assert found == {(2, "user_id"), (4, "user_id"), (4, "cart-")}
