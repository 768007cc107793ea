"""Unit tests of the wire contracts (proto/ and the generated aimesh.api packages).

They pin what other services rely on: the Kafka event payload per topic, the RPCs of every service
with their request/response types, package naming, and that the contracts stay documented.
"""

from __future__ import annotations

import functools
import importlib
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import Message

from aimesh.api.common.v1 import common_pb2, deadletter_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events_pb2
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.ingest.v1 import events_pb2 as ingest_events_pb2
from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.api.monitor.v1 import events_pb2 as monitor_events_pb2
from aimesh.api.training.v1 import events_pb2 as training_events_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
AREAS = ("common", "ingest", "feature", "training", "inference", "monitor")

DLQ_SERVICES = ("ingest", "feature", "training", "inference", "monitor")

# Kafka topic -> payload message (full protobuf name). Every topic of ARCHITECTURE.md is here.
TOPICS: dict[str, str] = {
    "aimesh.ingest.records.v1": "aimesh.api.ingest.v1.CanonicalRecord",
    **{f"aimesh.{service}.dlq.v1": "aimesh.api.common.v1.DeadLetter" for service in DLQ_SERVICES},
    "aimesh.training.runs.v1": "aimesh.api.training.v1.RunEvent",
    "aimesh.registry.models.v1": "aimesh.api.training.v1.ModelEvent",
    "aimesh.inference.predictions.v1": "aimesh.api.inference.v1.Prediction",
    "aimesh.monitor.alerts.v1": "aimesh.api.monitor.v1.Alert",
    "aimesh.monitor.logs.v1": "aimesh.api.monitor.v1.LogRecord",
}

# service -> {rpc: (request, response, server_streaming)}; names relative to the service's package.
SERVICES: dict[str, dict[str, tuple[str, str, bool]]] = {
    "aimesh.api.ingest.v1.IngestService": {
        "Publish": ("PublishRequest", "PublishResponse", False),
        "RegisterSource": ("RegisterSourceRequest", "RegisterSourceResponse", False),
        "GetSource": ("GetSourceRequest", "GetSourceResponse", False),
        "ListSources": ("ListSourcesRequest", "ListSourcesResponse", False),
    },
    "aimesh.api.feature.v1.FeatureService": {
        "GetOnlineFeatures": ("GetOnlineFeaturesRequest", "GetOnlineFeaturesResponse", False),
        "GetHistoricalFeatures": ("GetHistoricalFeaturesRequest", "GetHistoricalFeaturesResponse", True),
        "ApplyDefinitions": ("ApplyDefinitionsRequest", "ApplyDefinitionsResponse", False),
        "ListFeatureViews": ("ListFeatureViewsRequest", "ListFeatureViewsResponse", False),
    },
    "aimesh.api.training.v1.TrainingService": {
        "StartRun": ("StartRunRequest", "StartRunResponse", False),
        "GetRun": ("GetRunRequest", "GetRunResponse", False),
        "ListRuns": ("ListRunsRequest", "ListRunsResponse", False),
        "RegisterModel": ("RegisterModelRequest", "RegisterModelResponse", False),
        "GetModelVersion": ("GetModelVersionRequest", "GetModelVersionResponse", False),
        "ListModelVersions": ("ListModelVersionsRequest", "ListModelVersionsResponse", False),
        "SetAlias": ("SetAliasRequest", "SetAliasResponse", False),
        "GetAlias": ("GetAliasRequest", "GetAliasResponse", False),
        "ListAliasAudit": ("ListAliasAuditRequest", "ListAliasAuditResponse", False),
        "SetTrafficPolicy": ("SetTrafficPolicyRequest", "SetTrafficPolicyResponse", False),
        "GetTrafficPolicy": ("GetTrafficPolicyRequest", "GetTrafficPolicyResponse", False),
        "ListTrafficPolicyAudit": ("ListTrafficPolicyAuditRequest", "ListTrafficPolicyAuditResponse", False),
        "Promote": ("PromoteRequest", "PromoteResponse", False),
        "Rollback": ("RollbackRequest", "RollbackResponse", False),
    },
    "aimesh.api.inference.v1.InferenceService": {
        "Score": ("ScoreRequest", "ScoreResponse", False),
        "GetModelSignature": ("GetModelSignatureRequest", "GetModelSignatureResponse", False),
        "Recommend": ("RecommendRequest", "RecommendResponse", False),
        "ScoreBatch": ("ScoreBatchRequest", "ScoreBatchResponse", False),
    },
    "aimesh.api.monitor.v1.MonitorService": {
        "GetDriftReport": ("GetDriftReportRequest", "GetDriftReportResponse", False),
        "ListAlerts": ("ListAlertsRequest", "ListAlertsResponse", False),
        "GetDrift": ("GetDriftRequest", "GetDriftResponse", False),
        "AcknowledgeAlert": ("AcknowledgeAlertRequest", "AcknowledgeAlertResponse", False),
        "GetServiceLevels": ("GetServiceLevelsRequest", "GetServiceLevelsResponse", False),
    },
}

EVENT_MODULES = {
    "aimesh.api.common.v1": deadletter_pb2,
    "aimesh.api.ingest.v1": ingest_events_pb2,
    "aimesh.api.training.v1": training_events_pb2,
    "aimesh.api.inference.v1": inference_events_pb2,
    "aimesh.api.monitor.v1": monitor_events_pb2,
}


def _proto_paths() -> list[Path]:
    return sorted(p.relative_to(PROTO_ROOT) for p in (PROTO_ROOT / "aimesh" / "api").rglob("*.proto"))


def _module_for(proto: Path) -> Any:
    return importlib.import_module(str(proto.with_suffix("")).replace("/", ".") + "_pb2")


def _event_class(full_name: str) -> type[Message]:
    package, _, name = full_name.rpartition(".")
    cls: type[Message] = getattr(EVENT_MODULES[package], name)
    return cls


def _fill(message: Message, depth: int = 0) -> Message:
    """Set every field of ``message`` (first member of each oneof) to a non-default value."""
    seen_oneofs: set[str] = set()
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
        _set_field(message, field, depth)
    return message


def _scalar(field: FieldDescriptor, depth: int) -> Any:
    if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        return field.enum_type.values[-1].number
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return b"\x00\xffraw" if field.type == FieldDescriptor.TYPE_BYTES else f"{field.name}-é-{depth}"
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return True
    if field.cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return 0.25 + field.number
    if field.cpp_type in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64):
        return 2**40 + field.number
    return field.number + 7


def _set_field(message: Message, field: FieldDescriptor, depth: int) -> None:
    target = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        key = _scalar(key_field, depth)
        if value_field.message_type is not None:
            _fill(target[key], depth + 1)
        else:
            target[key] = _scalar(value_field, depth)
    elif field.message_type is not None:
        if depth > 4:
            return
        if field.is_repeated:
            _fill(target.add(), depth + 1)
        elif field.message_type.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
            target.seconds, target.nanos = 1_700_000_000 + field.number, 123_000_000
        else:
            _fill(target, depth + 1)
    elif field.is_repeated:
        target.append(_scalar(field, depth))
    else:
        setattr(message, field.name, _scalar(field, depth))


def test_every_area_has_a_v1_package_with_matching_proto_package() -> None:
    protos = _proto_paths()
    assert {p.parts[2] for p in protos} == set(AREAS)
    for proto in protos:
        assert proto.parts[:2] == ("aimesh", "api") and proto.parts[3] == "v1", proto
        file: FileDescriptor = _module_for(proto).DESCRIPTOR
        assert file.name == proto.as_posix()
        assert file.package == f"aimesh.api.{proto.parts[2]}.v1", proto
        text = (PROTO_ROOT / proto).read_text()
        assert re.search(r'^syntax = "proto3";$', text, re.M), f"{proto} must be proto3"


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_topic_names_follow_the_convention(topic: str) -> None:
    assert re.fullmatch(r"aimesh\.[a-z]+\.[a-z]+\.v1", topic)


@pytest.mark.parametrize(("topic", "full_name"), sorted(TOPICS.items()))
def test_every_event_exists_and_documents_its_topic(topic: str, full_name: str) -> None:
    cls = _event_class(full_name)
    assert cls.DESCRIPTOR.full_name == full_name
    comment = _leading_comments()[full_name]
    named = re.search(r"Topics?: ([^;]*);", comment)
    assert named is not None and topic in named.group(1), f"{full_name}'s comment must name its topic {topic}"


@pytest.mark.parametrize("full_name", sorted(TOPICS.values()))
def test_event_round_trip_with_every_field_set(full_name: str) -> None:
    cls = _event_class(full_name)
    original = _fill(cls())
    for field in cls.DESCRIPTOR.fields:
        if field.containing_oneof is None and not field.is_repeated and field.message_type is None:
            assert getattr(original, field.name) != field.default_value, f"{field.name} not filled"
    data = original.SerializeToString(deterministic=True)
    parsed = cls.FromString(data)
    assert parsed == original
    assert parsed.SerializeToString(deterministic=True) == data
    assert cls.FromString(b"") == cls(), "an empty payload parses to the default message"


def test_canonical_record_attributes_are_typed_values() -> None:
    record = ingest_events_pb2.CanonicalRecord(
        event_id="e-1",
        source="card_transactions",
        entity_key="card-42",
        schema_version=3,
        upstream=common_pb2.KafkaPosition(topic="bank.tx", partition=2, offset=1234),
    )
    record.event_time.FromMilliseconds(1_700_000_000_123)
    record.attributes["amount"].double_value = 12.5
    record.attributes["count"].int64_value = 3
    record.attributes["country"].string_value = "FR"
    record.attributes["online"].bool_value = True
    record.attributes["missing"].SetInParent()
    parsed = ingest_events_pb2.CanonicalRecord.FromString(record.SerializeToString())
    kinds = {k: v.WhichOneof("kind") for k, v in parsed.attributes.items()}
    assert kinds == {
        "amount": "double_value",
        "count": "int64_value",
        "country": "string_value",
        "online": "bool_value",
        "missing": None,
    }
    assert parsed.event_time.ToMilliseconds() == 1_700_000_000_123
    assert parsed.upstream.offset == 1234


def test_dead_letter_keeps_original_bytes_and_reason() -> None:
    raw = b'{"amount": "not a number"\xff'
    letter = deadletter_pb2.DeadLetter(
        original_payload=raw,
        original_headers=[common_pb2.Header(key="traceparent", value=b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")],
        source="card_transactions",
        reason_code=deadletter_pb2.REASON_CODE_MALFORMED_PAYLOAD,
        message="invalid JSON",
        service="ingest",
    )
    parsed = deadletter_pb2.DeadLetter.FromString(letter.SerializeToString())
    assert parsed.original_payload == raw
    assert parsed.reason_code == deadletter_pb2.REASON_CODE_MALFORMED_PAYLOAD
    assert parsed.original_headers[0].value.endswith(b"-01")


def test_optional_fields_track_presence() -> None:
    request = inference_pb2.ScoreRequest(model="fraud")
    assert not request.HasField("alias") and not request.HasField("version")
    request.version = 0
    assert request.HasField("version"), "version 0 set explicitly must be distinguishable from unset"
    record = ingest_pb2.Record(payload=b"{}")
    assert not record.HasField("event_id")


@pytest.mark.parametrize("service_name", sorted(SERVICES))
def test_service_has_the_expected_rpcs(service_name: str) -> None:
    package, _, name = service_name.rpartition(".")
    area = package.split(".")[2]
    pb2 = importlib.import_module(f"{package}.{area}_pb2")
    service = pb2.DESCRIPTOR.services_by_name[name]
    expected = SERVICES[service_name]
    assert {m.name for m in service.methods} == set(expected)
    for method in service.methods:
        request, response, server_streaming = expected[method.name]
        assert method.input_type.full_name == f"{package}.{request}", method.full_name
        assert method.output_type.full_name == f"{package}.{response}", method.full_name
        assert method.server_streaming is server_streaming, method.full_name
        assert method.client_streaming is False, method.full_name


@pytest.mark.parametrize("service_name", sorted(SERVICES))
def test_grpc_module_exposes_stub_servicer_and_registration(service_name: str) -> None:
    package, _, name = service_name.rpartition(".")
    area = package.split(".")[2]
    grpc_module = importlib.import_module(f"{package}.{area}_pb2_grpc")
    stub_cls = getattr(grpc_module, f"{name}Stub")
    servicer_cls = getattr(grpc_module, f"{name}Servicer")
    register = getattr(grpc_module, f"add_{name}Servicer_to_server")
    channel = grpc.insecure_channel("localhost:1")
    try:
        stub = stub_cls(channel)
        for rpc in SERVICES[service_name]:
            assert callable(getattr(stub, rpc))
            assert callable(getattr(servicer_cls, rpc))
    finally:
        channel.close()
    assert callable(register)


def test_no_message_is_named_like_a_service() -> None:
    for proto in _proto_paths():
        file = _module_for(proto).DESCRIPTOR
        assert not set(file.message_types_by_name) & set(file.services_by_name), proto


@functools.cache
def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """All contracts compiled with source info (comments), straight from proto/."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        rc = protoc.main(
            [
                "protoc",
                f"-I{PROTO_ROOT}",
                f"-I{resources.files('grpc_tools') / '_proto'}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *(str(PROTO_ROOT / p) for p in _proto_paths()),
            ]
        )
        assert rc == 0
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


Locations = dict[tuple[int, ...], str]


def _visit_enum(
    enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], prefix: str, loc: Locations, out: dict[str, str]
) -> None:
    name = f"{prefix}.{enum.name}"
    out[name] = loc.get(path, "")
    for i, value in enumerate(enum.value):
        out[f"{name}.{value.name}"] = loc.get((*path, 2, i), "")


def _visit_message(
    msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str, loc: Locations, out: dict[str, str]
) -> None:
    name = f"{prefix}.{msg.name}"
    out[name] = loc.get(path, "")
    for i, field in enumerate(msg.field):
        out[f"{name}.{field.name}"] = loc.get((*path, 2, i), "")
    for i, nested in enumerate(msg.nested_type):
        if not nested.options.map_entry:
            _visit_message(nested, (*path, 3, i), name, loc, out)
    for i, enum in enumerate(msg.enum_type):
        _visit_enum(enum, (*path, 4, i), name, loc, out)


@functools.cache
def _leading_comments() -> dict[str, str]:
    """Full element name -> leading comment, for every message, field, enum, value, service, rpc."""
    comments: dict[str, str] = {}
    for file in _descriptor_set().file:
        loc = {tuple(x.path): x.leading_comments for x in file.source_code_info.location}
        for i, msg in enumerate(file.message_type):
            _visit_message(msg, (4, i), file.package, loc, comments)
        for i, enum in enumerate(file.enum_type):
            _visit_enum(enum, (5, i), file.package, loc, comments)
        for i, service in enumerate(file.service):
            name = f"{file.package}.{service.name}"
            comments[name] = loc.get((6, i), "")
            for j, method in enumerate(service.method):
                comments[f"{name}.{method.name}"] = loc.get((6, i, 2, j), "")
    return comments


def test_every_element_is_documented() -> None:
    comments = _leading_comments()
    assert len(comments) > 300, "the descriptor walk found suspiciously few elements"
    undocumented = sorted(name for name, text in comments.items() if not text.strip())
    assert not undocumented, f"add a // comment above: {undocumented}"


def test_enums_have_an_unspecified_zero_value_and_prefixed_values() -> None:
    for file in _descriptor_set().file:
        enums = list(file.enum_type) + [e for m in file.message_type for e in m.enum_type]
        for enum in enums:
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
            assert enum.value[0].number == 0 and enum.value[0].name == f"{prefix}UNSPECIFIED", enum.name
            assert all(v.name.startswith(prefix) for v in enum.value), enum.name


def test_value_oneof_is_the_only_way_to_carry_a_scalar() -> None:
    value = common_pb2.Value(int64_value=5)
    value.string_value = "x"
    assert value.WhichOneof("kind") == "string_value", "setting one member must clear the others"
    assert common_pb2.Value().WhichOneof("kind") is None


def test_feature_statuses_and_aggregations() -> None:
    assert {v.name for v in feature_pb2.FeatureStatus.DESCRIPTOR.values} == {
        "FEATURE_STATUS_UNSPECIFIED",
        "FEATURE_STATUS_PRESENT",
        "FEATURE_STATUS_MISSING",
        "FEATURE_STATUS_EXPIRED",
    }
    aggregations = {v.name.removeprefix("AGGREGATION_") for v in feature_pb2.Aggregation.DESCRIPTOR.values}
    assert {"COUNT", "SUM", "MEAN", "MIN", "MAX", "LAST", "DISTINCT_COUNT"} <= aggregations


def test_message_descriptors_resolve_cross_package_types() -> None:
    record: Descriptor = ingest_events_pb2.CanonicalRecord.DESCRIPTOR
    assert record.fields_by_name["attributes"].message_type.fields_by_name["value"].message_type is (
        common_pb2.Value.DESCRIPTOR
    )
    assert record.fields_by_name["event_time"].message_type.full_name == "google.protobuf.Timestamp"
