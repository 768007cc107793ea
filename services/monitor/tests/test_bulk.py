"""Monitor's bulk bodies (orjson NDJSON, equal to the client's stdlib JSON) and per-document outcomes."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from elastic_transport import ApiError, ApiResponseMeta, HttpHeaders, NodeConfig
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch.serializer import JsonSerializer

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.core.errors import Unavailable
from aimesh.monitor.bulk import IndexRequest, Rejected, bulk_body, encode_source
from aimesh.monitor.documents import prediction_document
from aimesh.monitor.elastic import BULK_CHUNK, ElasticStore

STDLIB = JsonSerializer()


def _prediction_document() -> dict[str, Any]:
    p = inference_events.Prediction(
        event_id="e-1",
        request_id="r-ü",
        model_name="m",
        model_version=3,
        score=0.1 + 0.2,
        features={"a": 1e16, "b": -0.0, "c": 1 / 3, "é": 2.5e-308},
        entity_ids={"card": 'c\u2028\x00"\\'},
        missing_features=["x"],
        items=["i1", "i2"],
        k=2,
        tenant="t",
    )
    p.time.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    p.latency.FromNanoseconds(1_234_567)
    return prediction_document(p, "0af7651916cd43dd8448eb211c80319c")


@pytest.mark.parametrize(
    "document",
    [
        _prediction_document(),
        {"t": datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC), "naive": datetime(2026, 1, 2), "d": date(2026, 1, 2)},
        {"u": uuid.UUID(int=5), "dec": Decimal("1.25"), "tuple": (1, 2), "big": 2**64 - 1, "neg": -(2**63)},
        {1: "int key", 1.5: "float key", None: "none key", "nested": {2: [{"x": None}]}},
        {"flag": True, "empty": {}, "list": [], "text": "日本語 \t tab"},
    ],
    ids=["prediction", "datetimes", "other-types", "non-str-keys", "misc"],
)
def test_a_source_is_the_stdlib_serializers_bytes(document: dict[Any, Any]) -> None:
    assert encode_source(document) == STDLIB.dumps(document)


def test_true_as_a_key_is_the_stdlib_text() -> None:
    document: dict[Any, Any] = {True: 1, False: 0}
    assert encode_source(document) == STDLIB.dumps(document) == b'{"true":1,"false":0}'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_become_null_where_the_stdlib_wrote_tokens_elasticsearch_refuses(value: float) -> None:
    assert encode_source({"score": value, "ok": 1.0}) == b'{"score":null,"ok":1.0}'
    assert STDLIB.dumps({"score": value}) in (b'{"score":NaN}', b'{"score":Infinity}', b'{"score":-Infinity}')


def test_a_value_neither_serializer_takes_raises_type_error() -> None:
    with pytest.raises(TypeError):
        encode_source({"s": {1, 2}})
    with pytest.raises(TypeError):
        encode_source({"i": 2**64})


def test_the_body_is_action_and_source_lines_each_newline_terminated() -> None:
    doc = {"a": 1}
    body = bulk_body([IndexRequest("ix", "id-1", doc), IndexRequest("ix", 'q"2', doc, encoded=b'{"pre":1}')])
    assert (
        body == b'{"index":{"_index":"ix","_id":"id-1"}}\n{"a":1}\n{"index":{"_index":"ix","_id":"q\\"2"}}\n{"pre":1}\n'
    )
    lines = body.splitlines()
    assert [orjson.loads(line) for line in lines[::2]] == [
        {"index": {"_index": "ix", "_id": "id-1"}},
        {"index": {"_index": "ix", "_id": 'q"2'}},
    ]
    assert bulk_body([]) == b""


def _api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
    return ApiError(f"status {status}", meta, None)


Answer = Callable[[list[str]], dict[str, Any]]


class FakeClient:
    """Answers each bulk call with ``answers[n](ids)`` (or raises what it returns); records the ids sent."""

    def __init__(self, *answers: Answer | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []
        self.filter_paths: list[str] = []

    async def bulk(self, *, operations: bytes, refresh: bool, filter_path: str) -> SimpleNamespace:
        lines = operations.splitlines()
        assert operations.endswith(b"\n") and len(lines) % 2 == 0
        ids = [orjson.loads(line)["index"]["_id"] for line in lines[::2]]
        self.calls.append(ids)
        self.filter_paths.append(filter_path)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return SimpleNamespace(body=answer(ids))


def _items(statuses: dict[str, tuple[int, object]]) -> Answer:
    """Every id 201 except those in ``statuses`` (status, error)."""

    def answer(ids: list[str]) -> dict[str, Any]:
        items = [
            {"index": {"status": statuses[i][0], "error": statuses[i][1]} if i in statuses else {"status": 201}}
            for i in ids
        ]
        return {"errors": any(i in statuses for i in ids), "items": items}

    return answer


def _store(client: FakeClient) -> ElasticStore:
    store = ElasticStore("http://127.0.0.1:1", "aim")
    store._es = client  # type: ignore[assignment]
    store.retry_backoff_s = (0.0, 0.0)
    return store


def _requests(n: int) -> list[IndexRequest]:
    return [IndexRequest("aim-predictions", f"d{i}", {"i": i}) for i in range(n)]


async def test_permanent_refusals_are_returned_with_their_reason_and_the_others_are_indexed() -> None:
    client = FakeClient(
        _items(
            {
                "d1": (400, {"type": "document_parsing_exception", "reason": "failed to parse field [score]"}),
                "d3": (400, {"caused_by": {"reason": "Limit of total fields [1000] has been exceeded"}}),
            }
        )
    )
    rejected = await _store(client).bulk_index(_requests(5))
    assert [(r.doc_id, r.status, r.reason_code) for r in rejected] == [
        ("d1", 400, "DOCUMENT_REJECTED"),
        ("d3", 400, "TOO_MANY_FIELDS"),
    ]
    assert "failed to parse field" in rejected[0].reason
    assert client.calls == [[f"d{i}" for i in range(5)]]
    assert client.filter_paths == ["errors,items.*.status,items.*.error"]


async def test_documents_answered_429_are_sent_again_alone_then_unavailable() -> None:
    busy = (429, {"type": "es_rejected_execution_exception"})
    client = FakeClient(_items({"d0": busy, "d2": busy}), _items({"d2": busy}), _items({}))
    assert await _store(client).bulk_index(_requests(3)) == []
    assert client.calls == [["d0", "d1", "d2"], ["d0", "d2"], ["d2"]]

    always = FakeClient(_items({"d1": busy}))
    with pytest.raises(Unavailable, match="429"):
        await _store(always).bulk_index(_requests(2))
    assert always.calls == [["d0", "d1"], ["d1"], ["d1"]]


async def test_a_whole_request_answered_429_is_retried() -> None:
    client = FakeClient(_api_error(429), _items({}))
    assert await _store(client).bulk_index(_requests(2)) == []
    assert client.calls == [["d0", "d1"], ["d0", "d1"]]
    with pytest.raises(Unavailable):
        await _store(FakeClient(_api_error(429))).bulk_index(_requests(2))


@pytest.mark.parametrize(
    "failure",
    [_api_error(503), _api_error(400), TransportConnectionError("refused")],
    ids=["503", "400-request", "connection"],
)
async def test_a_failed_request_raises_unavailable(failure: BaseException) -> None:
    client = FakeClient(failure)
    with pytest.raises(Unavailable):
        await _store(client).bulk_index(_requests(2))
    assert len(client.calls) == 1


async def test_a_5xx_item_raises_unavailable_even_beside_indexed_ones() -> None:
    client = FakeClient(_items({"d1": (503, {"type": "unavailable_shards_exception"})}))
    with pytest.raises(Unavailable, match="d1"):
        await _store(client).bulk_index(_requests(3))


async def test_a_request_refused_413_is_split_in_halves_down_to_the_document_too_large() -> None:
    def too_large_with(doc_id: str) -> Answer:
        def answer(ids: list[str]) -> dict[str, Any]:
            if doc_id in ids:
                raise _api_error(413)
            return _items({})(ids)

        return answer

    client = FakeClient(too_large_with("d2"))
    rejected = await _store(client).bulk_index(_requests(4))
    assert rejected == [Rejected("d2", 413, "[413] status 413", "DOCUMENT_TOO_LARGE")]
    assert client.calls == [["d0", "d1", "d2", "d3"], ["d0", "d1"], ["d2", "d3"], ["d2"], ["d3"]]


async def test_a_large_batch_goes_in_requests_of_at_most_bulk_chunk_documents() -> None:
    client = FakeClient(_items({}))
    assert await _store(client).bulk_index(_requests(BULK_CHUNK * 2 + 1)) == []
    assert [len(c) for c in client.calls] == [BULK_CHUNK, BULK_CHUNK, 1]
    assert await _store(client).bulk_index([]) == []
    assert len(client.calls) == 3


async def test_a_response_with_a_missing_item_raises_unavailable() -> None:
    client = FakeClient(lambda ids: {"errors": True, "items": []})
    with pytest.raises(Unavailable, match="0 bulk items for 2"):
        await _store(client).bulk_index(_requests(2))
