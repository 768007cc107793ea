"""Strings as feature values: request-context strings passed through on-demand features, ``last`` of a
string field, online and offline alike; on-demand features over missing values and missing context."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.feature.definitions.expressions import Expression, ExpressionError
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.specs import parse_yaml
from aimesh.feature.history import EMPTY_HISTORY, EntityHistory, HistoryEvent
from aimesh.feature.records import SourceRecord, view_event
from aimesh.feature.service import FeatureStore
from aimesh.feature.serving.aggregation import Status, compute_features

from .conftest import HOUR_US, T0, apply, txn

CATEGORICAL = """
entities: [{name: card}]
feature_views:
  - name: card_profile
    entity: card
    source: card_transactions
    ttl: 30d
    transformations: [{name: bad_pair, expression: "(1, 2)"}]
    features:
      - {name: last_country, aggregation: last, field: country}
      - {name: last_amount, aggregation: last, field: amount}
      - {name: last_pair, aggregation: last, field: bad_pair}
  - name: applicant
    source: request
    features:
      - {name: employment_type, aggregation: on_demand, expression: employment_type}
      - {name: employment_code, aggregation: on_demand, expression: str(employment_code)}
      - {name: home_country, aggregation: on_demand, expression: "last_country if last_country else 'none'"}
      - {name: country_and_type, aggregation: on_demand, expression: "last_country + '/' + employment_type"}
      - {name: amount_doubled, aggregation: on_demand, expression: last_amount * 2}
feature_services:
  - name: profile
    features: ["card_profile:last_country", "card_profile:last_amount", "applicant:*"]
"""
REGISTRY = Registry(parse_yaml(CATEGORICAL))
PROFILE = REGISTRY.feature_service("profile")
NAMES = [f.name for f in PROFILE]
CONTEXT = {"employment_type": "salaried", "employment_code": 42}


def compute(history: EntityHistory, at: int, context: dict[str, object] | None = None) -> dict[str, tuple[object, ...]]:
    cut = history.before(at, REGISTRY.view("card_profile").retention_us)
    vector = compute_features(PROFILE, {"card_profile": cut}, context or CONTEXT, at, REGISTRY)  # type: ignore[arg-type]
    return {
        name: triple
        for name, triple in zip(
            NAMES, zip(vector.values, vector.event_times_us, vector.statuses, strict=True), strict=True
        )
    }


def test_on_demand_features_pass_request_context_strings_through() -> None:
    history = EntityHistory([HistoryEvent("a", T0, {"country": "FR", "amount": 4.0})])
    got = compute(history, T0 + HOUR_US)
    assert got["employment_type"] == ("salaried", None, Status.PRESENT)
    assert got["employment_code"] == ("42", None, Status.PRESENT)  # a number as a category
    assert got["last_country"] == ("FR", T0, Status.PRESENT)
    assert got["home_country"] == ("FR", T0, Status.PRESENT)
    assert got["country_and_type"] == ("FR/salaried", T0, Status.PRESENT)
    assert got["amount_doubled"] == (8.0, T0, Status.PRESENT)


def test_on_demand_features_over_a_missing_value_are_missing_not_an_error() -> None:
    got = compute(EMPTY_HISTORY, T0)
    assert got["last_country"] == (None, None, Status.MISSING)
    assert got["home_country"] == ("none", None, Status.MISSING)  # computed, but no history behind it
    assert got["country_and_type"] == (None, None, Status.MISSING)  # None + str fails: missing, not an error
    assert got["amount_doubled"] == (None, None, Status.MISSING)
    assert got["employment_type"] == ("salaried", None, Status.PRESENT)
    no_amount = EntityHistory([HistoryEvent("a", T0, {"country": "FR"})])  # history, but no amount in it
    assert compute(no_amount, T0 + 1)["amount_doubled"] == (None, None, Status.MISSING)


def test_an_on_demand_expression_failing_on_the_request_itself_is_invalid_argument() -> None:
    history = EntityHistory([HistoryEvent("a", T0, {"country": "FR", "amount": 4.0})])
    with pytest.raises(InvalidArgument, match="on-demand feature applicant:country_and_type"):
        compute(history, T0 + 1, {"employment_type": 7, "employment_code": 1})  # str + int


def test_expressions_give_scalars_only() -> None:
    assert Expression("str(x)").evaluate({"x": 3.5}) == "3.5"
    with pytest.raises(ExpressionError, match="gives a frozenset"):
        Expression("(1, 2)").evaluate({})
    with pytest.raises(ExpressionError, match="gives no value"):
        Expression("x").evaluate({"x": None})
    record = SourceRecord("e", "card_transactions", "c1", T0, {"country": "DE"})
    view = REGISTRY.view("card_profile")
    assert "bad_pair" not in view_event(view, REGISTRY.entities["card"], record).event.values  # left unset


def row(card: str, at_us: int, **context: common_pb2.Value) -> feature_pb2.EntityRow:
    ts = Timestamp()
    ts.FromMicroseconds(at_us)
    return feature_pb2.EntityRow(entity_ids={"card": card}, timestamp=ts, request_context=context)


async def test_strings_are_served_online_and_offline_identically(
    features: FeatureStore, write_lake: Callable[[Sequence[SourceRecord]], Path]
) -> None:
    await features.apply(parse_yaml(CATEGORICAL), False)
    await features.wait_for_backfills()
    txns = [txn("a", T0, country="DE", amount=3.0), txn("b", T0 + HOUR_US, country="FR", amount=5.0)]
    await apply(features, 0, list(enumerate(txns)))
    write_lake(txns)
    context = {
        "employment_type": common_pb2.Value(string_value="self_employed"),
        "employment_code": common_pb2.Value(int64_value=7),
    }
    rows = [row("c1", T0 + 2 * HOUR_US, **context), row("nobody", T0 + 2 * HOUR_US, **context)]
    online = await features.online.get(
        feature_pb2.GetOnlineFeaturesRequest(feature_service="profile", entity_rows=rows)
    )
    offline = sorted(
        [
            r
            async for chunk in features.historical.stream(
                feature_pb2.GetHistoricalFeaturesRequest(feature_service="profile", entity_rows=rows)
            )
            for r in chunk.rows
        ],
        key=lambda r: r.row_index,
    )
    for on, off in zip(online.rows, offline, strict=True):
        assert list(on.values) == list(off.values)
    known = dict(zip(online.feature_names, online.rows[0].values, strict=True))
    assert known["last_country"].value == common_pb2.Value(string_value="FR")
    assert known["employment_type"].value == common_pb2.Value(string_value="self_employed")
    assert known["employment_code"].value == common_pb2.Value(string_value="7")
    assert known["country_and_type"].value == common_pb2.Value(string_value="FR/self_employed")
    assert {v.status for v in known.values()} == {feature_pb2.FEATURE_STATUS_PRESENT}
    unknown = dict(zip(online.feature_names, online.rows[1].values, strict=True))
    assert unknown["country_and_type"].status == feature_pb2.FEATURE_STATUS_MISSING
    assert not unknown["country_and_type"].HasField("value")
    assert unknown["employment_type"].status == feature_pb2.FEATURE_STATUS_PRESENT


async def test_a_missing_context_field_refuses_the_request_naming_it(features: FeatureStore) -> None:
    await features.apply(parse_yaml(CATEGORICAL), False)
    request = feature_pb2.GetOnlineFeaturesRequest(
        features=["applicant:employment_type"],
        entity_rows=[row("c1", T0, employment_code=common_pb2.Value(int64_value=1))],
    )
    with pytest.raises(InvalidArgument, match=r"entity_rows\[0\]: request_context field 'employment_type' missing"):
        await features.online.get(request)
