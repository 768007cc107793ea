import datetime

from aimesh.api.common.v1 import common_pb2 as _common_pb2
from aimesh.api.common.v1 import signature_pb2 as _signature_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_QUEUED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_SUCCEEDED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]

class LabelKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_KIND_UNSPECIFIED: _ClassVar[LabelKind]
    LABEL_KIND_BINARY: _ClassVar[LabelKind]
    LABEL_KIND_REGRESSION: _ClassVar[LabelKind]
    LABEL_KIND_NEXT_ITEM: _ClassVar[LabelKind]

class SplitKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_KIND_UNSPECIFIED: _ClassVar[SplitKind]
    SPLIT_KIND_TIME: _ClassVar[SplitKind]
    SPLIT_KIND_RANDOM: _ClassVar[SplitKind]
    SPLIT_KIND_LEAVE_LAST_OUT: _ClassVar[SplitKind]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_QUEUED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_SUCCEEDED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CANCELLED: RunStatus
LABEL_KIND_UNSPECIFIED: LabelKind
LABEL_KIND_BINARY: LabelKind
LABEL_KIND_REGRESSION: LabelKind
LABEL_KIND_NEXT_ITEM: LabelKind
SPLIT_KIND_UNSPECIFIED: SplitKind
SPLIT_KIND_TIME: SplitKind
SPLIT_KIND_RANDOM: SplitKind
SPLIT_KIND_LEAVE_LAST_OUT: SplitKind

class RunSpec(_message.Message):
    __slots__ = ("model_name", "feature_service", "train_start", "train_end", "trainer", "params", "register_model", "rows", "label", "split", "triton_model_name")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_START_FIELD_NUMBER: _ClassVar[int]
    TRAIN_END_FIELD_NUMBER: _ClassVar[int]
    TRAINER_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    REGISTER_MODEL_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    feature_service: str
    train_start: _timestamp_pb2.Timestamp
    train_end: _timestamp_pb2.Timestamp
    trainer: str
    params: _containers.ScalarMap[str, str]
    register_model: bool
    rows: TrainingRows
    label: LabelSpec
    split: SplitSpec
    triton_model_name: str
    def __init__(self, model_name: _Optional[str] = ..., feature_service: _Optional[str] = ..., train_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., train_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trainer: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., register_model: _Optional[bool] = ..., rows: _Optional[_Union[TrainingRows, _Mapping]] = ..., label: _Optional[_Union[LabelSpec, _Mapping]] = ..., split: _Optional[_Union[SplitSpec, _Mapping]] = ..., triton_model_name: _Optional[str] = ...) -> None: ...

class TrainingRows(_message.Message):
    __slots__ = ("source", "entity_fields", "context_fields", "key_entity", "filter")
    class EntityFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class FilterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELDS_FIELD_NUMBER: _ClassVar[int]
    KEY_ENTITY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    source: str
    entity_fields: _containers.ScalarMap[str, str]
    context_fields: _containers.RepeatedScalarFieldContainer[str]
    key_entity: str
    filter: _containers.ScalarMap[str, str]
    def __init__(self, source: _Optional[str] = ..., entity_fields: _Optional[_Mapping[str, str]] = ..., context_fields: _Optional[_Iterable[str]] = ..., key_entity: _Optional[str] = ..., filter: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LabelSpec(_message.Message):
    __slots__ = ("source", "join_field", "row_field", "target_field", "kind", "positive_values", "maturity")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_VALUES_FIELD_NUMBER: _ClassVar[int]
    MATURITY_FIELD_NUMBER: _ClassVar[int]
    source: str
    join_field: str
    row_field: str
    target_field: str
    kind: LabelKind
    positive_values: _containers.RepeatedScalarFieldContainer[str]
    maturity: _duration_pb2.Duration
    def __init__(self, source: _Optional[str] = ..., join_field: _Optional[str] = ..., row_field: _Optional[str] = ..., target_field: _Optional[str] = ..., kind: _Optional[_Union[LabelKind, str]] = ..., positive_values: _Optional[_Iterable[str]] = ..., maturity: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SplitSpec(_message.Message):
    __slots__ = ("kind", "train_fraction", "seed")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    kind: SplitKind
    train_fraction: float
    seed: int
    def __init__(self, kind: _Optional[_Union[SplitKind, str]] = ..., train_fraction: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "spec", "status", "metrics", "create_time", "start_time", "end_time", "error_message", "model_version", "trigger")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    spec: RunSpec
    status: RunStatus
    metrics: _containers.ScalarMap[str, float]
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    error_message: str
    model_version: int
    trigger: str
    def __init__(self, run_id: _Optional[str] = ..., spec: _Optional[_Union[RunSpec, _Mapping]] = ..., status: _Optional[_Union[RunStatus, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error_message: _Optional[str] = ..., model_version: _Optional[int] = ..., trigger: _Optional[str] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("model_name", "version", "run_id", "features", "feature_service", "triton_model_name", "triton_model_version", "artifact_uri", "metrics", "create_time", "aliases", "reference_profile", "signature", "input_profiles")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_URI_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PROFILE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    INPUT_PROFILES_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    run_id: str
    features: _containers.RepeatedScalarFieldContainer[str]
    feature_service: str
    triton_model_name: str
    triton_model_version: int
    artifact_uri: str
    metrics: _containers.ScalarMap[str, float]
    create_time: _timestamp_pb2.Timestamp
    aliases: _containers.RepeatedScalarFieldContainer[str]
    reference_profile: ScoreProfile
    signature: _signature_pb2.ModelSignature
    input_profiles: _containers.RepeatedCompositeFieldContainer[FeatureProfile]
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., run_id: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., feature_service: _Optional[str] = ..., triton_model_name: _Optional[str] = ..., triton_model_version: _Optional[int] = ..., artifact_uri: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., aliases: _Optional[_Iterable[str]] = ..., reference_profile: _Optional[_Union[ScoreProfile, _Mapping]] = ..., signature: _Optional[_Union[_signature_pb2.ModelSignature, _Mapping]] = ..., input_profiles: _Optional[_Iterable[_Union[FeatureProfile, _Mapping]]] = ...) -> None: ...

class ScoreProfile(_message.Message):
    __slots__ = ("bin_edges", "fractions", "count")
    BIN_EDGES_FIELD_NUMBER: _ClassVar[int]
    FRACTIONS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    bin_edges: _containers.RepeatedScalarFieldContainer[float]
    fractions: _containers.RepeatedScalarFieldContainer[float]
    count: int
    def __init__(self, bin_edges: _Optional[_Iterable[float]] = ..., fractions: _Optional[_Iterable[float]] = ..., count: _Optional[int] = ...) -> None: ...

class FeatureProfile(_message.Message):
    __slots__ = ("feature", "kind", "bin_edges", "categories", "fractions", "count", "missing_fraction")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BIN_EDGES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    FRACTIONS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FRACTION_FIELD_NUMBER: _ClassVar[int]
    feature: str
    kind: _signature_pb2.InputKind
    bin_edges: _containers.RepeatedScalarFieldContainer[float]
    categories: _containers.RepeatedScalarFieldContainer[str]
    fractions: _containers.RepeatedScalarFieldContainer[float]
    count: int
    missing_fraction: float
    def __init__(self, feature: _Optional[str] = ..., kind: _Optional[_Union[_signature_pb2.InputKind, str]] = ..., bin_edges: _Optional[_Iterable[float]] = ..., categories: _Optional[_Iterable[str]] = ..., fractions: _Optional[_Iterable[float]] = ..., count: _Optional[int] = ..., missing_fraction: _Optional[float] = ...) -> None: ...

class AliasChange(_message.Message):
    __slots__ = ("model_name", "alias", "previous_version", "new_version", "actor", "reason", "time")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEW_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    previous_version: int
    new_version: int
    actor: str
    reason: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., previous_version: _Optional[int] = ..., new_version: _Optional[int] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("spec", "idempotency_key", "trigger")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    spec: RunSpec
    idempotency_key: str
    trigger: str
    def __init__(self, spec: _Optional[_Union[RunSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., trigger: _Optional[str] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("model_name", "status", "page")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    status: RunStatus
    page: _common_pb2.PageRequest
    def __init__(self, model_name: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "page")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    page: _common_pb2.PageResponse
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("model_name", "run_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    run_id: str
    def __init__(self, model_name: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class RegisterModelResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: ModelVersion
    def __init__(self, model_version: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class GetModelVersionRequest(_message.Message):
    __slots__ = ("model_name", "version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetModelVersionResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: ModelVersion
    def __init__(self, model_version: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class ListModelVersionsRequest(_message.Message):
    __slots__ = ("model_name", "page")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    page: _common_pb2.PageRequest
    def __init__(self, model_name: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListModelVersionsResponse(_message.Message):
    __slots__ = ("model_versions", "page")
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    model_versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    page: _common_pb2.PageResponse
    def __init__(self, model_versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("model_name", "alias", "version", "actor", "reason", "expected_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    version: int
    actor: str
    reason: str
    expected_version: int
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SetAliasResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: AliasChange
    def __init__(self, change: _Optional[_Union[AliasChange, _Mapping]] = ...) -> None: ...

class GetAliasRequest(_message.Message):
    __slots__ = ("model_name", "alias")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class GetAliasResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: ModelVersion
    def __init__(self, model_version: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class ListAliasAuditRequest(_message.Message):
    __slots__ = ("model_name", "alias", "page")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    page: _common_pb2.PageRequest
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListAliasAuditResponse(_message.Message):
    __slots__ = ("changes", "page")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[AliasChange]
    page: _common_pb2.PageResponse
    def __init__(self, changes: _Optional[_Iterable[_Union[AliasChange, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class TrafficPolicy(_message.Message):
    __slots__ = ("model_name", "canary_version", "canary_weight", "shadow_version", "shadow_share", "actor", "reason", "time", "revision", "fallback")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    CANARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANARY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_SHARE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    canary_version: int
    canary_weight: float
    shadow_version: int
    shadow_share: float
    actor: str
    reason: str
    time: _timestamp_pb2.Timestamp
    revision: int
    fallback: Fallback
    def __init__(self, model_name: _Optional[str] = ..., canary_version: _Optional[int] = ..., canary_weight: _Optional[float] = ..., shadow_version: _Optional[int] = ..., shadow_share: _Optional[float] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., fallback: _Optional[_Union[Fallback, _Mapping]] = ...) -> None: ...

class Fallback(_message.Message):
    __slots__ = ("constant_score", "rule", "previous_version")
    CONSTANT_SCORE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    constant_score: float
    rule: FallbackRule
    previous_version: PreviousVersionFallback
    def __init__(self, constant_score: _Optional[float] = ..., rule: _Optional[_Union[FallbackRule, _Mapping]] = ..., previous_version: _Optional[_Union[PreviousVersionFallback, _Mapping]] = ...) -> None: ...

class FallbackRule(_message.Message):
    __slots__ = ("conditions", "default_score")
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SCORE_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.RepeatedCompositeFieldContainer[FallbackCondition]
    default_score: float
    def __init__(self, conditions: _Optional[_Iterable[_Union[FallbackCondition, _Mapping]]] = ..., default_score: _Optional[float] = ...) -> None: ...

class FallbackCondition(_message.Message):
    __slots__ = ("field", "op", "number", "text", "score")
    class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OP_UNSPECIFIED: _ClassVar[FallbackCondition.Op]
        OP_LT: _ClassVar[FallbackCondition.Op]
        OP_LE: _ClassVar[FallbackCondition.Op]
        OP_GT: _ClassVar[FallbackCondition.Op]
        OP_GE: _ClassVar[FallbackCondition.Op]
        OP_EQ: _ClassVar[FallbackCondition.Op]
        OP_NE: _ClassVar[FallbackCondition.Op]
    OP_UNSPECIFIED: FallbackCondition.Op
    OP_LT: FallbackCondition.Op
    OP_LE: FallbackCondition.Op
    OP_GT: FallbackCondition.Op
    OP_GE: FallbackCondition.Op
    OP_EQ: FallbackCondition.Op
    OP_NE: FallbackCondition.Op
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    field: str
    op: FallbackCondition.Op
    number: float
    text: str
    score: float
    def __init__(self, field: _Optional[str] = ..., op: _Optional[_Union[FallbackCondition.Op, str]] = ..., number: _Optional[float] = ..., text: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class PreviousVersionFallback(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class SetTrafficPolicyRequest(_message.Message):
    __slots__ = ("policy", "expected_revision")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    policy: TrafficPolicy
    expected_revision: int
    def __init__(self, policy: _Optional[_Union[TrafficPolicy, _Mapping]] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class SetTrafficPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: TrafficPolicy
    def __init__(self, policy: _Optional[_Union[TrafficPolicy, _Mapping]] = ...) -> None: ...

class GetTrafficPolicyRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class GetTrafficPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: TrafficPolicy
    def __init__(self, policy: _Optional[_Union[TrafficPolicy, _Mapping]] = ...) -> None: ...

class ListTrafficPolicyAuditRequest(_message.Message):
    __slots__ = ("model_name", "page")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    page: _common_pb2.PageRequest
    def __init__(self, model_name: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListTrafficPolicyAuditResponse(_message.Message):
    __slots__ = ("policies", "page")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[TrafficPolicy]
    page: _common_pb2.PageResponse
    def __init__(self, policies: _Optional[_Iterable[_Union[TrafficPolicy, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("model_name", "actor", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    actor: str
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PromoteResponse(_message.Message):
    __slots__ = ("champion", "policy")
    CHAMPION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    champion: AliasChange
    policy: TrafficPolicy
    def __init__(self, champion: _Optional[_Union[AliasChange, _Mapping]] = ..., policy: _Optional[_Union[TrafficPolicy, _Mapping]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("model_name", "actor", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    actor: str
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RollbackResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: TrafficPolicy
    def __init__(self, policy: _Optional[_Union[TrafficPolicy, _Mapping]] = ...) -> None: ...
