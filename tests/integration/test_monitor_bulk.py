"""Monitor's orjson bulk path against the real Elasticsearch, next to the client's ``helpers.async_bulk``.

What it proves: prediction documents indexed by ``ElasticStore.bulk_index`` are stored with the same
``_source`` as the same documents indexed by ``async_bulk`` with the client's stdlib serializer; a NaN
score is stored as null (the stdlib's ``NaN`` token is refused by Elasticsearch); a document the mapping
refuses comes back as ``Rejected`` (``DOCUMENT_REJECTED``, 400) while the rest of the batch is indexed;
sending the batch again changes no count (``_id`` = event id). Indices and templates are named by a
unique prefix and deleted afterwards.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.monitor.bulk import IndexRequest
from aimesh.monitor.documents import Document, prediction_document
from aimesh.monitor.elastic import ElasticStore

pytestmark = [pytest.mark.integration]


@pytest.fixture
async def store(endpoints: Any, unique: str) -> AsyncIterator[ElasticStore]:
    store = ElasticStore(endpoints.elasticsearch_url, f"it-bulk-{unique}")
    es = store.client
    try:
        await store.ensure_templates()
        yield store
    finally:
        predictions = store.indices["predictions"]
        await es.indices.delete(index=[predictions, f"{predictions}-anchor"], ignore_unavailable=True)
        for name in store.indices.values():
            await es.options(ignore_status=404).indices.delete_index_template(name=name)
        await store.close()


def _document(i: int, score: float) -> tuple[str, Document]:
    p = inference_events.Prediction(
        event_id=f"e-{i}",
        request_id=f"r-{i}-ü日本",
        model_name="m",
        model_version=2,
        score=score,
        features={"big": 1e16 + i, "tiny": 5e-324, "third": 1 / 3, "neg_zero": -0.0},
        entity_ids={"card": f'c-{i}\u2028\t"\\'},
        missing_features=["gone"],
        items=[f"item-{j}" for j in range(i)],
        k=i,
        tenant="t",
    )
    p.time.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, 678901 + i, tzinfo=UTC))
    p.latency.FromNanoseconds(1_234_567 * (i + 1))
    return p.event_id, prediction_document(p, f"{i:032x}")


async def test_bulk_index_stores_what_async_bulk_stores_nan_as_null_and_classifies_refusals(
    store: ElasticStore,
) -> None:
    es: AsyncElasticsearch = store.client
    index = store.indices["predictions"]
    docs = [_document(i, 0.125 * i) for i in range(6)]
    nan_id, nan_doc = _document(6, math.nan)
    refused_doc = {**docs[0][1], "score": "not a number"}
    batch = [IndexRequest(index, doc_id, doc) for doc_id, doc in docs]
    batch += [IndexRequest(index, nan_id, nan_doc), IndexRequest(index, "refused", refused_doc)]

    rejected = await store.bulk_index(batch, refresh=True)
    assert [(r.doc_id, r.status, r.reason_code) for r in rejected] == [("refused", 400, "DOCUMENT_REJECTED")]
    assert "score" in rejected[0].reason

    anchor = f"{index}-anchor"
    ok, errors = await async_bulk(
        es, ({"_index": anchor, "_id": doc_id, "_source": doc} for doc_id, doc in docs), refresh=True
    )
    assert (ok, errors) == (len(docs), [])
    ids = [doc_id for doc_id, _ in docs]
    ours = (await es.mget(index=index, ids=ids))["docs"]
    theirs = (await es.mget(index=anchor, ids=ids))["docs"]
    assert [d["_source"] for d in ours] == [d["_source"] for d in theirs]
    assert ours[3]["_source"]["entity"] == {"card": 'c-3\u2028\t"\\'}

    stored_nan = (await es.get(index=index, id=nan_id))["_source"]
    assert stored_nan["score"] is None and stored_nan["features"]["third"] == pytest.approx(1 / 3)

    assert await store.bulk_index(batch[:-1], refresh=True) == []
    assert (await es.count(index=index))["count"] == len(docs) + 1
