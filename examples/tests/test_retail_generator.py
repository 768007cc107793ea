"""The retail generator: deterministic, streamed, in time order, with the sequential structure and the malformed
mix it promises; every record judged by the real ingest validator of the pack's sources."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from aimesh.core.pan import Tokenizer
from aimesh.examples.banking.generator import to_us
from aimesh.examples.retail import EXPECTED_REASON, EventType, GeneratorConfig, MalformedKind, Stream, generate_events
from aimesh.examples.retail.generator import default_population, season
from aimesh.examples.retail.pack import SOURCES
from aimesh.examples.retail.population import CATEGORY_NAMES
from aimesh.examples.retail.publisher import publish_events
from aimesh.ingest.sources import parse_sources_yaml
from aimesh.ingest.validation import Rejection, Validator, ValidRecord

END = datetime(2025, 3, 1, tzinfo=UTC)


def events(n: int, seed: int = 1, **options: Any) -> list[Any]:
    return list(generate_events(GeneratorConfig(events=n, seed=seed, end=END, **options)))


def interactions(generated: list[Any]) -> list[Any]:
    return [e for e in generated if e.stream is Stream.INTERACTIONS and e.malformed is None]


@pytest.fixture(scope="module")
def sample() -> list[Any]:
    return events(30_000, seed=11)


@pytest.fixture(scope="module")
def validators() -> dict[Stream, Validator]:
    sources = {s.name: s for s in parse_sources_yaml(SOURCES.read_text("utf-8"))}
    tokenizer = Tokenizer("test-secret")
    return {
        Stream.INTERACTIONS: Validator(sources["retail_interactions"], tokenizer),
        Stream.ITEMS: Validator(sources["retail_items"], tokenizer),
    }


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first, again, other = events(3000, seed=5), events(3000, seed=5), events(3000, seed=6)
    assert [(e.stream, e.key, e.value) for e in first] == [(e.stream, e.key, e.value) for e in again]
    assert [e.value for e in first] != [e.value for e in other]
    ids = {e.item_id for e in first if e.item_id} | {e.user_id for e in first if e.user_id}
    assert not ids & ({e.item_id for e in other if e.item_id} | {e.user_id for e in other if e.user_id})


def test_catalogue_first_then_exactly_the_interactions_in_time_order(sample: list[Any]) -> None:
    items, _ = default_population(30_000)
    assert [e.stream for e in sample[:items]] == [Stream.ITEMS] * items
    assert all(e.stream is Stream.INTERACTIONS for e in sample[items:]) and len(sample) == items + 30_000
    times = [e.time_us for e in sample]
    assert times == sorted(times)
    start = to_us(END - timedelta(days=30))
    assert all(t < start for t in times[:items]) and start <= times[items] and times[-1] <= to_us(END)
    assert times[-1] > to_us(END - timedelta(hours=1))
    assert len(events(500, catalogue=False)) == 500


def test_sessions_view_then_cart_then_buy() -> None:
    whole = interactions(events(20_000, seed=2, malformed_fraction=0.0))
    by_session: dict[str, list[tuple[str, str]]] = defaultdict(list)
    users: dict[str, set[str]] = defaultdict(set)
    for e in whole:
        record = orjson.loads(e.value)
        by_session[record["session_id"]].append((record["event_type"], record["item_id"]))
        users[record["session_id"]].add(record["user_id"])
    assert all(len(u) == 1 for u in users.values()), "a session belongs to one user"
    counts = Counter(e.event_type for e in whole)
    assert counts[EventType.VIEW] > counts[EventType.ADD_TO_CART] > counts[EventType.PURCHASE] > 0
    carted_then_bought = 0
    for steps in by_session.values():
        for i, (kind, item) in enumerate(steps):
            before = steps[:i]
            if kind == "add_to_cart":
                assert ("view", item) in before
            if kind == "purchase":
                assert ("add_to_cart", item) in before
                carted_then_bought += 1
    assert carted_then_bought == counts[EventType.PURCHASE]


def _leave_last_out(generated: list[Any], kind: EventType) -> tuple[float, float]:
    """HR@10 of popularity and of a first-order "what follows the last item" model (both counted on the
    users' older rows), each user's newest ``kind`` row evaluating, over the full catalogue."""
    history: dict[str, list[Any]] = defaultdict(list)
    for e in interactions(generated):
        history[e.user_id].append(e)
    popular: Counter[str] = Counter()
    follows: dict[str, Counter[str]] = defaultdict(Counter)
    evaluate: list[tuple[str, str]] = []
    for seq in history.values():
        rows = [i for i, e in enumerate(seq) if e.event_type is kind and i > 0]
        if not rows:
            continue
        popular.update(seq[i].item_id for i in rows[:-1])
        for a, b in itertools.pairwise(seq[: rows[-1]]):
            follows[a.item_id][b.item_id] += 1
        evaluate.append((seq[rows[-1] - 1].item_id, seq[rows[-1]].item_id))
    top = [item for item, _ in popular.most_common(10)]
    hits = 0
    for last, target in evaluate:
        ranked = [item for item, _ in follows[last].most_common(10)]
        ranked += [item for item in top if item not in ranked][: 10 - len(ranked)]
        hits += target in ranked
    return sum(target in top for _, target in evaluate) / len(evaluate), hits / len(evaluate)


def test_the_next_item_is_predictable_from_the_last_one(sample: list[Any]) -> None:
    for kind in (EventType.PURCHASE, EventType.VIEW):
        popularity, sequential = _leave_last_out(sample, kind)
        assert popularity < 0.3 and sequential > popularity + 0.25, (kind, popularity, sequential)
    flat = events(20_000, seed=11, complement_rate=0.0, same_category_rate=0.0, continue_rate=0.0)
    popularity, sequential = _leave_last_out(flat, EventType.VIEW)
    assert sequential < popularity + 0.05, "without complements the last view says little about the next"


def test_popularity_is_long_tailed(sample: list[Any]) -> None:
    items, _ = default_population(30_000)
    seen = Counter(e.item_id for e in interactions(sample))
    counts = sorted(seen.values(), reverse=True) + [0] * (items - len(seen))
    assert sum(counts[: items // 10]) / seen.total() > 0.35, "the top 10% of items get over a third"
    assert sum(counts[items // 2 :]) / seen.total() < 0.2, "the bottom half gets under a fifth"


def test_consumables_are_bought_again(sample: list[Any]) -> None:
    def repeats(generated: list[Any]) -> int:
        bought = Counter((e.user_id, e.item_id) for e in interactions(generated) if e.event_type is EventType.PURCHASE)
        return sum(1 for count in bought.values() if count > 1)

    with_repeats = repeats(events(20_000, seed=4))
    assert with_repeats > 1.5 * repeats(events(20_000, seed=4, repeat_rate=0.0)) > 0


def _kept_categories(generated: list[Any]) -> float:
    """Mean share of a heavy user's last third of interactions in the top 3 categories of their first third."""
    by_user: dict[str, list[str]] = defaultdict(list)
    for e in interactions(generated):
        by_user[e.user_id].append(orjson.loads(e.value)["category"])
    shares = []
    for categories in by_user.values():
        if len(categories) >= 60:
            third = len(categories) // 3
            first = {c for c, _ in Counter(categories[:third]).most_common(3)}
            shares.append(sum(c in first for c in categories[-third:]) / third)
    return sum(shares) / len(shares)


def test_tastes_drift_over_time() -> None:
    steady = _kept_categories(events(20_000, seed=3, drift_rate=0.0))
    drifting = _kept_categories(events(20_000, seed=3))
    assert _kept_categories(events(20_000, seed=3, drift_rate=0.3)) < drifting < steady


def test_seasonality() -> None:
    december, june = to_us(datetime(2024, 12, 16, tzinfo=UTC)), to_us(datetime(2024, 6, 17, tzinfo=UTC))
    assert season("toys", december) > 1.5 > season("toys", june)
    assert season("garden", june) > 1.5 > season("garden", december)
    saturday = to_us(datetime(2024, 6, 15, tzinfo=UTC))
    assert season("fashion", saturday) > season("fashion", june)

    def toys_share(end: datetime) -> float:
        generated = interactions(list(generate_events(GeneratorConfig(events=10_000, seed=8, end=end))))
        return sum(orjson.loads(e.value)["category"] == "toys" for e in generated) / len(generated)

    assert toys_share(datetime(2024, 12, 24, tzinfo=UTC)) > 1.3 * toys_share(datetime(2024, 7, 1, tzinfo=UTC))


def test_records_pass_ingest_and_malformed_ones_get_their_reason(
    sample: list[Any], validators: dict[Stream, Validator]
) -> None:
    malformed = [e for e in sample if e.malformed is not None]
    assert 0.02 <= len(malformed) / len(sample) <= 0.04
    assert set(Counter(e.malformed for e in malformed)) == set(MalformedKind)
    for e in sample:
        outcome = validators[e.stream].validate(e.value)
        if e.malformed is None:
            assert isinstance(outcome, ValidRecord), (e.value, outcome)
            assert outcome.event_id == e.event_id and outcome.entity_key == e.key
            assert outcome.event_time_us == e.time_us
        else:
            assert isinstance(outcome, Rejection), e.value
            assert outcome.reason == EXPECTED_REASON[e.malformed], (e.malformed, e.value, outcome)
            assert b"malformed" not in e.value
    assert not [e for e in events(2000, malformed_fraction=0.0) if e.malformed is not None]
    assert all(e.malformed is not None for e in events(200, malformed_fraction=1.0))


def test_categories_of_the_generator_are_the_sources_allowed_values() -> None:
    sources = {s.name: s for s in parse_sources_yaml(SOURCES.read_text("utf-8"))}
    for name in ("retail_interactions", "retail_items"):
        rule = sources[name].field("category")
        assert rule is not None and set(rule.allowed_values) == set(CATEGORY_NAMES)


def test_streams_without_materialising_the_whole_set() -> None:
    stream = generate_events(GeneratorConfig(events=50_000_000, seed=3, end=END, users=1000, items=1000))
    head = list(itertools.islice(stream, 3000))
    assert len(head) == 3000 and head[-1].stream is Stream.INTERACTIONS


@dataclass
class Meta:
    partition: int
    offset: int


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | str | None]] = []

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        assert headers == ()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(Meta(0, len(self.sent)))
        self.sent.append((topic, value, key))
        return fut


async def test_publisher_sends_json_keyed_by_user_or_item_and_summarises() -> None:
    generated = events(3000, seed=9)
    producer = FakeProducer()
    acked: list[int] = []

    summary = await publish_events(producer, generated, max_in_flight=64, on_acked=acked.append)  # type: ignore[arg-type]

    assert summary.total == len(generated) == len(acked)
    topics = {Stream.INTERACTIONS: "retail.interactions", Stream.ITEMS: "retail.items"}
    assert producer.sent == [(topics[e.stream], e.value, e.key) for e in generated]
    assert all(e.key == (e.user_id if e.stream is Stream.INTERACTIONS else e.item_id) for e in generated)
    assert len(summary.malformed) == sum(e.malformed is not None for e in generated)
    first = summary.malformed[0]
    assert producer.sent[first.offset][1] == next(e.value for e in generated if e.event_id == first.event_id)
    assert first.expected_reason == EXPECTED_REASON[first.kind]
    good = interactions(generated)
    assert summary.event_types == Counter(e.event_type.value for e in good)
    assert summary.users == {e.user_id for e in good}
