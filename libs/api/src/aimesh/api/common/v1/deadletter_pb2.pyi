import datetime

from aimesh.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReasonCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_CODE_UNSPECIFIED: _ClassVar[ReasonCode]
    REASON_CODE_MALFORMED_PAYLOAD: _ClassVar[ReasonCode]
    REASON_CODE_MISSING_FIELD: _ClassVar[ReasonCode]
    REASON_CODE_TYPE_MISMATCH: _ClassVar[ReasonCode]
    REASON_CODE_OUT_OF_RANGE: _ClassVar[ReasonCode]
    REASON_CODE_NOT_ALLOWED_VALUE: _ClassVar[ReasonCode]
    REASON_CODE_TOO_LONG: _ClassVar[ReasonCode]
    REASON_CODE_MISSING_ENTITY_KEY: _ClassVar[ReasonCode]
    REASON_CODE_INVALID_EVENT_TIME: _ClassVar[ReasonCode]
    REASON_CODE_UNKNOWN_SOURCE: _ClassVar[ReasonCode]
    REASON_CODE_PAYLOAD_TOO_LARGE: _ClassVar[ReasonCode]
    REASON_CODE_EVENT_ID_MISMATCH: _ClassVar[ReasonCode]
    REASON_CODE_DECODE_ERROR: _ClassVar[ReasonCode]
    REASON_CODE_UNEXPECTED_EVENT_TYPE: _ClassVar[ReasonCode]
    REASON_CODE_INVALID_VALUE: _ClassVar[ReasonCode]
    REASON_CODE_UNDECLARED_FIELD: _ClassVar[ReasonCode]
    REASON_CODE_DOCUMENT_REJECTED: _ClassVar[ReasonCode]
    REASON_CODE_DOCUMENT_TOO_LARGE: _ClassVar[ReasonCode]
    REASON_CODE_TOO_MANY_FIELDS: _ClassVar[ReasonCode]
    REASON_CODE_RETRIES_EXHAUSTED: _ClassVar[ReasonCode]
REASON_CODE_UNSPECIFIED: ReasonCode
REASON_CODE_MALFORMED_PAYLOAD: ReasonCode
REASON_CODE_MISSING_FIELD: ReasonCode
REASON_CODE_TYPE_MISMATCH: ReasonCode
REASON_CODE_OUT_OF_RANGE: ReasonCode
REASON_CODE_NOT_ALLOWED_VALUE: ReasonCode
REASON_CODE_TOO_LONG: ReasonCode
REASON_CODE_MISSING_ENTITY_KEY: ReasonCode
REASON_CODE_INVALID_EVENT_TIME: ReasonCode
REASON_CODE_UNKNOWN_SOURCE: ReasonCode
REASON_CODE_PAYLOAD_TOO_LARGE: ReasonCode
REASON_CODE_EVENT_ID_MISMATCH: ReasonCode
REASON_CODE_DECODE_ERROR: ReasonCode
REASON_CODE_UNEXPECTED_EVENT_TYPE: ReasonCode
REASON_CODE_INVALID_VALUE: ReasonCode
REASON_CODE_UNDECLARED_FIELD: ReasonCode
REASON_CODE_DOCUMENT_REJECTED: ReasonCode
REASON_CODE_DOCUMENT_TOO_LARGE: ReasonCode
REASON_CODE_TOO_MANY_FIELDS: ReasonCode
REASON_CODE_RETRIES_EXHAUSTED: ReasonCode

class DeadLetter(_message.Message):
    __slots__ = ("original_payload", "original_headers", "source", "upstream", "reason_code", "message", "time", "event_id", "field", "masked_fields", "service", "payload_ref", "payload_preview", "payload_size")
    ORIGINAL_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_HEADERS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_REF_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_PREVIEW_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    original_payload: bytes
    original_headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    source: str
    upstream: _common_pb2.KafkaPosition
    reason_code: ReasonCode
    message: str
    time: _timestamp_pb2.Timestamp
    event_id: str
    field: str
    masked_fields: _containers.RepeatedScalarFieldContainer[str]
    service: str
    payload_ref: str
    payload_preview: bytes
    payload_size: int
    def __init__(self, original_payload: _Optional[bytes] = ..., original_headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., source: _Optional[str] = ..., upstream: _Optional[_Union[_common_pb2.KafkaPosition, _Mapping]] = ..., reason_code: _Optional[_Union[ReasonCode, str]] = ..., message: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_id: _Optional[str] = ..., field: _Optional[str] = ..., masked_fields: _Optional[_Iterable[str]] = ..., service: _Optional[str] = ..., payload_ref: _Optional[str] = ..., payload_preview: _Optional[bytes] = ..., payload_size: _Optional[int] = ...) -> None: ...
