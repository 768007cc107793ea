"""Definitions as data, and ListFeatureViews over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import NotFound
from aimesh.feature.api import FeatureServiceApi
from aimesh.feature.definitions import FRAUD_V1, FRAUD_V1_FEATURES, REGISTRY
from aimesh.feature.retrieval import HistoricalRetrieval, OnlineRetrieval
from aimesh.feature.store import OnlineStore


def test_fraud_v1_references_every_feature_by_view() -> None:
    assert [ref.split(":")[1] for ref in FRAUD_V1.features] == list(FRAUD_V1_FEATURES)
    assert FRAUD_V1.features[0] == "card_txn_stats:card_txn_count_1h"
    assert REGISTRY.feature("payment_request:amount").view.name == "payment_request"
    with pytest.raises(NotFound, match="known features: card_txn_stats:card_txn_count_1h"):
        REGISTRY.feature("customer_txn_stats:card_txn_count_1h")


async def test_list_feature_views_ordered_filtered_and_paged(store: OnlineStore, tmp_path: Path) -> None:
    api = FeatureServiceApi(OnlineRetrieval(store), HistoricalRetrieval(tmp_path))  # type: ignore[abstract]
    everything = await api.ListFeatureViews(feature_pb2.ListFeatureViewsRequest(), None)  # type: ignore[arg-type]
    assert [v.name for v in everything.feature_views] == ["card_txn_stats", "customer_txn_stats", "payment_request"]
    card = everything.feature_views[0]
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
