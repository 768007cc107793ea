"""Monitor's indexing outcomes: bounded maps, dead-letter documents, classified refusals, nothing skipped."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.core.deadletter import build_dead_letter
from aimesh.core.errors import Unavailable
from aimesh.core.events import Event, cloudevent_headers
from aimesh.monitor.bulk import IndexRequest, Rejected, classify_rejection, encode_source
from aimesh.monitor.documents import dead_letter_document, prediction_document
from aimesh.monitor.indexing import EventIndexer


def _event(value: bytes, ce_type: str, ce_id: str, offset: int = 0) -> Event:
    headers = cloudevent_headers(event_type=ce_type, source="t", event_id=ce_id)
    return Event("aimesh.inference.predictions.v1", 0, offset, b"k", value, tuple(headers), 0)


def _prediction(event_id: str, *, request_id: str = "r", entities: int = 1) -> Event:
    p = inference_events.Prediction(
        event_id=event_id,
        request_id=request_id,
        model_name="m",
        entity_ids={f"e{i:05d}": f"id-{i}" for i in range(entities)},
    )
    p.time.GetCurrentTime()
    return _event(p.SerializeToString(), p.DESCRIPTOR.full_name, event_id)


def test_a_map_over_the_bound_is_cut_in_key_order_and_flagged() -> None:
    p = inference_events.Prediction(entity_ids={f"e{i:05d}": "x" for i in range(10_000)}, features={"f": 1.0})
    doc = prediction_document(p, max_map_entries=100)
    assert sorted(doc["entity"]) == [f"e{i:05d}" for i in range(100)]
    assert doc["truncated"] == ["entity"] and doc["truncated_count"] == 9_900
    assert doc["features"] == {"f": 1.0}
    assert "truncated" not in prediction_document(inference_events.Prediction(entity_ids={"a": "b"}))


def test_dead_letter_document_keeps_reason_writer_and_reference_but_no_header_values() -> None:
    letter = build_dead_letter(
        payload=b"",
        headers=(("ce_type", b"aimesh.api.inference.v1.Prediction"), ("secret", b"4111111111111111")),
        service="monitor",
        reason_code="DOCUMENT_TOO_LARGE",
        message="too big",
        position=("aimesh.inference.predictions.v1", 2, 9),
    )
    letter.payload_ref, letter.payload_preview, letter.payload_size = "file:///x", b"\xffpre", 2_000_000
    event = _event(letter.SerializeToString(), letter.DESCRIPTOR.full_name, "dlq:a/2/9")
    doc = dead_letter_document(letter, event)
    assert doc["deadletter"]["reason"] == "DOCUMENT_TOO_LARGE" and doc["service"]["name"] == "monitor"
    assert doc["payload"] == {"size": 2_000_000, "ref": "file:///x", "preview": "\ufffdpre"}
    assert doc["deadletter"]["header_keys"] == ["ce_type", "secret"]
    assert doc["deadletter"]["original_type"] == "aimesh.api.inference.v1.Prediction"
    assert doc["upstream"] == {"topic": "aimesh.inference.predictions.v1", "partition": 2, "offset": 9}
    assert "4111111111111111" not in str(doc)


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (
            400,
            {
                "type": "document_parsing_exception",
                "caused_by": {"reason": "Limit of total fields [1000] has been exceeded"},
            },
            "TOO_MANY_FIELDS",
        ),
        (
            400,
            {"type": "illegal_argument_exception", "reason": "Document contains at least one immense term"},
            "DOCUMENT_TOO_LARGE",
        ),
        (
            400,
            {"type": "document_parsing_exception", "reason": "failed to parse field [score] of type [double]"},
            "DOCUMENT_REJECTED",
        ),
        (429, {"type": "es_rejected_execution_exception"}, None),
        (503, {"type": "unavailable_shards_exception"}, None),
    ],
)
def test_bulk_errors_are_classified(status: int, error: dict[str, object], code: str | None) -> None:
    assert classify_rejection(status, error) == code


class FakeStore:
    """An ``ElasticStore`` stand-in: refuses the ids in ``refuse`` with their code, or is unavailable."""

    prefix = "aim"

    def __init__(self, refuse: dict[str, str] | None = None, *, down: bool = False) -> None:
        self.refuse = refuse or {}
        self.down = down
        self.indexed: list[str] = []

    async def bulk_index(self, requests: Sequence[IndexRequest]) -> list[Rejected]:
        if self.down:
            raise Unavailable("Elasticsearch is down")
        self.indexed += [r.doc_id for r in requests if r.doc_id not in self.refuse]
        return [Rejected(r.doc_id, 400, "no", self.refuse[r.doc_id]) for r in requests if r.doc_id in self.refuse]


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def send(self, event: Event, reason_code: str, message: str) -> None:
        self.sent.append((event.offset, reason_code))


def _batch() -> list[Event]:
    return [
        _prediction("good-1"),
        _event(b"\xff\xff", "aimesh.api.inference.v1.Prediction", "bad-bytes", 1),
        _prediction("huge", request_id="x" * 600_000),
        _prediction("fields", entities=10),
        _prediction("good-2"),
    ]


async def test_bad_documents_are_dead_lettered_with_their_reason_and_the_rest_indexed() -> None:
    events = _batch()
    for offset, event in enumerate(events):
        object.__setattr__(event, "offset", offset)
    store, dlq = FakeStore({"fields": "TOO_MANY_FIELDS"}), FakeDeadLetters()
    observed: list[list[str]] = []
    indexer = EventIndexer(store, dlq, observer=lambda ps: observed.append([p.event_id for p in ps]))  # type: ignore[arg-type]
    await indexer.handle_batch(events)
    assert store.indexed == ["good-1", "good-2"]
    assert dlq.sent == [(1, "DECODE_ERROR"), (2, "DOCUMENT_TOO_LARGE"), (3, "TOO_MANY_FIELDS")]
    assert observed == [["good-1", "good-2"]]  # only the indexed predictions feed the drift windows


async def test_an_unavailable_elasticsearch_raises_and_dead_letters_nothing() -> None:
    store, dlq = FakeStore(down=True), FakeDeadLetters()
    observed: list[object] = []
    with pytest.raises(Unavailable):
        await EventIndexer(store, dlq, observer=observed.append).handle_batch(  # type: ignore[arg-type]
            [_prediction("good-1"), _prediction("fields")]
        )
    assert dlq.sent == [] and observed == []  # the retried batch is observed once, when indexed


async def test_a_refused_dead_letter_document_is_not_dead_lettered_again() -> None:
    letter = build_dead_letter(payload=b"x", headers=(), service="feature", reason_code="DECODE_ERROR", message="m")
    event = _event(letter.SerializeToString(), deadletter_pb2.DeadLetter.DESCRIPTOR.full_name, "dlq:t/0/1")
    store, dlq = FakeStore({"dlq:t/0/1": "DOCUMENT_REJECTED"}), FakeDeadLetters()
    await EventIndexer(store, dlq).handle_batch([event])  # type: ignore[arg-type]
    assert dlq.sent == []


async def test_an_observer_error_never_fails_the_indexed_batch(caplog: pytest.LogCaptureFixture) -> None:
    def broken(predictions: Sequence[inference_events.Prediction]) -> None:
        raise ValueError("bad profile")

    store = FakeStore()
    await EventIndexer(store, FakeDeadLetters(), observer=broken).handle_batch([_prediction("good-1")])  # type: ignore[arg-type]
    assert store.indexed == ["good-1"] and "bad profile" in caplog.text


async def test_each_document_is_encoded_once_and_sent_with_the_bytes_it_was_sized_by() -> None:
    sent: list[IndexRequest] = []

    class Recording(FakeStore):
        async def bulk_index(self, requests: Sequence[IndexRequest]) -> list[Rejected]:
            sent.extend(requests)
            return await super().bulk_index(requests)

    await EventIndexer(Recording(), FakeDeadLetters()).handle_batch([_prediction("good-1")])  # type: ignore[arg-type]
    assert [r.doc_id for r in sent] == ["good-1"]
    assert sent[0].encoded == encode_source(sent[0].document)
