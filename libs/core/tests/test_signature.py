"""The signature codec: input inference, encoding (categorical, missing values) and request checks."""

from __future__ import annotations

import pytest

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.core.signature import InputEncoder, check_request, infer_inputs, scalar, to_value


def test_strings_make_a_categorical_input_with_its_vocabulary_most_frequent_first() -> None:
    inputs = infer_inputs(["v:n", "v:c"], [[1.0, None, 3], ["b", "a", "b"]])
    assert inputs[0].kind == signature_pb2.INPUT_KIND_NUMERIC and inputs[0].missing_value == pytest.approx(2.0)
    assert inputs[1].kind == signature_pb2.INPUT_KIND_CATEGORICAL and list(inputs[1].vocabulary) == ["b", "a"]


def test_encoding_feeds_indexes_and_fills_missing_and_unknown_values() -> None:
    encoder = InputEncoder(infer_inputs(["v:n", "v:c"], [[1.0, 3.0], ["b", "a"]]))
    assert encoder.row([5, "a"]) == [5.0, 1.0]  # a tie: vocabulary by value, ["a", "b"]
    assert encoder.row([None, "zzz"]) == [2.0, 0.0]
    assert encoder.row([float("nan"), None]) == [2.0, 0.0]
    assert encoder.matrix([[1.0, None], ["b", 7]]).tolist() == [[1.0, 2.0], [2.0, 0.0]]
    assert encoder.is_missing(1, "zzz") and not encoder.is_missing(1, "a") and encoder.is_missing(0, "x")
    with pytest.raises(ValueError, match="1 values for 2 inputs"):
        encoder.row([1.0])


def test_values_round_trip() -> None:
    for item in (None, True, 3, 2.5, "x", (), ("a", "b"), (1.5, 2.0)):
        assert scalar(to_value(item)) == item
    assert to_value(("a", "b")).list_value.values[1].string_value == "b"
    nested = common_pb2.Value(list_value=common_pb2.ValueList(values=[to_value(("a",))]))
    with pytest.raises(ValueError, match="not nested"):
        scalar(nested)


def test_a_list_value_is_never_a_number() -> None:
    encoder = InputEncoder(infer_inputs(["v:n"], [[1.0, 3.0]]))
    assert encoder.row([("a", "b")]) == [2.0] and encoder.is_missing(0, (1.0,))


def test_requests_missing_an_entity_or_a_context_field_or_mistyped_are_refused_by_name() -> None:
    signature = signature_pb2.ModelSignature(
        entity_types=["machine"],
        context_fields=[
            signature_pb2.ContextField(name="temperature", type=common_pb2.VALUE_TYPE_DOUBLE),
            signature_pb2.ContextField(name="site", type=common_pb2.VALUE_TYPE_STRING),
        ],
    )
    ok = {"temperature": common_pb2.Value(int64_value=70), "site": common_pb2.Value(string_value="north")}
    check_request(signature, {"machine": "m-1"}, ok)
    with pytest.raises(InvalidArgument) as err:
        check_request(signature, {}, {"temperature": common_pb2.Value(string_value="hot")})
    assert err.value.message == (
        "entity_ids['machine'] is missing; context['temperature'] is a string_value, expected a number "
        "(double_value or int64_value); context['site'] is missing (expected a string (string_value))"
    )
    with pytest.raises(InvalidArgument, match="expected a finite number"):
        check_request(signature, {"machine": "m"}, {**ok, "temperature": common_pb2.Value(double_value=float("inf"))})
