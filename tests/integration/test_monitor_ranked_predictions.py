"""Recommend's Prediction events in the real Elasticsearch: searchable by model version and by item.

What it proves: ``ElasticStore.ensure_templates`` adds the item-list fields (keywords) and ``k`` to a
predictions index that existed before them (created from the template without those fields, as an older
monitor left it), and to new ones through the template; a ranked Prediction indexed through
``index_request`` is found by ``model.version`` + ``items`` term queries, by ``k``, and by ``route``, while a
Score Prediction of the same model carries none of those fields. Indices and templates are named by a
unique prefix and deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.events import Event, cloudevent_headers
from aimesh.monitor.documents import index_names, index_templates
from aimesh.monitor.elastic import ElasticStore
from aimesh.monitor.indexing import index_request
from tests.integration.elastic_indices import drop_monitor_indices

pytestmark = [pytest.mark.integration]

NEW_FIELDS = ("items", "context_items", "exclude_items", "k")


@pytest.fixture
async def es(endpoints: Any, unique: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(endpoints.elasticsearch_url, request_timeout=30)
    try:
        yield client
    finally:
        await drop_monitor_indices(client, f"it-ranked-{unique}")
        await client.close()


def event_of(prediction: inference_events.Prediction) -> Event:
    headers = cloudevent_headers(event_type=prediction.DESCRIPTOR.full_name, source="t", event_id=prediction.event_id)
    return Event("predictions", 0, 0, b"m-1", prediction.SerializeToString(), tuple(headers), 0)


def ranked(event_id: str, version: int, items: list[str], *, route: int = inference_pb2.ROUTE_CHAMPION) -> Any:
    p = inference_events.Prediction(
        event_id=event_id,
        request_id=f"r-{event_id}",
        model_name="next",
        model_version=version,
        items=items,
        context_items=["c-1"],
        exclude_items=["x-1", "x-2"],
        k=len(items),
        score=0.5,
        route=route,  # type: ignore[arg-type]
        entity_ids={"member": "m-1"},
    )
    p.time.FromDatetime(datetime.now(UTC))
    return p


async def test_ranked_predictions_are_searchable_by_model_version_and_item(
    es: AsyncElasticsearch, endpoints: Any, unique: str
) -> None:
    prefix = f"it-ranked-{unique}"
    index = index_names(prefix)["predictions"]
    old = index_templates(prefix)[index]["template"]
    old_properties = {k: v for k, v in old["mappings"]["properties"].items() if k not in NEW_FIELDS}
    await es.indices.create(
        index=index, settings=old["settings"], mappings={**old["mappings"], "properties": old_properties}
    )
    store = ElasticStore(endpoints.elasticsearch_url, prefix)
    try:
        await store.ensure_templates()
        mapping = (await es.indices.get_mapping(index=index))[index]["mappings"]["properties"]
        assert {name: mapping[name]["type"] for name in NEW_FIELDS} == {
            "items": "keyword",
            "context_items": "keyword",
            "exclude_items": "keyword",
            "k": "integer",
        }, "the existing index gained the new fields, typed"
        score = inference_events.Prediction(event_id="s-1", model_name="next", model_version=2, score=0.9)
        score.time.FromDatetime(datetime.now(UTC))
        events = [
            ranked("p-1", 1, ["i-3", "i-1"]),
            ranked("p-2", 2, ["i-3", "i-7", "i-8"]),
            ranked("p-3", 2, ["i-5"], route=inference_pb2.ROUTE_FALLBACK),
            score,
        ]
        assert await store.bulk_index([index_request(event_of(e), prefix) for e in events], refresh=True) == []

        async def ids(*filters: dict[str, Any]) -> set[str]:
            found = await es.search(index=index, query={"bool": {"filter": list(filters)}}, size=10)
            return {hit["_id"] for hit in found["hits"]["hits"]}

        assert await ids({"term": {"model.version": 2}}, {"term": {"items": "i-3"}}) == {"p-2"}
        assert await ids({"term": {"items": "i-3"}}) == {"p-1", "p-2"}
        assert await ids({"term": {"k": 3}}) == {"p-2"}
        assert await ids({"term": {"exclude_items": "x-2"}}, {"term": {"route": "ROUTE_FALLBACK"}}) == {"p-3"}
        assert await ids({"term": {"model.version": 2}}, {"bool": {"must_not": {"exists": {"field": "k"}}}}) == {"s-1"}
    finally:
        await store.close()

    fresh = f"{index}-2"
    await es.index(index=fresh, id="n-1", document={"items": ["i-1"], "k": 1}, refresh=True)
    mapping = (await es.indices.get_mapping(index=fresh))[fresh]["mappings"]["properties"]
    assert (mapping["items"]["type"], mapping["k"]["type"]) == ("keyword", "integer"), "new indices by the template"
