"""DLQ replay without Kafka: what is re-submitted where, with which headers, and what is skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aimesh.api.common.v1 import common_pb2, deadletter_pb2
from aimesh.core.events import Event
from aimesh.core.testing import RecordingSender
from aimesh.ingest.replay import ReplayFilter, replay_dead_letters, upstream_or_intake_topic


def letter(offset: int, **fields: object) -> Event:
    values: dict[str, object] = {"original_payload": b"{}", "source": "card_transactions", "reason_code": 5}
    dl = deadletter_pb2.DeadLetter(**(values | fields))  # type: ignore[arg-type]
    return Event("dlq", 0, offset, b"card_transactions", dl.SerializeToString(), (), 0)


async def stream(events: Sequence[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


TARGET = upstream_or_intake_topic({"card_transactions": "bank.tx", "chargebacks": "aimesh.ingest.push.chargebacks.v1"})


async def test_entries_go_back_where_they_came_from_with_replay_and_mask_headers() -> None:
    sender = RecordingSender()
    events = [
        letter(
            0,
            event_id="t1",
            upstream=common_pb2.KafkaPosition(topic="test.tx", partition=2, offset=9),
            masked_fields=["card_number"],
            original_headers=[common_pb2.Header(key="origin", value=b"x")],
        ),
        letter(1, event_id="t2"),
    ]
    summary = await replay_dead_letters(stream(events), TARGET, sender)

    assert (summary.scanned, summary.resubmitted) == (2, 2)
    assert [(r.topic, r.key) for r in sender.raw] == [("test.tx", "t1"), ("bank.tx", "t2")]
    assert sender.raw[0].headers == (
        ("origin", b"x"),
        ("aimesh-replay-of", b"dlq/0/0"),
        ("aimesh-pii-masked", b"card_number"),
    )
    assert summary.by_reason == {"NOT_ALLOWED_VALUE": 2}


async def test_filters_chains_unknown_sources_and_dry_run() -> None:
    replayed_again = [common_pb2.Header(key="aimesh-replay-of", value=b"dlq/0/0")]
    events = [
        letter(0, event_id="a"),
        letter(1, event_id="a", original_headers=replayed_again),
        letter(2, event_id="b", reason_code=3),
        letter(3, event_id="c", source="gone"),
        Event("dlq", 0, 4, None, b"\xff garbage", (), 0),
    ]
    sender = RecordingSender()
    summary = await replay_dead_letters(stream(events), TARGET, sender, only=ReplayFilter(reason="not_allowed_value"))
    assert (summary.matched, summary.resubmitted, summary.already_replayed, summary.unroutable) == (3, 1, 1, 1)
    assert summary.unreadable == 1 and [r.key for r in sender.raw] == ["a"]

    dry = await replay_dead_letters(stream(events), TARGET, None, only=ReplayFilter(source="card_transactions"))
    assert dry.resubmitted == 2
