"""Routing resolution over the model catalog: pin > alias > default alias; clear errors naming what exists."""

from __future__ import annotations

import pytest

from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import NotFound, Unavailable
from aimesh.core.events import PoisonEvent
from aimesh.core.model_catalog import ModelCatalog
from aimesh.inference.routing import resolve


def registered(version: int, model: str = "fraud") -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=model,
        version=version,
        triton_model_name=f"{model}_tr",
        triton_model_version=version,
        features=["v:a", "v:b"],
        feature_service="fraud_v1",
    )


def alias(name: str, version: int, model: str = "fraud") -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name=model,
        version=version,
        alias_change=training_pb2.AliasChange(model_name=model, alias=name, new_version=version),
    )


@pytest.fixture
def catalog() -> ModelCatalog:
    c = ModelCatalog()
    for event in (registered(1), registered(2), alias("champion", 1), alias("champion", 2), alias("champion", 2)):
        c.apply(event)
    return c


def test_alias_routes_to_its_latest_version(catalog: ModelCatalog) -> None:
    decision = resolve(catalog, "fraud", alias="champion", version=None)
    assert decision.target.version == 2
    assert decision.target.triton_model_name == "fraud_tr"
    assert decision.target.features == ("v:a", "v:b")
    assert decision.route == inference_pb2.ROUTE_CHAMPION
    assert decision.alias == "champion"


def test_pinned_version_wins_over_alias(catalog: ModelCatalog) -> None:
    decision = resolve(catalog, "fraud", alias="champion", version=1)
    assert decision.target.version == 1
    assert decision.route == inference_pb2.ROUTE_PINNED


def test_unknown_alias_names_existing_aliases(catalog: ModelCatalog) -> None:
    with pytest.raises(NotFound, match=r"no alias 'canary'; aliases: champion -> 2"):
        resolve(catalog, "fraud", alias="canary", version=None)


def test_unknown_model_and_version_name_what_exists(catalog: ModelCatalog) -> None:
    with pytest.raises(NotFound, match="registered models: fraud"):
        resolve(catalog, "churn", alias="champion", version=None)
    with pytest.raises(NotFound, match="registered versions: 1, 2"):
        resolve(catalog, "fraud", alias=None, version=7)


def test_empty_catalog_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="no model is registered yet"):
        resolve(ModelCatalog(), "fraud", alias="champion", version=None)


def test_alias_to_unregistered_version_is_unavailable(catalog: ModelCatalog) -> None:
    catalog.apply(alias("champion", 9))
    with pytest.raises(Unavailable, match="version 9, which is not registered yet"):
        resolve(catalog, "fraud", alias="champion", version=None)


def test_alias_removed_with_version_zero(catalog: ModelCatalog) -> None:
    catalog.apply(alias("champion", 0))
    with pytest.raises(NotFound, match="aliases: none"):
        resolve(catalog, "fraud", alias="champion", version=None)


def test_event_without_model_name_is_poison() -> None:
    with pytest.raises(PoisonEvent):
        ModelCatalog().apply(events_pb2.ModelEvent(kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED, version=1))


def test_alias_event_never_overwrites_a_registration(catalog: ModelCatalog) -> None:
    bare = alias("champion", 2)
    bare.triton_model_name = "other"
    catalog.apply(bare)
    decision = resolve(catalog, "fraud", alias="champion", version=None)
    assert decision.target.triton_model_name == "fraud_tr"
    assert decision.target.features == ("v:a", "v:b")
