"""Definitions: the YAML format, validation paths, the versioned registry (apply, diff, breaking changes),
ApplyDefinitions and ListFeatureViews."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import AimeshError, FailedPrecondition, InvalidArgument, NotFound
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.specs import FeatureRepo, FeatureSpec, load_file, parse_yaml, to_yaml
from aimesh.feature.definitions.store import Action
from aimesh.feature.service import FeatureStore
from aimesh.feature.settings import FeatureSettings

from .conftest import FRAUD_V1_FEATURES, FRAUD_V1_FILE

FORMAT_EXAMPLE = """
entities:
  - name: card
    key: entity_key
  - name: customer
    key: customer_id
feature_views:
  - name: card_stats
    entity: card
    source: card_transactions
    ttl: 30d
    features:
      - {name: txn_count_1h, aggregation: count, window: 1h}
      - {name: amount_sum_24h, aggregation: sum, field: amount, window: 24h}
      - {name: amount_mean_7d, aggregation: mean, field: amount, window: 7d}
      - {name: amount_min_7d, aggregation: min, field: amount, window: 7d}
      - {name: amount_max_7d, aggregation: max, field: amount, window: 7d}
      - {name: last_country, aggregation: last, field: country}
      - {name: distinct_merchants_24h, aggregation: distinct_count, field: merchant_id, window: 24h}
      - {name: amount_log_sum_24h, aggregation: sum, field: amount_log, window: 24h}
    transformations:
      - {name: amount_log, expression: log1p(amount)}
feature_services:
  - name: bench_50
    features: ["card_stats:txn_count_1h", "card_stats:*"]
"""


def test_the_agreed_format_example_parses_and_round_trips() -> None:
    repo = parse_yaml(FORMAT_EXAMPLE)
    view = repo.feature_views[0]
    assert view.ttl is not None and view.ttl.days == 30
    assert view.retention.days == 30
    assert view.stored_fields == ("amount", "amount_log", "country", "merchant_id")
    assert parse_yaml(to_yaml(repo)) == repo
    features = Registry(repo).feature_service("bench_50")
    assert [f.name for f in features][:2] == ["txn_count_1h", "txn_count_1h"]
    assert Registry.column_names(features)[0] == "card_stats:txn_count_1h"  # duplicates: references


def test_the_test_definitions_define_fraud_v1_in_column_order() -> None:
    registry = Registry(load_file(FRAUD_V1_FILE))
    assert [f.name for f in registry.feature_service("fraud_v1")] == list(FRAUD_V1_FEATURES)
    assert registry.feature("payment_request:amount").view.name == "payment_request"
    with pytest.raises(NotFound, match="view 'customer_txn_stats' has: customer_txn_count_24h"):
        registry.feature("customer_txn_stats:card_txn_count_1h")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "feature_views: [{name: v, entity: card, source: s, features: [{name: f, aggregation: count, "
            "window: 3w}]}]",
            "feature_views[0].features[0].window: invalid duration '3w'",
        ),
        (
            "feature_views: [{name: v, entity: card, source: s, features: [{name: f, aggregation: sum}]}]",
            "feature_views[0].features[0]: aggregation sum needs a field",
        ),
        (
            "feature_views: [{name: v, entity: card, source: s, features: [{name: f, aggregation: median}]}]",
            "feature_views[0].features[0].aggregation: Input should be 'count'",
        ),
        (
            "feature_views: [{name: v, entity: card, source: s, features: [{name: f, aggregation: last, field: x, "
            "window: 1h}]}]",
            "feature_views[0].features[0]: aggregation last takes no window",
        ),
        (
            "feature_views: [{name: v, entity: card, source: s, transformations: [{name: t, expression: "
            "'__import__(1)'}], features: [{name: f, aggregation: count}]}]",
            "feature_views[0].transformations[0]: invalid expression",
        ),
        ("feature_services: [{name: s, features: [nocolon]}]", "feature_services[0]: features[0]: 'nocolon'"),
        ("entities: [{name: a}, {name: a}]", "<document>: entities: duplicate names a"),
    ],
)
def test_invalid_definitions_name_the_path(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_yaml(text)
    assert message in err.value.message


async def test_apply_reports_created_unchanged_updated_and_versions(features: FeatureStore) -> None:
    repo = parse_yaml(FORMAT_EXAMPLE)
    first = await features.apply(repo, False)
    assert [(c.kind, c.name, c.action, c.version) for c in first.changes] == [
        ("entity", "card", Action.UPDATED, 2),  # the test definitions describe it; this one does not
        ("entity", "customer", Action.UPDATED, 2),
        ("feature_view", "card_stats", Action.CREATED, 1),
        ("feature_service", "bench_50", Action.CREATED, 1),
    ]
    assert first.changes[0].detail == "description"
    again = await features.apply(repo, False)
    assert {c.action for c in again.changes} == {Action.UNCHANGED}

    grown = parse_yaml(FORMAT_EXAMPLE.replace("ttl: 30d", "ttl: 40d"))
    dry = await features.apply(grown, True)
    assert dry.changes[2].action is Action.UPDATED and dry.changes[2].version == 2
    assert dry.changes[2].detail == "ttl"
    assert (await features.definitions.latest()).versions[("feature_view", "card_stats")] == 1  # dry: nothing stored
    await features.apply(grown, False)
    await features.wait_for_backfills()
    latest = await features.definitions.latest()
    assert latest.versions[("feature_view", "card_stats")] == 2
    assert latest.view("card_stats").ttl is not None and latest.view("card_stats").ttl.days == 40
    assert features.registry.current.versions[("feature_view", "card_stats")] == 2


async def test_breaking_changes_are_refused_and_nothing_is_stored(features: FeatureStore) -> None:
    await features.apply(parse_yaml(FORMAT_EXAMPLE), False)
    changed_window = parse_yaml(
        FORMAT_EXAMPLE.replace(
            "txn_count_1h, aggregation: count, window: 1h", "txn_count_1h, aggregation: count, window: 2h"
        )
    )
    with pytest.raises(
        FailedPrecondition, match=r"feature txn_count_1h changes its computation \(count window=1h -> count window=2h"
    ):
        await features.apply(changed_window, False)
    removed = parse_yaml(
        FORMAT_EXAMPLE.replace("      - {name: amount_max_7d, aggregation: max, field: amount, window: 7d}\n", "")
    )
    with pytest.raises(
        FailedPrecondition, match="feature amount_max_7d removed but referenced by feature service bench_50"
    ):
        await features.apply(removed, True)
    fraud = load_file(FRAUD_V1_FILE)
    without_mean = fraud.model_copy(
        update={
            "feature_views": [
                v.model_copy(update={"features": [f for f in v.features if f.name != "card_amount_mean_7d"]})
                if v.name == "card_txn_stats"
                else v
                for v in fraud.feature_views
            ]
        }
    )
    with pytest.raises(FailedPrecondition, match="on-demand feature payment_request:amount_to_card_mean_7d"):
        await features.apply(without_mean, False)
    assert (await features.definitions.latest()).versions[("feature_view", "card_stats")] == 1


async def test_unknown_references_are_invalid_arguments_naming_the_path(features: FeatureStore) -> None:
    bad = parse_yaml("feature_services: [{name: s, features: ['card_txn_stats:nope', 'ghost:*']}]")
    with pytest.raises(InvalidArgument) as err:
        await features.apply(bad, True)
    assert "feature_services[0].features[0]: view 'card_txn_stats' has no feature 'nope'" in err.value.message
    assert "feature_services[0].features[1]: unknown feature view 'ghost'" in err.value.message


async def test_apply_definitions_rpc_with_a_document_and_with_typed_messages(features: FeatureStore) -> None:
    api = features.api()
    response = await api.ApplyDefinitions(
        feature_pb2.ApplyDefinitionsRequest(document=FORMAT_EXAMPLE, dry_run=True),
        None,  # type: ignore[arg-type]
    )
    assert [(c.name, c.action) for c in response.changes][2:] == [
        ("card_stats", feature_pb2.CHANGE_ACTION_CREATED),
        ("bench_50", feature_pb2.CHANGE_ACTION_CREATED),
    ]
    typed = feature_pb2.ApplyDefinitionsRequest(
        feature_views=[
            feature_pb2.FeatureView(
                name="v",
                entity="card",
                source="card_transactions",
                features=[feature_pb2.Feature(name="f", aggregation=feature_pb2.AGGREGATION_SUM)],
            )
        ]
    )
    with pytest.raises(AimeshError) as err:
        await api.ApplyDefinitions(typed, None)  # type: ignore[arg-type]
    assert isinstance(err.value, InvalidArgument)
    assert "feature_views[0].features[0]: aggregation sum needs a field" in err.value.message
    typed.feature_views[0].features[0].source_field = "amount"
    typed.feature_views[0].features[0].window.FromSeconds(3600)
    done = await api.ApplyDefinitions(typed, None)  # type: ignore[arg-type]
    assert done.changes[0].action == feature_pb2.CHANGE_ACTION_CREATED
    assert features.registry.current.view("v").features[0].window is not None


async def test_list_feature_views_ordered_filtered_and_paged(features: FeatureStore) -> None:
    api = features.api()
    everything = await api.ListFeatureViews(feature_pb2.ListFeatureViewsRequest(), None)  # type: ignore[arg-type]
    assert [v.name for v in everything.feature_views] == ["card_txn_stats", "customer_txn_stats", "payment_request"]
    card = everything.feature_views[0]
    assert card.version == 1
    assert card.features[0].aggregation == feature_pb2.AGGREGATION_COUNT
    assert card.features[0].window.ToSeconds() == 3600
    assert card.features[7].aggregation == feature_pb2.AGGREGATION_IS_NEW
    assert not everything.page.next_page_token

    first = await api.ListFeatureViews(
        feature_pb2.ListFeatureViewsRequest(page=common_pb2.PageRequest(page_size=2)),
        None,  # type: ignore[arg-type]
    )
    assert [v.name for v in first.feature_views] == ["card_txn_stats", "customer_txn_stats"]
    rest = await api.ListFeatureViews(
        feature_pb2.ListFeatureViewsRequest(
            page=common_pb2.PageRequest(page_size=2, page_token=first.page.next_page_token)
        ),
        None,  # type: ignore[arg-type]
    )
    assert [v.name for v in rest.feature_views] == ["payment_request"] and not rest.page.next_page_token

    customer = await api.ListFeatureViews(feature_pb2.ListFeatureViewsRequest(entity="customer"), None)  # type: ignore[arg-type]
    assert [v.name for v in customer.feature_views] == ["customer_txn_stats"]


def test_the_service_ships_no_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEATURE_DEFINITIONS_FILE", raising=False)
    assert FeatureSettings(_env_file=None).definitions_file is None  # type: ignore[call-arg]
    package = resources.files("aimesh.feature")
    assert not [p.name for p in package.iterdir() if p.name.endswith((".yaml", ".yml", ".json"))]


async def test_a_store_started_without_a_definitions_file_serves_nothing(
    sql_engine: AsyncEngine, tmp_path: Path
) -> None:
    features = FeatureStore(sql_engine, tmp_path / "lake")
    await features.start(None)
    try:
        assert features.registry.current.repo == FeatureRepo()
        assert await features.backfill_pending() == []
    finally:
        await features.stop()


def _view(features: str, ttl: str = "") -> str:
    return f"feature_views: [{{name: v, entity: card, source: s, {ttl}features: [{features}]}}]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_view("{name: f, aggregation: count, window: 0s}"), "feature_views[0].features[0].window: must be positive"),
        (_view("{name: f, aggregation: count, window: 0}"), "feature_views[0].features[0].window: must be positive"),
        (_view("{name: f, aggregation: count, window: 1h}", "ttl: 0d, "), "feature_views[0].ttl: must be positive"),
        (_view("{name: f, aggregation: count, window: -60}"), "feature_views[0].features[0].window: must be positive"),
        (
            _view("{name: f, aggregation: seconds_since_last, window: 0m}"),
            "feature_views[0].features[0].window: must be positive",
        ),
        (
            _view("{name: f, aggregation: count, window: 0.5}"),
            "feature_views[0].features[0].window: must be a whole number of seconds, got 0.5s",
        ),
        (_view("{name: f, aggregation: last, field: x}", "ttl: 90.25, "), "feature_views[0].ttl: must be a whole"),
        (
            _view("{name: f, aggregation: count, window: 999999999d}"),
            "feature_views[0].features[0].window: must be at most 36500d",
        ),
        (_view("{name: f, aggregation: count, window: 1.0e+300}"), "feature_views[0].features[0].window: duration of"),
        *(
            (
                _view(f"{{name: ok, aggregation: last, field: x}}, {{name: f, aggregation: {agg}, field: x}}"),
                f"feature_views[0].features[1].window: aggregation {agg} without a window reads the view's retained "
                "history, and view v keeps only each entity's newest event",
            )
            for agg in ("count", "sum", "mean", "min", "max", "distinct_count")
        ),
    ],
)
def test_definitions_that_would_leave_a_feature_without_history_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_yaml(text)
    assert message in err.value.message


@pytest.mark.parametrize(
    "text",
    [
        _view("{name: f, aggregation: last, field: x}"),  # newest only: last, seconds_since_last, is_new need no more
        _view("{name: f, aggregation: seconds_since_last, window: 1d}, {name: g, aggregation: is_new, field: x}"),
        _view("{name: f, aggregation: count}", "ttl: 1d, "),  # the retained history is the ttl's
        _view("{name: f, aggregation: count}, {name: g, aggregation: sum, field: x, window: 1h}"),  # the window's
        _view("{name: f, aggregation: count, window: 1}"),
    ],
)
def test_definitions_whose_features_can_see_history_are_accepted(text: str) -> None:
    parse_yaml(text)


async def test_apply_refuses_them_too_for_repos_built_in_code_and_for_typed_messages(features: FeatureStore) -> None:
    valid = parse_yaml(
        "feature_views: [{name: v, entity: card, source: s, features: [{name: f, aggregation: last, field: x}]}]"
    )
    view = valid.feature_views[0]
    degenerate = FeatureRepo(
        feature_views=[
            view.model_copy(update={"features": [*view.features, FeatureSpec(name="n", aggregation="count")]})
        ]
    )
    with pytest.raises(InvalidArgument, match=r"feature_views\[0\]\.features\[1\]\.window: aggregation count without"):
        await features.apply(degenerate, True)
    api = features.api()
    typed = feature_pb2.ApplyDefinitionsRequest(
        feature_views=[
            feature_pb2.FeatureView(
                name="v",
                entity="card",
                source="card_transactions",
                features=[feature_pb2.Feature(name="n", aggregation=feature_pb2.AGGREGATION_COUNT)],
            )
        ]
    )
    typed.feature_views[0].features[0].window.FromMilliseconds(500)  # was truncated to "0s" and stored
    with pytest.raises(InvalidArgument, match=r"features\[0\]\.window: must be a whole number of seconds, got 0.5s"):
        await api.ApplyDefinitions(typed, None)  # type: ignore[arg-type]
    typed.feature_views[0].features[0].window.FromMilliseconds(1500)  # was truncated to 1 s
    with pytest.raises(InvalidArgument, match=r"got 1\.5s"):
        await api.ApplyDefinitions(typed, None)  # type: ignore[arg-type]
    typed.feature_views[0].features[0].ClearField("window")
    with pytest.raises(InvalidArgument, match="without a window"):
        await api.ApplyDefinitions(typed, None)  # type: ignore[arg-type]
    typed.feature_views[0].ttl.FromSeconds(3600)
    done = await api.ApplyDefinitions(typed, None)  # type: ignore[arg-type]
    assert done.changes[0].action == feature_pb2.CHANGE_ACTION_CREATED
