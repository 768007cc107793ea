"""Integration test against a running Elasticsearch (the local one is started by `aimesh up --infra-only`).

What it proves: an index template with ECS-shaped fields applies to a new index, ~1000 documents go in
through the bulk helper of the official async client, and term queries and aggregations on the keyword
fields count them exactly. The server's version is printed and recorded (``record_property`` and the
"real infrastructure under test" summary).

Environment: ``AIMESH_ES_URL`` (default ``http://127.0.0.1:9200``). The test fails (never skips) when
the server is not reachable. It creates uniquely named templates and indices and deletes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

pytestmark = [pytest.mark.integration]

UP_HINT = "start the local infrastructure first: `aimesh up --infra-only`"
N_DOCS = 1000
SERVICES = ("ingest", "feature", "training", "inference", "monitor")
LEVELS = ("info", "warning", "error")

ECS_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "@timestamp": {"type": "date"},
        "message": {"type": "text"},
        "service": {"properties": {"name": {"type": "keyword"}}},
        "trace": {"properties": {"id": {"type": "keyword"}}},
        "log": {"properties": {"level": {"type": "keyword"}}},
        "event": {"properties": {"dataset": {"type": "keyword"}}},
    },
}


@pytest.fixture
async def es(endpoints: Any, record_infra_version: Callable[[str, str], None]) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(endpoints.elasticsearch_url, request_timeout=30)
    try:
        # The integ-test-zip has no `GET /` (no rest-root module): the version comes from nodes info.
        nodes = await client.nodes.info(node_id="_local", filter_path="nodes.*.version")
    except TransportConnectionError as exc:
        await client.close()
        pytest.fail(f"Elasticsearch at {endpoints.elasticsearch_url} is not reachable ({exc}); {UP_HINT}")
    version = str(next(iter(nodes["nodes"].values()))["version"])
    print(f"Elasticsearch server version: {version}")
    record_infra_version("Elasticsearch", version)
    try:
        yield client
    finally:
        await client.close()


def _doc(i: int, index: str, start: datetime) -> dict[str, Any]:
    return {
        "_index": index,
        "_id": f"doc-{i}",
        "_source": {
            "@timestamp": (start + timedelta(seconds=i)).isoformat(),
            "service": {"name": SERVICES[i % len(SERVICES)]},
            "trace": {"id": f"trace-{i // 10:04d}"},
            "log": {"level": LEVELS[i % len(LEVELS)]},
            "event": {"dataset": f"aimesh.{SERVICES[i % len(SERVICES)]}"},
            "message": f"scored request {i} for account {i % 7}",
        },
    }


async def test_ecs_template_bulk_index_and_search(
    es: AsyncElasticsearch, unique: str, record_property: Callable[[str, object], None]
) -> None:
    info = await es.nodes.info(node_id="_local", filter_path="nodes.*.version")
    record_property("elasticsearch_version", next(iter(info["nodes"].values()))["version"])
    template, index = f"aimesh-test-{unique}", f"aimesh-test-{unique}-logs"
    await es.indices.put_index_template(
        name=template,
        index_patterns=[f"aimesh-test-{unique}-*"],
        template={"settings": {"number_of_shards": 1, "number_of_replicas": 0}, "mappings": ECS_MAPPINGS},
        priority=500,
    )
    try:
        start = datetime(2025, 1, 1, tzinfo=UTC)
        ok, errors = await async_bulk(es, (_doc(i, index, start) for i in range(N_DOCS)), chunk_size=250)
        assert (ok, errors) == (N_DOCS, [])
        await es.indices.refresh(index=index)

        mapping = await es.indices.get_mapping(index=index)
        props = mapping[index]["mappings"]["properties"]
        assert props["@timestamp"]["type"] == "date"
        assert props["service"]["properties"]["name"]["type"] == "keyword"
        assert props["trace"]["properties"]["id"]["type"] == "keyword"

        assert (await es.count(index=index))["count"] == N_DOCS
        by_service = await es.count(index=index, query={"term": {"service.name": "inference"}})
        assert by_service["count"] == N_DOCS // len(SERVICES)
        by_trace = await es.search(index=index, query={"term": {"trace.id": "trace-0042"}}, size=20)
        assert by_trace["hits"]["total"]["value"] == 10
        assert {h["_id"] for h in by_trace["hits"]["hits"]} == {f"doc-{i}" for i in range(420, 430)}
        errors_in_window = await es.count(
            index=index,
            query={
                "bool": {
                    "filter": [
                        {"term": {"log.level": "error"}},
                        {
                            "range": {
                                "@timestamp": {
                                    "gte": start.isoformat(),
                                    "lt": (start + timedelta(seconds=300)).isoformat(),
                                }
                            }
                        },
                    ]
                }
            },
        )
        assert errors_in_window["count"] == 100
        text = await es.count(index=index, query={"match": {"message": "account 3"}})
        assert text["count"] > 0
        levels = await es.search(index=index, size=0, aggs={"levels": {"terms": {"field": "log.level"}}})
        buckets = {b["key"]: b["doc_count"] for b in levels["aggregations"]["levels"]["buckets"]}
        assert buckets == {"info": 334, "warning": 333, "error": 333}
    finally:
        await es.indices.delete(index=index, ignore_unavailable=True)
        await es.indices.delete_index_template(name=template)
