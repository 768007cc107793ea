"""Feature definitions as data: entities, feature views (aggregation + window) and feature services.

The ``fraud_v1`` feature service is the fraud model's input contract (docs/scenario-fraud.md): its
feature names and their order are ``FRAUD_V1_FEATURES``. Definitions are fixed in code for now; the
apply/versioning machinery (``ApplyDefinitions``) comes later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

from google.protobuf.duration_pb2 import Duration

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument, NotFound

CARD = "card"
CUSTOMER = "customer"
CARD_TRANSACTIONS = "card_transactions"
REQUEST_SOURCE = "request"
"""Pseudo-source of on-demand views: their inputs come with the request."""


class Aggregation(Enum):
    """How a feature is computed; the values are the wire enum (``feature_pb2.Aggregation``)."""

    COUNT = feature_pb2.AGGREGATION_COUNT
    SUM = feature_pb2.AGGREGATION_SUM
    MEAN = feature_pb2.AGGREGATION_MEAN
    DISTINCT_COUNT = feature_pb2.AGGREGATION_DISTINCT_COUNT
    SECONDS_SINCE_LAST = feature_pb2.AGGREGATION_SECONDS_SINCE_LAST
    IS_NEW = feature_pb2.AGGREGATION_IS_NEW
    ON_DEMAND = feature_pb2.AGGREGATION_ON_DEMAND


class OnDemand(Enum):
    """The on-demand formulas the aggregation function knows (see ``aggregation.py``)."""

    CONTEXT_AMOUNT = "the request's amount"
    AMOUNT_TO_CARD_MEAN_7D = "amount / (card_amount_mean_7d + 1)"
    MERCHANT_CATEGORY_RISK = "1.0 when merchant_category is one of " + ", ".join(
        ("gaming", "crypto", "gift_cards", "electronics")
    )


RISKY_MERCHANT_CATEGORIES = frozenset({"gaming", "crypto", "gift_cards", "electronics"})


@dataclass(frozen=True)
class FeatureDef:
    """One feature. ``window`` bounds COUNT/SUM/MEAN/DISTINCT_COUNT (the open interval (t-window, t)) and
    caps SECONDS_SINCE_LAST. ``context_fields`` and ``depends_on`` are what it needs from the request
    and from other features."""

    name: str
    aggregation: Aggregation
    source_field: str = ""
    window: timedelta | None = None
    formula: OnDemand | None = None
    context_fields: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class FeatureViewDef:
    """Features of one entity from one source (or on-demand features, ``entity`` empty)."""

    name: str
    entity: str
    source: str
    features: tuple[FeatureDef, ...]
    description: str = ""


@dataclass(frozen=True)
class FeatureServiceDef:
    """A named, ordered list of feature references ``<view>:<feature>``: a model's inputs."""

    name: str
    features: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class ResolvedFeature:
    """A feature with the view it belongs to."""

    view: FeatureViewDef
    feature: FeatureDef

    @property
    def name(self) -> str:
        return self.feature.name

    @property
    def ref(self) -> str:
        return f"{self.view.name}:{self.feature.name}"


HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
SECONDS_SINCE_PREV_CAP = timedelta(days=30)
LONGEST_WINDOW = WEEK
"""History older than this (relative to an entity's newest event) never affects a value."""


def _entity_stats(prefix: str, *, with_card_extras: bool) -> tuple[FeatureDef, ...]:
    windows: list[FeatureDef] = []
    if with_card_extras:
        windows += [
            FeatureDef(f"{prefix}_txn_count_1h", Aggregation.COUNT, window=HOUR),
            FeatureDef(f"{prefix}_txn_amount_sum_1h", Aggregation.SUM, "amount", HOUR),
        ]
    windows += [
        FeatureDef(f"{prefix}_txn_count_24h", Aggregation.COUNT, window=DAY),
        FeatureDef(f"{prefix}_txn_amount_sum_24h", Aggregation.SUM, "amount", DAY),
        FeatureDef(f"{prefix}_amount_mean_7d", Aggregation.MEAN, "amount", WEEK, description="0 when none"),
        FeatureDef(f"{prefix}_distinct_merchants_24h", Aggregation.DISTINCT_COUNT, "merchant_id", DAY),
    ]
    if with_card_extras:
        windows += [
            FeatureDef(
                f"{prefix}_seconds_since_prev",
                Aggregation.SECONDS_SINCE_LAST,
                window=SECONDS_SINCE_PREV_CAP,
                description="capped at 30 d; 30 d when none",
            ),
            FeatureDef(f"{prefix}_country_is_new", Aggregation.IS_NEW, "country", context_fields=("country",)),
            FeatureDef(f"{prefix}_device_is_new", Aggregation.IS_NEW, "device_id", context_fields=("device_id",)),
        ]
    return tuple(windows)


CARD_TXN_STATS = FeatureViewDef(
    "card_txn_stats",
    CARD,
    CARD_TRANSACTIONS,
    _entity_stats("card", with_card_extras=True),
    "Per-card transaction aggregates",
)
CUSTOMER_TXN_STATS = FeatureViewDef(
    "customer_txn_stats",
    CUSTOMER,
    CARD_TRANSACTIONS,
    _entity_stats("customer", with_card_extras=False),
    "Per-customer transaction aggregates (customer_id attribute of card transactions)",
)
PAYMENT_REQUEST = FeatureViewDef(
    "payment_request",
    "",
    REQUEST_SOURCE,
    (
        FeatureDef(
            "amount",
            Aggregation.ON_DEMAND,
            "amount",
            formula=OnDemand.CONTEXT_AMOUNT,
            context_fields=("amount",),
            description=OnDemand.CONTEXT_AMOUNT.value,
        ),
        FeatureDef(
            "amount_to_card_mean_7d",
            Aggregation.ON_DEMAND,
            "amount",
            formula=OnDemand.AMOUNT_TO_CARD_MEAN_7D,
            context_fields=("amount",),
            depends_on=("card_amount_mean_7d",),
            description=OnDemand.AMOUNT_TO_CARD_MEAN_7D.value,
        ),
        FeatureDef(
            "merchant_category_risk",
            Aggregation.ON_DEMAND,
            "merchant_category",
            formula=OnDemand.MERCHANT_CATEGORY_RISK,
            context_fields=("merchant_category",),
            description=OnDemand.MERCHANT_CATEGORY_RISK.value,
        ),
    ),
    "On-demand features of the payment being scored (from the request context)",
)

FEATURE_VIEWS: tuple[FeatureViewDef, ...] = (CARD_TXN_STATS, CUSTOMER_TXN_STATS, PAYMENT_REQUEST)

FRAUD_V1_FEATURES: tuple[str, ...] = (
    "card_txn_count_1h",
    "card_txn_amount_sum_1h",
    "card_txn_count_24h",
    "card_txn_amount_sum_24h",
    "card_amount_mean_7d",
    "card_distinct_merchants_24h",
    "card_seconds_since_prev",
    "card_country_is_new",
    "card_device_is_new",
    "customer_txn_count_24h",
    "customer_txn_amount_sum_24h",
    "customer_amount_mean_7d",
    "customer_distinct_merchants_24h",
    "amount",
    "amount_to_card_mean_7d",
    "merchant_category_risk",
)
"""The fraud model's input columns, in order (docs/scenario-fraud.md)."""


@dataclass(frozen=True)
class Registry:
    """Lookup over a set of views and feature services."""

    views: tuple[FeatureViewDef, ...]
    services: tuple[FeatureServiceDef, ...]
    _by_name: dict[str, ResolvedFeature] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {f.name: ResolvedFeature(v, f) for v in self.views for f in v.features}
        object.__setattr__(self, "_by_name", by_name)

    def feature(self, name: str) -> ResolvedFeature:
        """The feature called ``name`` (or referenced as ``<view>:<name>``); raises NotFound listing them all."""
        view_name, _, feature_name = name.rpartition(":")
        found = self._by_name.get(feature_name)
        if found is None or (view_name and found.view.name != view_name):
            known = ", ".join(r.ref for r in self._by_name.values())
            raise NotFound(f"unknown feature {name!r}; known features: {known}")
        return found

    def feature_service(self, name: str) -> tuple[ResolvedFeature, ...]:
        """The ordered features of service ``name``; raises NotFound listing the services that exist."""
        for service in self.services:
            if service.name == name:
                return tuple(self.feature(ref) for ref in service.features)
        known = ", ".join(s.name for s in self.services)
        raise NotFound(f"unknown feature service {name!r}; known feature services: {known}")

    def select(self, feature_service: str, features: Sequence[str]) -> tuple[ResolvedFeature, ...]:
        """Resolve a request's feature selection: exactly one of a service name or a feature list.

        Raises InvalidArgument when neither or both are given, NotFound for unknown names.
        """
        if bool(feature_service) == bool(features):
            raise InvalidArgument("set exactly one of feature_service and features")
        if feature_service:
            return self.feature_service(feature_service)
        return tuple(self.feature(name) for name in features)


FRAUD_V1 = FeatureServiceDef(
    "fraud_v1",
    tuple(Registry(FEATURE_VIEWS, ()).feature(name).ref for name in FRAUD_V1_FEATURES),
    "Inputs of the fraud MLP (fraud_mlp), in model input order",
)

REGISTRY = Registry(FEATURE_VIEWS, (FRAUD_V1,))
"""The definitions the service serves."""


def _duration(window: timedelta | None) -> Duration | None:
    if window is None:
        return None
    d = Duration()
    d.FromTimedelta(window)
    return d


def view_to_proto(view: FeatureViewDef) -> feature_pb2.FeatureView:
    """The wire form of ``view`` (version 1: definitions are not versioned yet)."""
    return feature_pb2.FeatureView(
        name=view.name,
        entity=view.entity,
        source=view.source,
        description=view.description,
        version=1,
        features=[
            feature_pb2.Feature(
                name=f.name,
                source_field=f.source_field,
                aggregation=f.aggregation.value,  # type: ignore[arg-type]
                window=_duration(f.window),
                dtype=common_pb2.VALUE_TYPE_DOUBLE,
                description=f.description,
            )
            for f in view.features
        ],
    )
