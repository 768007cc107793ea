import datetime

from aimesh.api.common.v1 import common_pb2 as _common_pb2
from aimesh.api.common.v1 import signature_pb2 as _signature_pb2
from aimesh.api.monitor.v1 import events_pb2 as _events_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DriftBin(_message.Message):
    __slots__ = ("lower", "upper", "reference_fraction", "current_fraction", "category")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    reference_fraction: float
    current_fraction: float
    category: str
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ..., reference_fraction: _Optional[float] = ..., current_fraction: _Optional[float] = ..., category: _Optional[str] = ...) -> None: ...

class DriftReport(_message.Message):
    __slots__ = ("model_name", "model_version", "feature", "psi", "bins", "window_start", "window_end", "sample_count", "reference_count", "js_distance", "wasserstein", "drifted", "thresholds", "missing_count", "kind")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    BINS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    JS_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    WASSERSTEIN_FIELD_NUMBER: _ClassVar[int]
    DRIFTED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_COUNT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    feature: str
    psi: float
    bins: _containers.RepeatedCompositeFieldContainer[DriftBin]
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    sample_count: int
    reference_count: int
    js_distance: float
    wasserstein: float
    drifted: bool
    thresholds: DriftThresholds
    missing_count: int
    kind: _signature_pb2.InputKind
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., feature: _Optional[str] = ..., psi: _Optional[float] = ..., bins: _Optional[_Iterable[_Union[DriftBin, _Mapping]]] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sample_count: _Optional[int] = ..., reference_count: _Optional[int] = ..., js_distance: _Optional[float] = ..., wasserstein: _Optional[float] = ..., drifted: _Optional[bool] = ..., thresholds: _Optional[_Union[DriftThresholds, _Mapping]] = ..., missing_count: _Optional[int] = ..., kind: _Optional[_Union[_signature_pb2.InputKind, str]] = ...) -> None: ...

class DriftThresholds(_message.Message):
    __slots__ = ("psi", "js_distance", "wasserstein_stddevs")
    PSI_FIELD_NUMBER: _ClassVar[int]
    JS_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    WASSERSTEIN_STDDEVS_FIELD_NUMBER: _ClassVar[int]
    psi: float
    js_distance: float
    wasserstein_stddevs: float
    def __init__(self, psi: _Optional[float] = ..., js_distance: _Optional[float] = ..., wasserstein_stddevs: _Optional[float] = ...) -> None: ...

class GetDriftRequest(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ...) -> None: ...

class GetDriftResponse(_message.Message):
    __slots__ = ("reports", "drifted_features")
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    DRIFTED_FEATURES_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[DriftReport]
    drifted_features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reports: _Optional[_Iterable[_Union[DriftReport, _Mapping]]] = ..., drifted_features: _Optional[_Iterable[str]] = ...) -> None: ...

class AcknowledgeAlertRequest(_message.Message):
    __slots__ = ("alert_id", "actor")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    actor: str
    def __init__(self, alert_id: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class AcknowledgeAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: _events_pb2.Alert
    def __init__(self, alert: _Optional[_Union[_events_pb2.Alert, _Mapping]] = ...) -> None: ...

class GetServiceLevelsRequest(_message.Message):
    __slots__ = ("model_name", "window")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    window: _duration_pb2.Duration
    def __init__(self, model_name: _Optional[str] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ServiceLevels(_message.Message):
    __slots__ = ("model_name", "window_start", "window_end", "requests", "latency_p50_ms", "latency_p99_ms", "error_rate", "fallback_rate", "feature_freshness_p50_seconds")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_RATE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FRESHNESS_P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    requests: int
    latency_p50_ms: float
    latency_p99_ms: float
    error_rate: float
    fallback_rate: float
    feature_freshness_p50_seconds: float
    def __init__(self, model_name: _Optional[str] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requests: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., error_rate: _Optional[float] = ..., fallback_rate: _Optional[float] = ..., feature_freshness_p50_seconds: _Optional[float] = ...) -> None: ...

class GetServiceLevelsResponse(_message.Message):
    __slots__ = ("levels",)
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    levels: ServiceLevels
    def __init__(self, levels: _Optional[_Union[ServiceLevels, _Mapping]] = ...) -> None: ...

class GetDriftReportRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "feature", "window", "window_end")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    feature: str
    window: _duration_pb2.Duration
    window_end: _timestamp_pb2.Timestamp
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., feature: _Optional[str] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetDriftReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: DriftReport
    def __init__(self, report: _Optional[_Union[DriftReport, _Mapping]] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("model_name", "kind", "min_severity", "since", "page", "state", "feature")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    kind: _events_pb2.AlertKind
    min_severity: _events_pb2.Severity
    since: _timestamp_pb2.Timestamp
    page: _common_pb2.PageRequest
    state: _events_pb2.AlertState
    feature: str
    def __init__(self, model_name: _Optional[str] = ..., kind: _Optional[_Union[_events_pb2.AlertKind, str]] = ..., min_severity: _Optional[_Union[_events_pb2.Severity, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., state: _Optional[_Union[_events_pb2.AlertState, str]] = ..., feature: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "page")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[_events_pb2.Alert]
    page: _common_pb2.PageResponse
    def __init__(self, alerts: _Optional[_Iterable[_Union[_events_pb2.Alert, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
