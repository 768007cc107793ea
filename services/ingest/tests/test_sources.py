"""Source definitions: a sources file loads, overrides apply, inconsistent definitions are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.ingest.sources import SourceDefinition, load_sources, parse_sources_yaml

SOURCES_FILE = Path(__file__).parent / "fixtures" / "sources.yaml"


def test_a_sources_file_loads_with_its_roles_rules_and_pii_tokens() -> None:
    sources = {s.name: s for s in load_sources(SOURCES_FILE)}

    assert sources["card_transactions"].topic == "bank.card-transactions"
    assert sources["chargebacks"].topic == "bank.chargebacks"
    tx = sources["card_transactions"]
    assert (tx.entity_key, tx.event_id_field, tx.event_time_field) == ("card_id", "transaction_id", "timestamp")
    assert tx.pii_token_fields == {"card_number": "card_token"}
    proto = tx.to_proto()
    assert proto.format == ingest_pb2.SOURCE_FORMAT_JSON
    amount = next(f for f in proto.fields if f.name == "amount")
    assert amount.type == ingest_pb2.FIELD_TYPE_DOUBLE and amount.min_exclusive and amount.max == 50000


def test_topic_overrides_replace_the_upstream_topic() -> None:
    sources = load_sources(SOURCES_FILE, topic_overrides={"chargebacks": "test.cb"})
    assert {s.name: s.topic for s in sources}["chargebacks"] == "test.cb"
    with pytest.raises(ValueError, match="unknown sources"):
        load_sources(SOURCES_FILE, topic_overrides={"nope": "x"})


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"entity_key": "missing"}, "entity_key must name a required declared field"),
        ({"event_time_field": "card_id"}, "event_time_field must be a timestamp field"),
        ({"pii_token_fields": {"card_id": "t"}}, "non-PII fields"),
        ({"name": "Bad-Name"}, r"must match \[a-z0-9_\]\+"),
    ],
)
def test_inconsistent_definitions_are_refused(tmp_path: Path, change: dict[str, object], error: str) -> None:
    document = {"sources": [s.model_dump(mode="json") for s in load_sources(SOURCES_FILE)]}
    document["sources"][0].update(change)
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValueError, match=error):
        load_sources(path)


def test_definitions_round_trip_through_the_proto_and_push_only_sources_get_a_push_topic() -> None:
    for source in load_sources(SOURCES_FILE):
        assert SourceDefinition.from_proto(source.to_proto()) == source
    push_only = load_sources(SOURCES_FILE)[1].model_copy(update={"topic": ""})
    assert push_only.intake_topic == "aimesh.ingest.push.chargebacks.v1"
    unset = load_sources(SOURCES_FILE)[1].to_proto()
    unset.format = ingest_pb2.SOURCE_FORMAT_UNSPECIFIED
    with pytest.raises(ValueError, match="format must be set"):
        SourceDefinition.from_proto(unset)


def test_a_document_that_is_no_yaml_or_has_two_sources_on_one_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_sources_yaml("sources: [unclosed")
    text = SOURCES_FILE.read_text().replace("topic: bank.chargebacks", "topic: bank.card-transactions")
    with pytest.raises(ValueError, match="two sources read the same topic"):
        parse_sources_yaml(text)
    assert [s.name for s in parse_sources_yaml(SOURCES_FILE.read_text())] == ["card_transactions", "chargebacks"]
