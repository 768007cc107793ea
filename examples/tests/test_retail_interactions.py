"""The interaction-log replay: the `user item rating timestamp` parser (good and bad lines), the records it
makes (accepted by the real ingest validator of the pack's source), and `publish --interactions` end to end
against the real Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from aimesh.core.pan import Tokenizer
from aimesh.examples.banking.generator import to_us
from aimesh.examples.retail.cli import main
from aimesh.examples.retail.interactions import BadLine, Interaction, interaction_id, parse_line, parse_lines, to_event
from aimesh.examples.retail.model import EventType, Stream
from aimesh.examples.retail.pack import SOURCES
from aimesh.ingest.sources import parse_sources_yaml
from aimesh.ingest.validation import Validator, ValidRecord

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
"""The first lines of MovieLens 100k's u.data."""


def test_good_lines() -> None:
    parsed = list(parse_lines(U_DATA.splitlines(keepends=True)))
    assert parsed == [
        Interaction(1, "196", "242", 3.0, 881250949),
        Interaction(2, "186", "302", 3.0, 891717742),
        Interaction(3, "22", "377", 1.0, 878887116),
    ]
    assert parse_line("u-1\tsku-9\t4.5\t0\r\n", 7) == Interaction(7, "u-1", "sku-9", 4.5, 0)
    assert parse_line("u-1\tsku-9\t-1\t5", 1) == Interaction(1, "u-1", "sku-9", -1.0, 5)


def test_blank_lines_are_skipped_and_numbering_counts_them() -> None:
    parsed = list(parse_lines(["\n", "1\t2\t3\t4\n", "   \n", "\r\n", "5\t6\t7\t8"]))
    assert [p.line for p in parsed] == [2, 5]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("196 242 3 881250949", "expected 4 tab-separated columns"),
        ("196\t242\t3", "got 3"),
        ("196\t242\t3\t881250949\textra", "got 5"),
        ("userId\tmovieId\trating\ttimestamp", "rating 'rating' is not a number"),
        ("196\t242\tfive\t881250949", "is not a number"),
        ("196\t242\tnan\t881250949", "not a finite number"),
        ("196\t242\tinf\t881250949", "not a finite number"),
        ("196\t242\t3\t881250949.5", "not a whole number of epoch seconds"),
        ("196\t242\t3\t-5", "not a whole number of epoch seconds"),
        ("196\t242\t3\t2024-01-01", "not a whole number of epoch seconds"),
        ("196\t242\t3\t", "not a whole number of epoch seconds"),
        ("196\t242\t3\t99999999999999", "after the year 9999"),
        ("\t242\t3\t881250949", "user is empty"),
        ("196\t\t3\t881250949", "item is empty"),
        ("196\tx" + "y" * 64 + "\t3\t881250949", "item is longer than 64"),
        ("19 6\t242\t3\t881250949", "contains whitespace"),
        ("196\t242\t3\t\uff18\uff18", "not a whole number of epoch seconds"),
        ("196\t24\ufffd2\t3\t881250949", "not valid UTF-8"),
    ],
)
def test_bad_lines_name_the_problem(text: str, reason: str) -> None:
    parsed = parse_line(text + "\n", 12)
    assert isinstance(parsed, BadLine) and parsed.line == 12 and reason in parsed.reason, parsed
    assert parsed.text == text + "\n"


def test_a_bad_line_does_not_stop_the_rest() -> None:
    parsed = list(parse_lines(["1\t2\t3\t4\n", "oops\n", "5\t6\t7\t8\n"]))
    assert [type(p) for p in parsed] == [Interaction, BadLine, Interaction] and parsed[1].line == 2


def test_records_are_accepted_by_the_pack_source() -> None:
    source = next(s for s in parse_sources_yaml(SOURCES.read_text("utf-8")) if s.name == "retail_interactions")
    validator = Validator(source, Tokenizer("test-secret"))
    for parsed in parse_lines(U_DATA.splitlines()):
        assert isinstance(parsed, Interaction)
        event = to_event(parsed)
        record = orjson.loads(event.value)
        assert record == {
            "interaction_id": interaction_id(parsed),
            "user_id": parsed.user_id,
            "item_id": parsed.item_id,
            "event_type": "purchase",
            "rating": parsed.rating,
            "timestamp": record["timestamp"],
        }
        assert event.stream is Stream.INTERACTIONS and event.key == parsed.user_id
        outcome = validator.validate(event.value)
        assert isinstance(outcome, ValidRecord), outcome
        assert outcome.event_time_us == parsed.timestamp_s * 1_000_000 == event.time_us
        assert outcome.entity_key == parsed.user_id and outcome.attributes["item_id"] == parsed.item_id
        assert outcome.attributes["rating"] == parsed.rating
    first = next(p for p in parse_lines(U_DATA.splitlines()) if isinstance(p, Interaction))
    assert orjson.loads(to_event(first).value)["timestamp"] == "1997-12-04T15:55:49.000Z"
    viewed = orjson.loads(to_event(first, event_type=EventType.VIEW, shift_us=1_000).value)
    assert viewed["event_type"] == "view" and viewed["timestamp"] == "1997-12-04T15:55:49.001Z"


def test_event_ids_are_stable_and_tell_lines_apart() -> None:
    a, b = Interaction(1, "196", "242", 3.0, 881250949), Interaction(9, "196", "242", 5.0, 881250949)
    assert interaction_id(a) == interaction_id(b), "the same interaction replayed (rating aside) is a duplicate"
    others = {interaction_id(Interaction(1, u, i, 3.0, t)) for u, i, t in [("196", "242", 1), ("19", "6242", 0)]}
    assert len(others | {interaction_id(a)}) == 3
    assert all(len(x) <= 64 for x in others)


def test_strict_publishes_nothing_when_a_line_is_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "u.data"
    log.write_text(U_DATA + "oops\n")
    # An unreachable bootstrap: a publish attempt would fail, so exit status 2 means nothing was tried.
    assert main(["publish", "--interactions", str(log), "--strict", "--bootstrap", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "1 bad line(s)" in err and "line 4: expected 4 tab-separated columns" in err and "nothing published" in err
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\nheader only\n")
    assert main(["publish", "--interactions", str(empty), "--bootstrap", "127.0.0.1:1"]) == 2
    assert main(["publish", "--interactions", str(tmp_path / "missing"), "--bootstrap", "127.0.0.1:1"]) == 2


async def _read(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        got: list[tuple[bytes | None, bytes]] = []
        async with asyncio.timeout(30):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                got += [(m.key, m.value) for messages in batch.values() for m in messages]
        return got
    finally:
        await consumer.stop()


@pytest.mark.integration
def test_publish_interactions_replays_the_good_lines_to_kafka(
    tmp_path: Path, endpoints: Any, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    topic = f"retail.interactions.test-{unique}"
    log = tmp_path / "u.data"
    log.write_text(U_DATA + "196\t242\t3\n\n")
    end = "2025-03-01T00:00:00Z"

    status = main(
        [
            *("publish", "--interactions", str(log), "--interactions-topic", topic, "--bootstrap", bootstrap),
            *("--shift-end", end, "--event-type", "add_to_cart"),
        ]
    )

    assert status == 0
    err = capsys.readouterr().err
    assert "line 4: expected 4 tab-separated columns" in err and "published 3 records" in err
    records = asyncio.run(_read(bootstrap, topic, 3))
    by_user = {orjson.loads(value)["user_id"]: (key, orjson.loads(value)) for key, value in records}
    assert sorted(by_user) == ["186", "196", "22"]
    assert all(key == user.encode() for user, (key, _) in by_user.items()), "keyed by user"
    assert {v["event_type"] for _, v in by_user.values()} == {"add_to_cart"}
    assert by_user["186"][1]["timestamp"] == "2025-03-01T00:00:00.000Z", "the newest line lands on --shift-end"
    shift = to_us(datetime(2025, 3, 1, tzinfo=UTC)) - 891717742 * 1_000_000
    first = datetime.fromisoformat(by_user["196"][1]["timestamp"])
    assert to_us(first) == 881250949 * 1_000_000 + shift, "gaps between lines are preserved"
