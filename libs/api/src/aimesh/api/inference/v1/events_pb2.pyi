import datetime

from aimesh.api.inference.v1 import inference_pb2 as _inference_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Prediction(_message.Message):
    __slots__ = ("request_id", "event_id", "model_name", "model_version", "score", "features", "latency", "time", "shadow", "route", "alias", "entity_ids", "feature_freshness_seconds", "missing_features", "tenant", "items", "context_items", "exclude_items", "k")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class EntityIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FRESHNESS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FEATURES_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    event_id: str
    model_name: str
    model_version: int
    score: float
    features: _containers.ScalarMap[str, float]
    latency: _duration_pb2.Duration
    time: _timestamp_pb2.Timestamp
    shadow: bool
    route: _inference_pb2.Route
    alias: str
    entity_ids: _containers.ScalarMap[str, str]
    feature_freshness_seconds: float
    missing_features: _containers.RepeatedScalarFieldContainer[str]
    tenant: str
    items: _containers.RepeatedScalarFieldContainer[str]
    context_items: _containers.RepeatedScalarFieldContainer[str]
    exclude_items: _containers.RepeatedScalarFieldContainer[str]
    k: int
    def __init__(self, request_id: _Optional[str] = ..., event_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., score: _Optional[float] = ..., features: _Optional[_Mapping[str, float]] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., shadow: _Optional[bool] = ..., route: _Optional[_Union[_inference_pb2.Route, str]] = ..., alias: _Optional[str] = ..., entity_ids: _Optional[_Mapping[str, str]] = ..., feature_freshness_seconds: _Optional[float] = ..., missing_features: _Optional[_Iterable[str]] = ..., tenant: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., context_items: _Optional[_Iterable[str]] = ..., exclude_items: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ...) -> None: ...
