"""A hypothesis fuzz of every gRPC handler of the five services: generated requests never answer UNKNOWN or
INTERNAL (an unexpected exception in a handler) nor hang past the deadline.

Requests are drawn from the method's input descriptor: every field optional, strings from a vocabulary of
the pack's real names (so requests reach past the first lookup) or arbitrary text, numbers including
NaN, infinities and the type's extremes, unknown enum values, timestamps and durations out of range,
repeated and map fields up to three entries, nesting up to three levels. Trainer names are left out of
the vocabulary so no generated ``StartRun`` can queue a real training run. ``FAULTS_FUZZ_EXAMPLES``
(default 12) bounds the examples per method.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.hostile import call, service_methods
from tests.faults.stack import FaultStack

pytestmark = pytest.mark.faults

EXAMPLES = int(os.environ.get("FAULTS_FUZZ_EXAMPLES", "12"))
MAX_DEPTH = 3
VOCABULARY = (
    "",
    "fraud",
    "fraud_v1",
    "card_transactions",
    "chargebacks",
    "card",
    "customer",
    "champion",
    "card_txn_stats",
    "card_txn_stats:card_txn_count_24h",
    "amount",
    "card_id",
    "transaction_id",
    "1",
    "*",
    "../../etc/passwd",
    "x" * 300,
)
FD = pb_descriptor.FieldDescriptor
INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
OUTCOMES: dict[str, Counter[str]] = {}


def scalar(field: pb_descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FD.TYPE_STRING:
        return st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=24))
    if field.type == FD.TYPE_BYTES:
        return st.binary(max_size=24)
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=64 if field.type == FD.TYPE_DOUBLE else 32)
    if field.type == FD.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 60))
    low, high = INT_RANGES[field.type]
    return st.one_of(st.integers(max(low, -5), min(high, 100)), st.sampled_from([low, high]), st.integers(low, high))


def message_strategy(descriptor: pb_descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of ``descriptor`` with any subset of fields set (see the module doc)."""
    cls = message_factory.GetMessageClass(descriptor)
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        value = field_strategy(field, depth)
        if value is not None:
            optional[field.name] = value

    def build(values: dict[str, Any]) -> Any:
        message = cls()
        for name, value in values.items():
            field = descriptor.fields_by_name[name]
            target = getattr(message, name) if field.is_repeated or field.message_type else None
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                for k, v in value.items():
                    if value_field.message_type is not None:
                        target[k].CopyFrom(v)  # type: ignore[index]
                    else:
                        target[k] = v  # type: ignore[index]
            elif field.is_repeated:
                if field.message_type is not None:
                    for item in value:
                        target.add().CopyFrom(item)  # type: ignore[union-attr]
                else:
                    target.extend(value)  # type: ignore[union-attr]
            elif field.message_type is not None:
                target.CopyFrom(value)  # type: ignore[union-attr]
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=optional).map(build)


def field_strategy(field: pb_descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = scalar(field.message_type.fields_by_name["key"])
        value_field = field.message_type.fields_by_name["value"]
        value = field_strategy_single(value_field, depth + 1)
        return None if value is None else st.dictionaries(key, value, max_size=3)
    single = field_strategy_single(field, depth)
    if single is None:
        return None
    return st.lists(single, max_size=3) if field.is_repeated else single


def field_strategy_single(field: pb_descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if field.message_type is None:
        return scalar(field)
    if field.message_type.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        cls = message_factory.GetMessageClass(field.message_type)
        return st.builds(
            lambda s, n: cls(seconds=s, nanos=n),
            st.one_of(st.integers(-(2**40), 2**40), st.integers(0, 2_000_000_000)),
            st.integers(-(2**31), 2**31 - 1),
        )
    if depth >= MAX_DEPTH:
        return None
    return message_strategy(field.message_type, depth + 1)


@pytest.fixture(scope="module", autouse=True)
def fuzz_summary() -> Iterator[None]:
    yield
    print("\n=== gRPC fuzz: status codes per method")
    for label, codes in OUTCOMES.items():
        print(f"  {label}: {dict(codes)}")


METHODS = service_methods()


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[f"{s}.{m.name}" for s, m in METHODS])
def test_fuzz_grpc_handler(fault_stack: FaultStack, service: str, method: pb_descriptor.MethodDescriptor) -> None:
    label = f"{service}.{method.name}"
    codes = OUTCOMES.setdefault(label, Counter())
    bad: list[str] = []
    with fault_stack.sync_channel(service) as channel:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
            ],
        )
        @given(request=message_strategy(method.input_type))
        def fuzz(request: Any) -> None:
            code = call(channel, method, request.SerializeToString(), fault_stack.metadata or None, timeout=10.0)
            codes[code] += 1
            if code in ("UNKNOWN", "INTERNAL", "DEADLINE_EXCEEDED"):
                bad.append(f"{code} for {str(request)[:300]!r}")
            assert code not in ("UNKNOWN", "INTERNAL", "DEADLINE_EXCEEDED"), f"{label}: {bad[-1]}"

        fuzz()
