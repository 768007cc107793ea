"""Sequence inputs of the signature codec: inference from list values and the right-aligned encoding."""

from __future__ import annotations

import pytest

from aimesh.api.common.v1 import signature_pb2
from aimesh.core.signature import InputEncoder, infer_inputs


def test_list_values_make_a_sequence_input_whose_vocabulary_counts_lists_and_extra_items() -> None:
    inputs = infer_inputs(
        ["h:recent", "h:n"],
        [[("a", "b"), None, ("b",), ()], [1.0, 2.0, 3.0, None]],
        sequence_length=3,
        extra_items={"h:recent": ["c", "c", "c", "a"]},
    )
    seq = inputs[0]
    assert seq.kind == signature_pb2.INPUT_KIND_SEQUENCE and seq.length == 3
    assert list(seq.vocabulary) == ["c", "a", "b"]  # c: 3, a: 2, b: 2 (tie by value)
    assert inputs[1].kind == signature_pb2.INPUT_KIND_NUMERIC


def test_a_sequence_vocabulary_is_not_cut_at_the_categorical_bound() -> None:
    items = tuple(f"i{k:05d}" for k in range(5000))
    (seq,) = infer_inputs(["h"], [[items]])
    assert len(seq.vocabulary) == 5000 and seq.length == 20


def test_sequences_encode_newest_length_elements_right_aligned_with_zero_for_pad_and_unknown() -> None:
    seq = signature_pb2.SignatureInput(
        name="h", kind=signature_pb2.INPUT_KIND_SEQUENCE, vocabulary=["a", "b", "c"], length=3
    )
    num = signature_pb2.SignatureInput(name="n", kind=signature_pb2.INPUT_KIND_NUMERIC, missing_value=9.0)
    encoder = InputEncoder([seq, num])
    assert encoder.width == 4 and encoder.spans == (slice(0, 3), slice(3, 4))
    assert encoder.row([("a",), 1.0]) == [0.0, 0.0, 1.0, 1.0]
    assert encoder.row([["a", "b", "c", "a"], None]) == [2.0, 3.0, 1.0, 9.0]  # the newest three, oldest first
    assert encoder.row([("zzz", "c"), 2]) == [0.0, 0.0, 3.0, 2.0]  # unknown keeps its position as 0
    assert encoder.row([None, 0]) == [0.0, 0.0, 0.0, 0.0]
    matrix = encoder.matrix([[("b", "c"), (), None], [1.0, 2.0, None]])
    assert matrix.shape == (3, 4)
    assert matrix.tolist() == [[0.0, 2.0, 3.0, 1.0], [0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 9.0]]
    assert encoder.is_missing(0, None) and not encoder.is_missing(0, ()) and not encoder.is_missing(0, ("zzz",))


def test_a_sequence_length_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="sequence_length 0"):
        infer_inputs(["h"], [[("a",)]], sequence_length=0)
