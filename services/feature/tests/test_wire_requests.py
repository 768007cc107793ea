"""``repo_from_request`` refuses what the fault suite's fuzz sent ApplyDefinitions: an aggregation number
the enum does not define (it answered INTERNAL: ``Aggregation.Name(-1)`` raised ValueError)."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.feature.definitions.wire import repo_from_request


def request(aggregation: int) -> feature_pb2.ApplyDefinitionsRequest:
    return feature_pb2.ApplyDefinitionsRequest(
        entities=[feature_pb2.Entity(name="acct")],
        feature_views=[
            feature_pb2.FeatureView(
                name="v",
                entity="acct",
                source="s",
                features=[feature_pb2.Feature(name="n", aggregation=aggregation, window=Duration(seconds=3600))],  # type: ignore[arg-type]
            )
        ],
    )


@pytest.mark.parametrize("number", [-1, 12, 2**31 - 1])
def test_an_unknown_aggregation_number_is_invalid_argument(number: int) -> None:
    with pytest.raises(InvalidArgument, match=f"feature 'n': aggregation {number} is not an Aggregation value"):
        repo_from_request(request(number))


def test_a_known_aggregation_is_accepted() -> None:
    repo = repo_from_request(request(feature_pb2.AGGREGATION_COUNT))
    assert [f.name for f in repo.feature_views[0].features] == ["n"]
