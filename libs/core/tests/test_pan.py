"""The PAN scanner: Luhn-valid 13-19 digit runs (grouped by spaces or dashes) become their PII token."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimesh.core.pan import PanMasker, Tokenizer, is_pan, luhn_valid

TOKENIZER = Tokenizer("pan-test-secret")
MASKER = PanMasker(TOKENIZER)
VISA = "4111111111111111"
AMEX = "378282246310005"
TOKEN = TOKENIZER.token(VISA)


def with_check_digit(body: str) -> str:
    """``body`` followed by the digit that makes it Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def test_luhn_and_length() -> None:
    assert luhn_valid(VISA) and luhn_valid(AMEX) and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
    assert is_pan(VISA) and is_pan(AMEX)
    assert not is_pan("79927398713")  # Luhn-valid but 11 digits
    assert not is_pan(with_check_digit("1" * 19))  # 20 digits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VISA, TOKEN),
        (f"pan={VISA};", f"pan={TOKEN};"),
        ("4111 1111 1111 1111", TOKEN),
        ("4111-1111-1111-1111 ok", f"{TOKEN} ok"),
        (f"card:{VISA} and {AMEX}", f"card:{TOKEN} and {TOKENIZER.token(AMEX)}"),
        ("4111 1111 1111 1111 43", f"{TOKEN} 43"),  # a trailing group is not part of it
        ("7 4111 1111 1111 1111", f"7 {TOKEN}"),  # nor a leading one
        ("x4111111111111111y", f"x{TOKEN}y"),
    ],
)
def test_pans_are_replaced_by_the_token_of_their_digits(text: str, expected: str) -> None:
    masked, count = MASKER.mask_text(text)
    assert masked == expected and count >= 1


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # Luhn fails
        "41111111111111110",  # a PAN inside a longer undelimited run is no PAN
        "4111  1111 1111 1111",  # two spaces: not one grouped number
        "order 2024-05-01 12:00",
        "79927398713",
        "",
        "short",
        TOKEN,  # already a token: left alone even where its digits look like a PAN
    ],
)
def test_non_pans_are_left_alone(text: str) -> None:
    assert MASKER.mask_text(text) == (text, 0)


def test_masking_is_idempotent() -> None:
    once, _ = MASKER.mask_text(f"{VISA} {AMEX}")
    assert MASKER.mask_text(once) == (once, 0)


def test_bytes_are_masked_even_when_not_utf8() -> None:
    data = b"\xff\xfe" + VISA.encode() + b"\x00 4111-1111-1111-1111"
    masked, count = MASKER.mask_bytes(data)
    assert count == 2 and masked == b"\xff\xfe" + TOKEN.encode() + b"\x00 " + TOKEN.encode()


def test_json_values_are_masked_recursively_without_modifying_the_input() -> None:
    value = {"a": [1, VISA, {"b": int(VISA)}], VISA: "k", "n": 12.5, "t": True, "z": None}
    masked, count = MASKER.mask_value(value)
    assert count == 3
    assert masked == {"a": [1, TOKEN, {"b": TOKEN}], TOKEN: "k", "n": 12.5, "t": True, "z": None}
    assert value["a"][1] == VISA  # type: ignore[index]
    assert MASKER.mask_value({"a": [1, "x"]}) == ({"a": [1, "x"]}, 0)


def test_a_long_grouped_run_is_scanned_in_linear_time() -> None:
    text = " ".join(["1"] * 200_000)
    assert MASKER.mask_text(text)[1] == 0


PAN_BODIES = st.integers(min_value=12, max_value=18).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
)
PANS = PAN_BODIES.map(with_check_digit)


def grouped(pan: str, separator: str, size: int) -> str:
    return separator.join(pan[i : i + size] for i in range(0, len(pan), size))


@settings(max_examples=300, deadline=None)
@given(
    PANS,
    st.sampled_from(["", " ", "-"]),
    st.integers(min_value=3, max_value=6),
    st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
    st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
)
def test_no_pan_survives_in_any_text(pan: str, separator: str, size: int, before: str, after: str) -> None:
    written = grouped(pan, separator, size) if separator else pan
    text = before.rstrip(" -") + " " + written + " " + after.lstrip(" -")
    masked, count = MASKER.mask_text(text)
    assert count >= 1
    assert pan not in re.sub(r"[ -]", "", masked)
    assert TOKENIZER.token(pan) in masked


def test_deeply_nested_values_are_masked_without_recursion() -> None:
    value: object = VISA
    for _ in range(5000):
        value = [value]
    masked, count = MASKER.mask_value({"deep": value})
    assert count == 1
    inner = masked["deep"]
    for _ in range(5000):
        inner = inner[0]
    assert inner == TOKEN


def test_scrub_tokenises_long_digit_runs_and_grouped_pans() -> None:
    data = b"\xff id=123456789012 pan=4111-1111-1111-1111"
    scrubbed, count = MASKER.scrub(data)
    assert count == 2
    assert scrubbed == b"\xff id=" + TOKENIZER.token("123456789012").encode() + b" pan=" + TOKEN.encode()
