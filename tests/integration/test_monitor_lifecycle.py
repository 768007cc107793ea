"""Monitor's index lifecycle on the real Elasticsearch: templates, write aliases, rollover, retention.

What it proves: ``ensure_templates`` installs every template and gives each rolled kind a write alias on
``<alias>-000001`` (and, on a cluster with ILM, one policy per kind); a document written to the alias
lands there with ``ecs.version`` and its maps typed as the template says (``entity`` flattened, features
doubles); re-indexing the same id overwrites it; ``enforce_lifecycle`` rolls the alias over when its
conditions hold, the next write goes to the new index, a backing index whose successor is older than the
retention is deleted and the write index never is; alerts older than their retention are deleted. The
local integ-test-zip has no ILM, so there the monitor's own round is what runs (the test says which).
Everything is named by a unique prefix and deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.monitor.documents import ECS_VERSION, alert_document, index_templates, prediction_document
from aimesh.monitor.elastic import ElasticStore
from aimesh.monitor.lifecycle import ROLLED_KINDS, Lifecycle, backing_index
from tests.integration.elastic_indices import drop_monitor_indices

pytestmark = [pytest.mark.integration]


@pytest.fixture
async def es(endpoints: Any, unique: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(endpoints.elasticsearch_url, request_timeout=30)
    try:
        yield client
    finally:
        await drop_monitor_indices(client, f"it-life-{unique}")
        await client.close()


def prediction(event_id: str, score: float) -> inference_events.Prediction:
    p = inference_events.Prediction(
        event_id=event_id,
        request_id=f"r-{event_id}",
        model_name="m",
        model_version=1,
        score=score,
        features={"f1": 2.0},
        entity_ids={f"key{i}": f"v{i}" for i in range(50)},
    )
    p.time.GetCurrentTime()
    return p


async def _write_index_of(es: AsyncElasticsearch, alias: str) -> str:
    aliases = (await es.indices.get_alias(name=alias)).body
    return str(next(name for name, spec in aliases.items() if spec["aliases"][alias].get("is_write_index")))


async def test_templates_aliases_rollover_and_retention(es: AsyncElasticsearch, endpoints: Any, unique: str) -> None:
    prefix = f"it-life-{unique}"
    lifecycle = Lifecycle(
        retention_days={"predictions": 7, "logs": 7, "drift": 7, "alerts": 30, "deadletters": 7},
        rollover_max_age="1d",
    )
    store = ElasticStore(endpoints.elasticsearch_url, prefix, lifecycle=lifecycle)
    try:
        await store.ensure_templates()
        await store.ensure_templates()  # idempotent: a second start changes nothing and does not fail
        print(f"cluster has ILM: {store.has_ilm}")
        for name in index_templates(prefix):
            assert (await es.indices.exists_index_template(name=name)).body, name
        for kind in ROLLED_KINDS:
            alias = store.indices[kind]
            assert await _write_index_of(es, alias) == backing_index(alias), kind
            if store.has_ilm:
                policy = (await es.ilm.get_lifecycle(name=alias)).body[alias]["policy"]
                assert policy["phases"]["delete"]["min_age"] == "7d"

        predictions = store.indices["predictions"]
        first = backing_index(predictions)
        await store.index_one(predictions, "e-1", prediction_document(prediction("e-1", 0.1)))
        await store.index_one(predictions, "e-1", prediction_document(prediction("e-1", 0.9)))
        await store.refresh()
        hits = (await es.search(index=predictions, query={"term": {"request_id": "r-e-1"}}))["hits"]["hits"]
        assert [(h["_index"], h["_source"]["score"]) for h in hits] == [(first, 0.9)], "re-indexing overwrote"
        assert hits[0]["_source"]["ecs"] == {"version": ECS_VERSION}
        by_entity = await es.count(index=predictions, query={"term": {"entity.key7": "v7"}})
        assert by_entity["count"] == 1, "a flattened key is searchable"
        props = (await es.indices.get_mapping(index=first)).body[first]["mappings"]["properties"]
        assert props["entity"]["type"] == "flattened"
        assert props["features"]["properties"]["f1"]["type"] == "double"
        assert props["score"]["type"] == "double"

        if store.has_ilm:
            return  # the cluster rolls over and deletes; what follows is the monitor's own round

        await store.enforce_lifecycle()
        assert await _write_index_of(es, predictions) == first, "a young, small index is not rolled over"

        store.lifecycle = Lifecycle(retention_days=lifecycle.retention_days, rollover_max_age="1ms")
        await store.enforce_lifecycle()
        second = backing_index(predictions, 2)
        assert await _write_index_of(es, predictions) == second
        await store.index_one(predictions, "e-2", prediction_document(prediction("e-2", 0.5)))
        await store.refresh()
        hits = (await es.search(index=predictions, query={"match_all": {}}, sort=["request_id"]))["hits"]["hits"]
        assert [(h["_id"], h["_index"]) for h in hits] == [("e-1", first), ("e-2", second)]

        old_alert = monitor_events.Alert(alert_id="old", model_name="m")
        old_alert.time.FromDatetime(datetime.now(UTC) - timedelta(days=31))
        new_alert = monitor_events.Alert(alert_id="new", model_name="m")
        new_alert.time.GetCurrentTime()
        for alert in (old_alert, new_alert):
            await store.index_one(store.indices["alerts"], alert.alert_id, alert_document(alert))
        await store.refresh()

        # six days on: the first index was rolled over 6 days ago, within the 7 days kept
        store.lifecycle = lifecycle
        await store.enforce_lifecycle(datetime.now(UTC) + timedelta(days=6))
        assert (await es.indices.exists(index=first)).body
        # eight days on: its successor is older than 7 days, so it goes; the write index stays
        await store.enforce_lifecycle(datetime.now(UTC) + timedelta(days=8))
        assert not (await es.indices.exists(index=first)).body
        assert await _write_index_of(es, predictions) == second
        await store.refresh()
        alerts = (await es.search(index=store.indices["alerts"], query={"match_all": {}}))["hits"]["hits"]
        assert [h["_id"] for h in alerts] == ["new"], "the alert raised 31 days ago is past its 30 days"
    finally:
        await store.close()
