import datetime

from aimesh.api.common.v1 import signature_pb2 as _signature_pb2
from aimesh.api.training.v1 import training_pb2 as _training_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_EVENT_KIND_UNSPECIFIED: _ClassVar[ModelEventKind]
    MODEL_EVENT_KIND_VERSION_REGISTERED: _ClassVar[ModelEventKind]
    MODEL_EVENT_KIND_ALIAS_CHANGED: _ClassVar[ModelEventKind]
    MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED: _ClassVar[ModelEventKind]
MODEL_EVENT_KIND_UNSPECIFIED: ModelEventKind
MODEL_EVENT_KIND_VERSION_REGISTERED: ModelEventKind
MODEL_EVENT_KIND_ALIAS_CHANGED: ModelEventKind
MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED: ModelEventKind

class RunEvent(_message.Message):
    __slots__ = ("run_id", "model_name", "status", "metrics", "time", "message", "model_version", "trigger")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    model_name: str
    status: _training_pb2.RunStatus
    metrics: _containers.ScalarMap[str, float]
    time: _timestamp_pb2.Timestamp
    message: str
    model_version: int
    trigger: str
    def __init__(self, run_id: _Optional[str] = ..., model_name: _Optional[str] = ..., status: _Optional[_Union[_training_pb2.RunStatus, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., model_version: _Optional[int] = ..., trigger: _Optional[str] = ...) -> None: ...

class ModelEvent(_message.Message):
    __slots__ = ("kind", "model_name", "version", "alias_change", "triton_model_name", "triton_model_version", "features", "feature_service", "time", "reference_profile", "signature", "traffic_policy", "input_profiles")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_CHANGE_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PROFILE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_POLICY_FIELD_NUMBER: _ClassVar[int]
    INPUT_PROFILES_FIELD_NUMBER: _ClassVar[int]
    kind: ModelEventKind
    model_name: str
    version: int
    alias_change: _training_pb2.AliasChange
    triton_model_name: str
    triton_model_version: int
    features: _containers.RepeatedScalarFieldContainer[str]
    feature_service: str
    time: _timestamp_pb2.Timestamp
    reference_profile: _training_pb2.ScoreProfile
    signature: _signature_pb2.ModelSignature
    traffic_policy: _training_pb2.TrafficPolicy
    input_profiles: _containers.RepeatedCompositeFieldContainer[_training_pb2.FeatureProfile]
    def __init__(self, kind: _Optional[_Union[ModelEventKind, str]] = ..., model_name: _Optional[str] = ..., version: _Optional[int] = ..., alias_change: _Optional[_Union[_training_pb2.AliasChange, _Mapping]] = ..., triton_model_name: _Optional[str] = ..., triton_model_version: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ..., feature_service: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reference_profile: _Optional[_Union[_training_pb2.ScoreProfile, _Mapping]] = ..., signature: _Optional[_Union[_signature_pb2.ModelSignature, _Mapping]] = ..., traffic_policy: _Optional[_Union[_training_pb2.TrafficPolicy, _Mapping]] = ..., input_profiles: _Optional[_Iterable[_Union[_training_pb2.FeatureProfile, _Mapping]]] = ...) -> None: ...
