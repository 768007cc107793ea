from aimesh.api.common.v1 import common_pb2 as _common_pb2
from aimesh.api.common.v1 import signature_pb2 as _signature_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Route(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_UNSPECIFIED: _ClassVar[Route]
    ROUTE_CHAMPION: _ClassVar[Route]
    ROUTE_CANARY: _ClassVar[Route]
    ROUTE_PINNED: _ClassVar[Route]
    ROUTE_FALLBACK: _ClassVar[Route]
    ROUTE_SHADOW: _ClassVar[Route]

class PredictionDelivery(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREDICTION_DELIVERY_UNSPECIFIED: _ClassVar[PredictionDelivery]
    PREDICTION_DELIVERY_PENDING: _ClassVar[PredictionDelivery]
    PREDICTION_DELIVERY_ACKNOWLEDGED: _ClassVar[PredictionDelivery]
    PREDICTION_DELIVERY_SPOOLED: _ClassVar[PredictionDelivery]
    PREDICTION_DELIVERY_FAILED: _ClassVar[PredictionDelivery]
ROUTE_UNSPECIFIED: Route
ROUTE_CHAMPION: Route
ROUTE_CANARY: Route
ROUTE_PINNED: Route
ROUTE_FALLBACK: Route
ROUTE_SHADOW: Route
PREDICTION_DELIVERY_UNSPECIFIED: PredictionDelivery
PREDICTION_DELIVERY_PENDING: PredictionDelivery
PREDICTION_DELIVERY_ACKNOWLEDGED: PredictionDelivery
PREDICTION_DELIVERY_SPOOLED: PredictionDelivery
PREDICTION_DELIVERY_FAILED: PredictionDelivery

class ScoreRequest(_message.Message):
    __slots__ = ("request_id", "model", "alias", "entity_ids", "features", "version", "context")
    class EntityIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    alias: str
    entity_ids: _containers.ScalarMap[str, str]
    features: _containers.ScalarMap[str, float]
    version: int
    context: _containers.MessageMap[str, _common_pb2.Value]
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., alias: _Optional[str] = ..., entity_ids: _Optional[_Mapping[str, str]] = ..., features: _Optional[_Mapping[str, float]] = ..., version: _Optional[int] = ..., context: _Optional[_Mapping[str, _common_pb2.Value]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("request_id", "score", "model_name", "model_version", "route", "feature_freshness_seconds", "missing_features", "event_id", "outputs", "prediction_delivery")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: OutputValues
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[OutputValues, _Mapping]] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FRESHNESS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FEATURES_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    score: float
    model_name: str
    model_version: int
    route: Route
    feature_freshness_seconds: float
    missing_features: _containers.RepeatedScalarFieldContainer[str]
    event_id: str
    outputs: _containers.MessageMap[str, OutputValues]
    prediction_delivery: PredictionDelivery
    def __init__(self, request_id: _Optional[str] = ..., score: _Optional[float] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., route: _Optional[_Union[Route, str]] = ..., feature_freshness_seconds: _Optional[float] = ..., missing_features: _Optional[_Iterable[str]] = ..., event_id: _Optional[str] = ..., outputs: _Optional[_Mapping[str, OutputValues]] = ..., prediction_delivery: _Optional[_Union[PredictionDelivery, str]] = ...) -> None: ...

class OutputValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class GetModelSignatureRequest(_message.Message):
    __slots__ = ("model", "alias", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    alias: str
    version: int
    def __init__(self, model: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetModelSignatureResponse(_message.Message):
    __slots__ = ("model_name", "model_version", "signature")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    signature: _signature_pb2.ModelSignature
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., signature: _Optional[_Union[_signature_pb2.ModelSignature, _Mapping]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("request_id", "model", "alias", "version", "entity_ids", "context_items", "k", "exclude_items")
    class EntityIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_ITEMS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    alias: str
    version: int
    entity_ids: _containers.ScalarMap[str, str]
    context_items: _containers.RepeatedScalarFieldContainer[str]
    k: int
    exclude_items: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., entity_ids: _Optional[_Mapping[str, str]] = ..., context_items: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., exclude_items: _Optional[_Iterable[str]] = ...) -> None: ...

class RecommendedItem(_message.Message):
    __slots__ = ("item_id", "score")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("request_id", "model_name", "model_version", "route", "items", "fallback", "unknown_items", "max_k", "event_id", "prediction_delivery")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MAX_K_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_name: str
    model_version: int
    route: Route
    items: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    fallback: bool
    unknown_items: _containers.RepeatedScalarFieldContainer[str]
    max_k: int
    event_id: str
    prediction_delivery: PredictionDelivery
    def __init__(self, request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., route: _Optional[_Union[Route, str]] = ..., items: _Optional[_Iterable[_Union[RecommendedItem, _Mapping]]] = ..., fallback: _Optional[bool] = ..., unknown_items: _Optional[_Iterable[str]] = ..., max_k: _Optional[int] = ..., event_id: _Optional[str] = ..., prediction_delivery: _Optional[_Union[PredictionDelivery, str]] = ...) -> None: ...

class ScoreBatchRequest(_message.Message):
    __slots__ = ("model", "alias", "version", "rows")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    model: str
    alias: str
    version: int
    rows: _containers.RepeatedCompositeFieldContainer[ScoreBatchRow]
    def __init__(self, model: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[ScoreBatchRow, _Mapping]]] = ...) -> None: ...

class ScoreBatchRow(_message.Message):
    __slots__ = ("request_id", "entity_ids", "features", "context")
    class EntityIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    entity_ids: _containers.ScalarMap[str, str]
    features: _containers.ScalarMap[str, float]
    context: _containers.MessageMap[str, _common_pb2.Value]
    def __init__(self, request_id: _Optional[str] = ..., entity_ids: _Optional[_Mapping[str, str]] = ..., features: _Optional[_Mapping[str, float]] = ..., context: _Optional[_Mapping[str, _common_pb2.Value]] = ...) -> None: ...

class ScoreBatchResult(_message.Message):
    __slots__ = ("code", "message", "response")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    response: ScoreResponse
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., response: _Optional[_Union[ScoreResponse, _Mapping]] = ...) -> None: ...

class ScoreBatchResponse(_message.Message):
    __slots__ = ("model_name", "model_version", "route", "results")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    route: Route
    results: _containers.RepeatedCompositeFieldContainer[ScoreBatchResult]
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., route: _Optional[_Union[Route, str]] = ..., results: _Optional[_Iterable[_Union[ScoreBatchResult, _Mapping]]] = ...) -> None: ...
