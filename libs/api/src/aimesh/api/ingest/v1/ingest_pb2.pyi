import datetime

from aimesh.api.common.v1 import common_pb2 as _common_pb2
from aimesh.api.common.v1 import deadletter_pb2 as _deadletter_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SourceFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_FORMAT_UNSPECIFIED: _ClassVar[SourceFormat]
    SOURCE_FORMAT_JSON: _ClassVar[SourceFormat]
    SOURCE_FORMAT_CSV: _ClassVar[SourceFormat]

class FieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_TYPE_UNSPECIFIED: _ClassVar[FieldType]
    FIELD_TYPE_STRING: _ClassVar[FieldType]
    FIELD_TYPE_INT64: _ClassVar[FieldType]
    FIELD_TYPE_DOUBLE: _ClassVar[FieldType]
    FIELD_TYPE_BOOL: _ClassVar[FieldType]
    FIELD_TYPE_TIMESTAMP: _ClassVar[FieldType]

class EventTimeUnit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TIME_UNIT_UNSPECIFIED: _ClassVar[EventTimeUnit]
    EVENT_TIME_UNIT_ISO8601: _ClassVar[EventTimeUnit]
    EVENT_TIME_UNIT_EPOCH_SECONDS: _ClassVar[EventTimeUnit]
    EVENT_TIME_UNIT_EPOCH_MILLIS: _ClassVar[EventTimeUnit]
    EVENT_TIME_UNIT_EPOCH_MICROS: _ClassVar[EventTimeUnit]

class UndeclaredFields(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNDECLARED_FIELDS_UNSPECIFIED: _ClassVar[UndeclaredFields]
    UNDECLARED_FIELDS_DROP: _ClassVar[UndeclaredFields]
    UNDECLARED_FIELDS_KEEP: _ClassVar[UndeclaredFields]
    UNDECLARED_FIELDS_REJECT: _ClassVar[UndeclaredFields]

class RecordStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_STATUS_UNSPECIFIED: _ClassVar[RecordStatus]
    RECORD_STATUS_ACCEPTED: _ClassVar[RecordStatus]
    RECORD_STATUS_REJECTED: _ClassVar[RecordStatus]
SOURCE_FORMAT_UNSPECIFIED: SourceFormat
SOURCE_FORMAT_JSON: SourceFormat
SOURCE_FORMAT_CSV: SourceFormat
FIELD_TYPE_UNSPECIFIED: FieldType
FIELD_TYPE_STRING: FieldType
FIELD_TYPE_INT64: FieldType
FIELD_TYPE_DOUBLE: FieldType
FIELD_TYPE_BOOL: FieldType
FIELD_TYPE_TIMESTAMP: FieldType
EVENT_TIME_UNIT_UNSPECIFIED: EventTimeUnit
EVENT_TIME_UNIT_ISO8601: EventTimeUnit
EVENT_TIME_UNIT_EPOCH_SECONDS: EventTimeUnit
EVENT_TIME_UNIT_EPOCH_MILLIS: EventTimeUnit
EVENT_TIME_UNIT_EPOCH_MICROS: EventTimeUnit
UNDECLARED_FIELDS_UNSPECIFIED: UndeclaredFields
UNDECLARED_FIELDS_DROP: UndeclaredFields
UNDECLARED_FIELDS_KEEP: UndeclaredFields
UNDECLARED_FIELDS_REJECT: UndeclaredFields
RECORD_STATUS_UNSPECIFIED: RecordStatus
RECORD_STATUS_ACCEPTED: RecordStatus
RECORD_STATUS_REJECTED: RecordStatus

class FieldSpec(_message.Message):
    __slots__ = ("name", "type", "required", "allowed_values", "min", "max", "max_length", "description", "min_exclusive", "pattern")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_VALUES_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MIN_EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: FieldType
    required: bool
    allowed_values: _containers.RepeatedScalarFieldContainer[str]
    min: float
    max: float
    max_length: int
    description: str
    min_exclusive: bool
    pattern: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ..., required: _Optional[bool] = ..., allowed_values: _Optional[_Iterable[str]] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., max_length: _Optional[int] = ..., description: _Optional[str] = ..., min_exclusive: _Optional[bool] = ..., pattern: _Optional[str] = ...) -> None: ...

class SourceDefinition(_message.Message):
    __slots__ = ("name", "topic", "format", "fields", "entity_key", "event_time_field", "event_id_field", "pii_fields", "version", "entity_type", "description", "create_time", "pii_token_fields", "csv_columns", "event_time_unit", "undeclared_fields", "max_future_skew_seconds", "oldest_event_time")
    class PiiTokenFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_FIELD_NUMBER: _ClassVar[int]
    PII_FIELDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PII_TOKEN_FIELDS_FIELD_NUMBER: _ClassVar[int]
    CSV_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_UNIT_FIELD_NUMBER: _ClassVar[int]
    UNDECLARED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    MAX_FUTURE_SKEW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    topic: str
    format: SourceFormat
    fields: _containers.RepeatedCompositeFieldContainer[FieldSpec]
    entity_key: str
    event_time_field: str
    event_id_field: str
    pii_fields: _containers.RepeatedScalarFieldContainer[str]
    version: int
    entity_type: str
    description: str
    create_time: _timestamp_pb2.Timestamp
    pii_token_fields: _containers.ScalarMap[str, str]
    csv_columns: _containers.RepeatedScalarFieldContainer[str]
    event_time_unit: EventTimeUnit
    undeclared_fields: UndeclaredFields
    max_future_skew_seconds: float
    oldest_event_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., topic: _Optional[str] = ..., format: _Optional[_Union[SourceFormat, str]] = ..., fields: _Optional[_Iterable[_Union[FieldSpec, _Mapping]]] = ..., entity_key: _Optional[str] = ..., event_time_field: _Optional[str] = ..., event_id_field: _Optional[str] = ..., pii_fields: _Optional[_Iterable[str]] = ..., version: _Optional[int] = ..., entity_type: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pii_token_fields: _Optional[_Mapping[str, str]] = ..., csv_columns: _Optional[_Iterable[str]] = ..., event_time_unit: _Optional[_Union[EventTimeUnit, str]] = ..., undeclared_fields: _Optional[_Union[UndeclaredFields, str]] = ..., max_future_skew_seconds: _Optional[float] = ..., oldest_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("event_id", "payload", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    payload: bytes
    headers: _containers.ScalarMap[str, str]
    def __init__(self, event_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("source", "records")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    source: str
    records: _containers.RepeatedCompositeFieldContainer[Record]
    def __init__(self, source: _Optional[str] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ...) -> None: ...

class RecordResult(_message.Message):
    __slots__ = ("index", "status", "reason_code", "message", "event_id", "field")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    index: int
    status: RecordStatus
    reason_code: _deadletter_pb2.ReasonCode
    message: str
    event_id: str
    field: str
    def __init__(self, index: _Optional[int] = ..., status: _Optional[_Union[RecordStatus, str]] = ..., reason_code: _Optional[_Union[_deadletter_pb2.ReasonCode, str]] = ..., message: _Optional[str] = ..., event_id: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("results", "accepted_count", "rejected_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecordResult]
    accepted_count: int
    rejected_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[RecordResult, _Mapping]]] = ..., accepted_count: _Optional[int] = ..., rejected_count: _Optional[int] = ...) -> None: ...

class RegisterSourceRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: SourceDefinition
    def __init__(self, source: _Optional[_Union[SourceDefinition, _Mapping]] = ...) -> None: ...

class RegisterSourceResponse(_message.Message):
    __slots__ = ("source", "changed")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    source: SourceDefinition
    changed: bool
    def __init__(self, source: _Optional[_Union[SourceDefinition, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class GetSourceRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetSourceResponse(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: SourceDefinition
    def __init__(self, source: _Optional[_Union[SourceDefinition, _Mapping]] = ...) -> None: ...

class ListSourcesRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListSourcesResponse(_message.Message):
    __slots__ = ("sources", "page")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[SourceDefinition]
    page: _common_pb2.PageResponse
    def __init__(self, sources: _Optional[_Iterable[_Union[SourceDefinition, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
