from aimesh.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_KIND_UNSPECIFIED: _ClassVar[InputKind]
    INPUT_KIND_NUMERIC: _ClassVar[InputKind]
    INPUT_KIND_CATEGORICAL: _ClassVar[InputKind]
    INPUT_KIND_SEQUENCE: _ClassVar[InputKind]

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_BINARY_CLASSIFICATION: _ClassVar[Task]
    TASK_REGRESSION: _ClassVar[Task]
    TASK_NEXT_ITEM: _ClassVar[Task]
INPUT_KIND_UNSPECIFIED: InputKind
INPUT_KIND_NUMERIC: InputKind
INPUT_KIND_CATEGORICAL: InputKind
INPUT_KIND_SEQUENCE: InputKind
TASK_UNSPECIFIED: Task
TASK_BINARY_CLASSIFICATION: Task
TASK_REGRESSION: Task
TASK_NEXT_ITEM: Task

class SignatureInput(_message.Message):
    __slots__ = ("name", "kind", "vocabulary", "missing_value", "length")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    MISSING_VALUE_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: InputKind
    vocabulary: _containers.RepeatedScalarFieldContainer[str]
    missing_value: float
    length: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[InputKind, str]] = ..., vocabulary: _Optional[_Iterable[str]] = ..., missing_value: _Optional[float] = ..., length: _Optional[int] = ...) -> None: ...

class SignatureOutput(_message.Message):
    __slots__ = ("name", "tensor", "dtype", "shape", "meaning", "indexes_vocabulary_of")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    MEANING_FIELD_NUMBER: _ClassVar[int]
    INDEXES_VOCABULARY_OF_FIELD_NUMBER: _ClassVar[int]
    name: str
    tensor: str
    dtype: _common_pb2.ValueType
    shape: _containers.RepeatedScalarFieldContainer[int]
    meaning: str
    indexes_vocabulary_of: str
    def __init__(self, name: _Optional[str] = ..., tensor: _Optional[str] = ..., dtype: _Optional[_Union[_common_pb2.ValueType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., meaning: _Optional[str] = ..., indexes_vocabulary_of: _Optional[str] = ...) -> None: ...

class ContextField(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: _common_pb2.ValueType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.ValueType, str]] = ...) -> None: ...

class ModelSignature(_message.Message):
    __slots__ = ("inputs", "outputs", "entity_types", "key_entity", "context_fields", "task", "input_tensor", "trainer", "popular_items", "popular_item_shares")
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    KEY_ENTITY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELDS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    INPUT_TENSOR_FIELD_NUMBER: _ClassVar[int]
    TRAINER_FIELD_NUMBER: _ClassVar[int]
    POPULAR_ITEMS_FIELD_NUMBER: _ClassVar[int]
    POPULAR_ITEM_SHARES_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[SignatureInput]
    outputs: _containers.RepeatedCompositeFieldContainer[SignatureOutput]
    entity_types: _containers.RepeatedScalarFieldContainer[str]
    key_entity: str
    context_fields: _containers.RepeatedCompositeFieldContainer[ContextField]
    task: Task
    input_tensor: str
    trainer: str
    popular_items: _containers.RepeatedScalarFieldContainer[str]
    popular_item_shares: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, inputs: _Optional[_Iterable[_Union[SignatureInput, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[SignatureOutput, _Mapping]]] = ..., entity_types: _Optional[_Iterable[str]] = ..., key_entity: _Optional[str] = ..., context_fields: _Optional[_Iterable[_Union[ContextField, _Mapping]]] = ..., task: _Optional[_Union[Task, str]] = ..., input_tensor: _Optional[str] = ..., trainer: _Optional[str] = ..., popular_items: _Optional[_Iterable[str]] = ..., popular_item_shares: _Optional[_Iterable[float]] = ...) -> None: ...
