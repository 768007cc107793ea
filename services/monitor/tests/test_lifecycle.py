"""Index lifecycle (rollover, retention) and the templates' coverage of every document field, by type."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import BadRequestError
from google.protobuf.duration_pb2 import Duration

from aimesh.api.common.v1 import common_pb2, deadletter_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.events import Event
from aimesh.monitor.documents import (
    ECS_VERSION,
    alert_document,
    dead_letter_document,
    drift_document,
    index_templates,
    log_document,
    mapped_type,
    prediction_document,
)
from aimesh.monitor.elastic import ElasticStore
from aimesh.monitor.lifecycle import (
    MS_PER_DAY,
    ROLLED_KINDS,
    Lifecycle,
    backing_index,
    expired_backing_indices,
    ilm_policy,
    is_backing_index,
)
from aimesh.monitor.settings import MonitorSettings

NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}


def test_backing_indices_are_named_like_rollover_names_them() -> None:
    assert backing_index("aim-logs") == "aim-logs-000001"
    assert backing_index("aim-logs", 12) == "aim-logs-000012"
    assert is_backing_index("aim-logs", "aim-logs-000003")
    assert not is_backing_index("aim-logs", "aim-logs")
    assert not is_backing_index("aim-logs", "aim-logs-bulk")
    assert not is_backing_index("aim-logs", "aim-logs-extra-000001")


def test_a_backing_index_expires_when_its_successor_is_older_than_the_retention() -> None:
    now = 100 * MS_PER_DAY
    created = {
        "a-000001": now - 20 * MS_PER_DAY,
        "a-000002": now - 8 * MS_PER_DAY,
        "a-000003": now - 6 * MS_PER_DAY,
        "a-000004": now - 1,
        "a-other": 0,
    }
    # 000001 was rolled over 8 days ago (000002 created then): expired at 7 days; 000002 rolled 6 days ago: kept.
    assert expired_backing_indices("a", created, now, 7) == ["a-000001"]
    assert expired_backing_indices("a", created, now, 30) == []
    assert expired_backing_indices("a", {"a-000001": 0}, now, 1) == [], "the write index is never expired"


def test_ilm_policy_rolls_over_then_deletes_after_the_kinds_retention() -> None:
    lifecycle = Lifecycle(retention_days={"logs": 3}, rollover_max_age="12h", rollover_max_primary_shard_size="1gb")
    assert ilm_policy(lifecycle, "logs") == {
        "phases": {
            "hot": {"min_age": "0ms", "actions": {"rollover": {"max_age": "12h", "max_primary_shard_size": "1gb"}}},
            "delete": {"min_age": "3d", "actions": {"delete": {}}},
        }
    }


def test_retention_per_index_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_RETENTION_DAYS_LOGS", "2")
    monkeypatch.setenv("MONITOR_RETENTION_DAYS_DRIFT", "1")
    lifecycle = MonitorSettings().lifecycle()
    assert lifecycle.retention_days["logs"] == 2
    assert lifecycle.retention_days["drift"] == 1
    assert lifecycle.retention_days["predictions"] == 7
    assert set(lifecycle.retention_days) == {"predictions", "logs", "drift", "alerts", "deadletters"}


def _documents() -> dict[str, dict[str, Any]]:
    """One document of every kind the monitor writes, each field filled in."""
    when = datetime(2026, 1, 2, tzinfo=UTC)
    p = inference_events.Prediction(
        request_id="r",
        event_id="e",
        model_name="m",
        model_version=2,
        score=0.5,
        features={"f1": 1.0},
        entity_ids={"user": "u-1"},
        latency=Duration(nanos=1_000_000),
        alias="champion",
        shadow=True,
        feature_freshness_seconds=3.0,
        missing_features=["f2"],
        items=["i1"],
        context_items=["i2"],
        exclude_items=["i3"],
        k=1,
        tenant="t",
    )
    p.time.FromDatetime(when)
    record = monitor_events.LogRecord(
        service="s", message="m", logger="l", host="h", extra={"a.b": "c"}, tenant="t", trace_id="x", span_id="y"
    )
    record.error_type, record.error_message, record.error_stack_trace = "E", "boom", "tb"
    record.timestamp.FromDatetime(when)
    letter = deadletter_pb2.DeadLetter(
        reason_code=deadletter_pb2.REASON_CODE_DECODE_ERROR,
        message="bad",
        service="ingest",
        source="src",
        field="f",
        event_id="e",
        masked_fields=["m"],
        original_payload=b"{}",
        original_headers=[common_pb2.Header(key="ce_type", value=b"t")],
    )
    letter.upstream.topic, letter.upstream.partition, letter.upstream.offset = "t", 1, 2
    letter.time.FromDatetime(when)
    event = Event("aimesh.ingest.dlq.v1", 0, 1, b"k", letter.SerializeToString(), (), 0)
    report = monitor_pb2.DriftReport(
        model_name="m", model_version=1, feature="score", psi=0.1, sample_count=3, reference_count=4
    )
    report.bins.add(lower=0.0, upper=1.0, reference_fraction=0.5, current_fraction=0.5)
    report.window_start.FromDatetime(when)
    report.window_end.FromDatetime(when)
    alert = monitor_events.Alert(alert_id="a", model_name="m", model_version=1, message="m", value=1.0, threshold=0.5)
    alert.time.FromDatetime(when)
    return {
        "aim-predictions": prediction_document(p, "trace"),
        "aim-logs": log_document(record, "ev"),
        "aim-deadletters": dead_letter_document(letter, event),
        "aim-drift": drift_document(report),
        "aim-alerts": alert_document(alert),
    }


def _leaves(doc: dict[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in doc.items():
        name = f"{path}{key}"
        if isinstance(value, dict):
            yield from _leaves(value, f"{name}.")
        else:
            yield name, value


def test_every_document_carries_the_ecs_version() -> None:
    for index, doc in _documents().items():
        assert doc["ecs"] == {"version": ECS_VERSION}, index


def test_every_document_field_is_mapped_and_every_number_as_a_number() -> None:
    templates = index_templates("aim")
    for index, doc in _documents().items():
        mappings = templates[index]["template"]["mappings"]
        for path, value in _leaves(doc):
            kind = mapped_type(mappings, path)
            if kind is None and mappings.get("dynamic") is False:
                pytest.fail(f"{index}: {path} is neither mapped nor indexed (dynamic: false)")
            assert kind is not None, f"{index}: {path} has no mapping; dynamic mapping would guess its type"
            if isinstance(value, bool):
                assert kind in {"boolean", "object"}, (index, path, kind)
            elif isinstance(value, int | float):
                assert kind in NUMERIC, f"{index}: {path} is a number mapped as {kind}"


def test_string_maps_are_one_flattened_field_so_their_keys_never_add_fields() -> None:
    templates = index_templates("aim")
    assert mapped_type(templates["aim-predictions"]["template"]["mappings"], "entity.anything") == "flattened"
    assert mapped_type(templates["aim-logs"]["template"]["mappings"], "labels.anything") == "flattened"
    assert mapped_type(templates["aim-predictions"]["template"]["mappings"], "features.f9") == "double"
    for body in templates.values():
        assert body["template"]["settings"]["mapping"]["total_fields"]["ignore_dynamic_beyond_limit"] is True


async def test_with_ilm_each_rolled_kind_gets_its_policy_and_its_template_names_it() -> None:
    """The ILM branch, which the local cluster (no ILM) cannot run: client calls recorded by mocks."""
    store = ElasticStore("http://es.invalid:9200", "aim", lifecycle=Lifecycle())
    await store.close()
    es = MagicMock()
    es.ilm.get_status = AsyncMock(return_value={"operation_mode": "RUNNING"})
    es.ilm.put_lifecycle = AsyncMock()
    es.indices.put_index_template = AsyncMock()
    es.indices.put_mapping = AsyncMock()
    es.indices.exists_alias = AsyncMock(return_value=False)
    es.indices.exists = AsyncMock(return_value=False)
    es.indices.create = AsyncMock()
    store._es = es
    await store.ensure_templates()
    assert store.has_ilm
    policies = {c.kwargs["name"]: c.kwargs["policy"] for c in es.ilm.put_lifecycle.await_args_list}
    assert set(policies) == {f"aim-{kind}" for kind in ROLLED_KINDS}
    assert policies["aim-drift"]["phases"]["delete"]["min_age"] == "90d"
    templates = {c.kwargs["name"]: c.kwargs["template"] for c in es.indices.put_index_template.await_args_list}
    assert templates["aim-logs"]["settings"]["index.lifecycle.name"] == "aim-logs"
    assert templates["aim-logs"]["settings"]["index.lifecycle.rollover_alias"] == "aim-logs"
    assert "index.lifecycle.name" not in templates["aim-alerts"]["settings"], "alerts are not rolled over"
    created = {c.kwargs["index"]: c.kwargs["aliases"] for c in es.indices.create.await_args_list}
    assert created == {f"aim-{kind}-000001": {f"aim-{kind}": {"is_write_index": True}} for kind in ROLLED_KINDS}


async def test_an_index_with_the_aliass_name_is_kept_and_no_alias_is_created() -> None:
    store = ElasticStore("http://es.invalid:9200", "aim")
    await store.close()
    es = MagicMock()
    meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "h", 1))
    es.ilm.get_status = AsyncMock(side_effect=BadRequestError("no handler found for uri [/_ilm/status]", meta, {}))
    es.indices.put_index_template = AsyncMock()
    es.indices.put_mapping = AsyncMock()
    es.indices.exists_alias = AsyncMock(return_value=False)
    es.indices.exists = AsyncMock(side_effect=lambda index: index == "aim-logs")
    es.indices.create = AsyncMock()
    store._es = es
    await store.ensure_templates()
    assert not store.has_ilm
    created = {c.kwargs["index"] for c in es.indices.create.await_args_list}
    assert "aim-logs-000001" not in created and "aim-predictions-000001" in created
