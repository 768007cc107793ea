"""Input profiles describe what monitor sees: encoded present values, categorical ones decoded."""

from __future__ import annotations

import pytest

from aimesh.api.common.v1 import signature_pb2
from aimesh.core.signature import InputEncoder, infer_inputs
from aimesh.training.input_profiles import from_bytes, input_profiles, to_bytes


def test_profiles_skip_fills_and_unknown_categories_and_sequences() -> None:
    train = [[1.0, 2.0, 3.0, 4.0], ["a", "a", "b", "a"], [("x",), ("y",), (), ("x",)]]
    inputs = infer_inputs(["v:n", "v:c", "v:s"], train, sequence_length=2)
    assert inputs[2].kind == signature_pb2.INPUT_KIND_SEQUENCE
    evaluation = [[1.0, None, 3.0, float("nan"), 5.0], ["a", "b", "zzz", None, "a"], [(), (), (), (), ()]]
    profiles = input_profiles(inputs, evaluation, InputEncoder(inputs).matrix(evaluation))
    numeric, categorical = profiles
    assert [p.feature for p in profiles] == ["v:n", "v:c"]
    assert numeric.count == 3 and numeric.missing_fraction == pytest.approx(0.4)
    assert numeric.bin_edges[0] == pytest.approx(1.0) and numeric.bin_edges[-1] == pytest.approx(5.0)
    assert list(categorical.categories) == ["a", "b"] and categorical.count == 3
    assert list(categorical.fractions) == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert categorical.missing_fraction == pytest.approx(0.4)  # None and the unknown "zzz"


def test_stored_profiles_round_trip_and_none_are_stored_before_they_existed() -> None:
    inputs = infer_inputs(["v:n"], [[1.0, 2.0]])
    profiles = input_profiles(inputs, [[1.0, 2.0]], InputEncoder(inputs).matrix([[1.0, 2.0]]))
    assert from_bytes(to_bytes(profiles)) == profiles
    assert from_bytes(None) == [] and from_bytes(to_bytes([])) == []
