import datetime

from aimesh.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_COUNT: _ClassVar[Aggregation]
    AGGREGATION_SUM: _ClassVar[Aggregation]
    AGGREGATION_MEAN: _ClassVar[Aggregation]
    AGGREGATION_MIN: _ClassVar[Aggregation]
    AGGREGATION_MAX: _ClassVar[Aggregation]
    AGGREGATION_LAST: _ClassVar[Aggregation]
    AGGREGATION_DISTINCT_COUNT: _ClassVar[Aggregation]
    AGGREGATION_SECONDS_SINCE_LAST: _ClassVar[Aggregation]
    AGGREGATION_IS_NEW: _ClassVar[Aggregation]
    AGGREGATION_ON_DEMAND: _ClassVar[Aggregation]
    AGGREGATION_LAST_N: _ClassVar[Aggregation]

class FeatureStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURE_STATUS_UNSPECIFIED: _ClassVar[FeatureStatus]
    FEATURE_STATUS_PRESENT: _ClassVar[FeatureStatus]
    FEATURE_STATUS_MISSING: _ClassVar[FeatureStatus]
    FEATURE_STATUS_EXPIRED: _ClassVar[FeatureStatus]

class ChangeAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_ACTION_UNSPECIFIED: _ClassVar[ChangeAction]
    CHANGE_ACTION_CREATED: _ClassVar[ChangeAction]
    CHANGE_ACTION_UPDATED: _ClassVar[ChangeAction]
    CHANGE_ACTION_UNCHANGED: _ClassVar[ChangeAction]
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_COUNT: Aggregation
AGGREGATION_SUM: Aggregation
AGGREGATION_MEAN: Aggregation
AGGREGATION_MIN: Aggregation
AGGREGATION_MAX: Aggregation
AGGREGATION_LAST: Aggregation
AGGREGATION_DISTINCT_COUNT: Aggregation
AGGREGATION_SECONDS_SINCE_LAST: Aggregation
AGGREGATION_IS_NEW: Aggregation
AGGREGATION_ON_DEMAND: Aggregation
AGGREGATION_LAST_N: Aggregation
FEATURE_STATUS_UNSPECIFIED: FeatureStatus
FEATURE_STATUS_PRESENT: FeatureStatus
FEATURE_STATUS_MISSING: FeatureStatus
FEATURE_STATUS_EXPIRED: FeatureStatus
CHANGE_ACTION_UNSPECIFIED: ChangeAction
CHANGE_ACTION_CREATED: ChangeAction
CHANGE_ACTION_UPDATED: ChangeAction
CHANGE_ACTION_UNCHANGED: ChangeAction

class Entity(_message.Message):
    __slots__ = ("name", "id_type", "description", "key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    id_type: _common_pb2.ValueType
    description: str
    key: str
    def __init__(self, name: _Optional[str] = ..., id_type: _Optional[_Union[_common_pb2.ValueType, str]] = ..., description: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class Feature(_message.Message):
    __slots__ = ("name", "source_field", "aggregation", "window", "dtype", "description", "expression", "n")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    name: str
    source_field: str
    aggregation: Aggregation
    window: _duration_pb2.Duration
    dtype: _common_pb2.ValueType
    description: str
    expression: str
    n: int
    def __init__(self, name: _Optional[str] = ..., source_field: _Optional[str] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., dtype: _Optional[_Union[_common_pb2.ValueType, str]] = ..., description: _Optional[str] = ..., expression: _Optional[str] = ..., n: _Optional[int] = ...) -> None: ...

class Transformation(_message.Message):
    __slots__ = ("name", "expression")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expression: str
    def __init__(self, name: _Optional[str] = ..., expression: _Optional[str] = ...) -> None: ...

class FeatureView(_message.Message):
    __slots__ = ("name", "entity", "source", "features", "ttl", "version", "description", "tags", "transformations")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    entity: str
    source: str
    features: _containers.RepeatedCompositeFieldContainer[Feature]
    ttl: _duration_pb2.Duration
    version: int
    description: str
    tags: _containers.ScalarMap[str, str]
    transformations: _containers.RepeatedCompositeFieldContainer[Transformation]
    def __init__(self, name: _Optional[str] = ..., entity: _Optional[str] = ..., source: _Optional[str] = ..., features: _Optional[_Iterable[_Union[Feature, _Mapping]]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., version: _Optional[int] = ..., description: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., transformations: _Optional[_Iterable[_Union[Transformation, _Mapping]]] = ...) -> None: ...

class FeatureServiceDefinition(_message.Message):
    __slots__ = ("name", "features", "description", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    features: _containers.RepeatedScalarFieldContainer[str]
    description: str
    version: int
    def __init__(self, name: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class FeatureValue(_message.Message):
    __slots__ = ("value", "event_time", "status")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    value: _common_pb2.Value
    event_time: _timestamp_pb2.Timestamp
    status: FeatureStatus
    def __init__(self, value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[FeatureStatus, str]] = ...) -> None: ...

class GetOnlineFeaturesRequest(_message.Message):
    __slots__ = ("feature_service", "features", "entity_ids", "entity_rows")
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ROWS_FIELD_NUMBER: _ClassVar[int]
    feature_service: str
    features: _containers.RepeatedScalarFieldContainer[str]
    entity_ids: _containers.RepeatedScalarFieldContainer[str]
    entity_rows: _containers.RepeatedCompositeFieldContainer[EntityRow]
    def __init__(self, feature_service: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., entity_ids: _Optional[_Iterable[str]] = ..., entity_rows: _Optional[_Iterable[_Union[EntityRow, _Mapping]]] = ...) -> None: ...

class OnlineFeatureRow(_message.Message):
    __slots__ = ("entity_id", "values", "row_index")
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    ROW_INDEX_FIELD_NUMBER: _ClassVar[int]
    entity_id: str
    values: _containers.RepeatedCompositeFieldContainer[FeatureValue]
    row_index: int
    def __init__(self, entity_id: _Optional[str] = ..., values: _Optional[_Iterable[_Union[FeatureValue, _Mapping]]] = ..., row_index: _Optional[int] = ...) -> None: ...

class GetOnlineFeaturesResponse(_message.Message):
    __slots__ = ("feature_names", "rows")
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[OnlineFeatureRow]
    def __init__(self, feature_names: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[OnlineFeatureRow, _Mapping]]] = ...) -> None: ...

class EntityRow(_message.Message):
    __slots__ = ("entity_id", "timestamp", "entity_ids", "request_context")
    class EntityIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class RequestContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    entity_id: str
    timestamp: _timestamp_pb2.Timestamp
    entity_ids: _containers.ScalarMap[str, str]
    request_context: _containers.MessageMap[str, _common_pb2.Value]
    def __init__(self, entity_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entity_ids: _Optional[_Mapping[str, str]] = ..., request_context: _Optional[_Mapping[str, _common_pb2.Value]] = ...) -> None: ...

class GetHistoricalFeaturesRequest(_message.Message):
    __slots__ = ("feature_service", "features", "entity_rows")
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ROWS_FIELD_NUMBER: _ClassVar[int]
    feature_service: str
    features: _containers.RepeatedScalarFieldContainer[str]
    entity_rows: _containers.RepeatedCompositeFieldContainer[EntityRow]
    def __init__(self, feature_service: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., entity_rows: _Optional[_Iterable[_Union[EntityRow, _Mapping]]] = ...) -> None: ...

class HistoricalFeatureRow(_message.Message):
    __slots__ = ("row_index", "entity_id", "timestamp", "values")
    ROW_INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    row_index: int
    entity_id: str
    timestamp: _timestamp_pb2.Timestamp
    values: _containers.RepeatedCompositeFieldContainer[FeatureValue]
    def __init__(self, row_index: _Optional[int] = ..., entity_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., values: _Optional[_Iterable[_Union[FeatureValue, _Mapping]]] = ...) -> None: ...

class GetHistoricalFeaturesResponse(_message.Message):
    __slots__ = ("feature_names", "rows")
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[HistoricalFeatureRow]
    def __init__(self, feature_names: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[HistoricalFeatureRow, _Mapping]]] = ...) -> None: ...

class ApplyDefinitionsRequest(_message.Message):
    __slots__ = ("entities", "feature_views", "feature_services", "dry_run", "document")
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_VIEWS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    feature_views: _containers.RepeatedCompositeFieldContainer[FeatureView]
    feature_services: _containers.RepeatedCompositeFieldContainer[FeatureServiceDefinition]
    dry_run: bool
    document: str
    def __init__(self, entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., feature_views: _Optional[_Iterable[_Union[FeatureView, _Mapping]]] = ..., feature_services: _Optional[_Iterable[_Union[FeatureServiceDefinition, _Mapping]]] = ..., dry_run: _Optional[bool] = ..., document: _Optional[str] = ...) -> None: ...

class DefinitionChange(_message.Message):
    __slots__ = ("kind", "name", "action", "version", "detail")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    action: ChangeAction
    version: int
    detail: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., action: _Optional[_Union[ChangeAction, str]] = ..., version: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class ApplyDefinitionsResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[DefinitionChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[DefinitionChange, _Mapping]]] = ...) -> None: ...

class ListFeatureViewsRequest(_message.Message):
    __slots__ = ("entity", "page")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    entity: str
    page: _common_pb2.PageRequest
    def __init__(self, entity: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListFeatureViewsResponse(_message.Message):
    __slots__ = ("feature_views", "page")
    FEATURE_VIEWS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    feature_views: _containers.RepeatedCompositeFieldContainer[FeatureView]
    page: _common_pb2.PageResponse
    def __init__(self, feature_views: _Optional[_Iterable[_Union[FeatureView, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
