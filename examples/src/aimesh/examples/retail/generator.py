"""The seeded, streamed retail event generator.

``generate_events(config)`` yields the catalogue (one ``items`` record per item, in the seconds before
the span; left out with ``catalogue=False``), then exactly ``config.events`` interaction records
(``view`` / ``add_to_cart`` / ``purchase``, some deliberately malformed) in time order, the last one at
or before ``config.end``. Memory is bounded by the catalogue, the users and the sessions in progress,
never by the number of events: millions stream through.

Time model (as the banking generator's): the span ``[end - span, end]`` is cut into ``events`` equal
slots, each with one record at a jittered time. A slot emits the earliest pending step of a session in
progress that is due, otherwise it starts a new session of a user drawn by activity. Steps still not
due at ``end`` have not happened yet and are never emitted.

A session (the sequential structure a next-item model learns):

- it starts from a complement of the item the user's previous session ended on (``continue_rate``),
  or from a popular item of a category the user likes now (weighted by season and day of week);
- a consumable the user bought before and that is due again (its ``repeat_days`` have passed) is
  viewed, added to the cart and bought first, with probability ``repeat_rate`` (repeat purchases);
- each next view is one of the current item's fixed complements (``complement_rate``; "A is often
  followed by B"), else a popular item of the same category (``same_category_rate``), else a fresh draw
  from the user's affinity; each viewed item goes to the cart with ``cart_rate``;
- at the end, each cart item is bought with ``checkout_rate``;
- then, with ``drift_rate``, the user's taste moves: a new category becomes the favourite and the least
  liked one is dropped (category drift over time).

Seasonality: a category's demand follows a yearly cosine peaking on its ``season_peak_day`` and a
weekend boost (``population.CATEGORIES``).

Determinism: one ``random.Random(seed)`` drives everything, so the same config yields the same bytes.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from aimesh.examples.banking.generator import EPOCH, now_ms, rfc3339, to_us
from aimesh.examples.retail.malformed import corrupt
from aimesh.examples.retail.model import EventType, GeneratedEvent, MalformedKind, Stream
from aimesh.examples.retail.population import (
    CATEGORIES,
    CATEGORY_BY_NAME,
    COMPLEMENT_WEIGHTS,
    MAX_REMEMBERED,
    Catalogue,
    Item,
    Sampler,
    User,
    build_catalogue,
    build_users,
)

__all__ = ["GeneratorConfig", "default_population", "generate_events", "now_ms"]

SECOND_US = 1_000_000
DAY_US = 86_400 * SECOND_US
IDS_PER_SEED = 10**7
_CATEGORY_WEIGHTS = [c.weight for c in CATEGORIES]
_COMPLEMENT_SAMPLER = Sampler(list(COMPLEMENT_WEIGHTS))


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """What to generate. ``end`` defaults to now (rounded to the millisecond); fix it for reproducible runs."""

    events: int = 20_000
    """Interaction records (the catalogue comes on top)."""
    seed: int = 42
    end: datetime = field(default_factory=now_ms)
    span: timedelta = timedelta(days=30)
    items: int | None = None
    """Default: one item per 40 events, between 50 and 50000."""
    users: int | None = None
    """Default: one user per 25 events, between 20 and 500000."""
    catalogue: bool = True
    """Emit the catalogue (``Stream.ITEMS``) before the interactions."""
    malformed_fraction: float = 0.03
    zipf_exponent: float = 1.0
    complement_rate: float = 0.6
    same_category_rate: float = 0.2
    continue_rate: float = 0.35
    repeat_rate: float = 0.5
    cart_rate: float = 0.3
    checkout_rate: float = 0.7
    drift_rate: float = 0.05
    explore_rate: float = 0.1
    """Share of sessions that start in a category outside the user's affinity."""
    mean_views: float = 4.0
    """Mean number of views of a session (geometric, at most 15)."""

    def __post_init__(self) -> None:
        if self.events < 0:
            raise ValueError("events must be >= 0")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")
        rates = ("malformed_fraction", "complement_rate", "same_category_rate", "continue_rate", "repeat_rate")
        rates2 = ("cart_rate", "checkout_rate", "drift_rate", "explore_rate")
        for name in (*rates, *rates2):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.complement_rate + self.same_category_rate > 1.0:
            raise ValueError("complement_rate + same_category_rate must be at most 1")
        if self.mean_views < 1.0:
            raise ValueError("mean_views must be >= 1")


def default_population(events: int) -> tuple[int, int]:
    """How many items and users a run of ``events`` interactions draws when the config names none."""
    return min(50_000, max(50, events // 40)), min(500_000, max(20, events // 25))


@dataclass(frozen=True, slots=True)
class _Step:
    user: User
    session_id: str
    item: int
    event_type: EventType


def season(category: str, time_us: int) -> float:
    """The demand multiplier of ``category`` at ``time_us``: yearly cosine times the weekend boost."""
    spec = CATEGORY_BY_NAME[category]
    moment = EPOCH + timedelta(microseconds=time_us)
    day = moment.timetuple().tm_yday
    yearly = 1.0 + spec.season_amplitude * math.cos(2 * math.pi * (day - spec.season_peak_day) / 365.25)
    return yearly * (spec.weekend_boost if moment.weekday() >= 5 else 1.0)


class _Generator:
    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311  # a reproducible simulation, not cryptography
        default_items, default_users = default_population(config.events)
        namespace = f"{config.seed % 1000:03d}-"
        self.catalogue: Catalogue = build_catalogue(
            self.rng, items=config.items or default_items, zipf_exponent=config.zipf_exponent, namespace=namespace
        )
        self.users, self.activity = build_users(self.rng, users=config.users or default_users, namespace=namespace)
        self.pending: list[tuple[int, int, _Step]] = []
        self.seq = itertools.count()
        id_base = (config.seed % 1000) * IDS_PER_SEED
        self.interaction_ids = (f"ix-{id_base + n:010d}" for n in itertools.count(1))
        self.update_ids = (f"cat-{id_base + n:010d}" for n in itertools.count(1))
        self.session_ids = (f"s-{id_base + n:010d}" for n in itertools.count(1))

    def run(self) -> Iterator[GeneratedEvent]:
        cfg = self.config
        end_us = to_us(cfg.end) // 1000 * 1000
        span_us = cfg.span // timedelta(microseconds=1)
        start_us = end_us - span_us
        if cfg.catalogue:
            items = self.catalogue.items
            for i, item in enumerate(items):
                yield self._catalogue_record(item, start_us - (len(items) - i) * 1000)
        for slot in range(cfg.events):
            t = start_us + int((slot + self.rng.random()) * span_us / cfg.events) // 1000 * 1000
            t = min(t, end_us)
            if self.pending and self.pending[0][0] <= t:
                _, _, step = heapq.heappop(self.pending)
            else:
                step = self._start_session(t)
            yield self._interaction(step, t)

    # -- sessions -------------------------------------------------------------------------------

    def _user(self, t: int) -> User:
        user = self.users[self.activity.draw(self.rng)]
        for _ in range(5):
            if user.busy_until_us <= t:
                break
            user = self.users[self.activity.draw(self.rng)]
        return user

    def _category(self, user: User, t: int) -> str:
        rng = self.rng
        if rng.random() < self.config.explore_rate:
            names = [c.name for c in CATEGORIES]
            weights = [w * season(n, t) for n, w in zip(names, _CATEGORY_WEIGHTS, strict=True)]
            return rng.choices(names, weights)[0]
        weights = [w * season(n, t) for n, w in zip(user.affinity, user.affinity_weights, strict=True)]
        return rng.choices(user.affinity, weights)[0]

    def _complement(self, item: int) -> int:
        return self.catalogue.complements[item][_COMPLEMENT_SAMPLER.draw(self.rng)]

    def _next(self, item: int, user: User, t: int) -> int:
        """The item viewed after ``item`` (never ``item`` itself, unless its category holds nothing else)."""
        r = self.rng.random()
        if r < self.config.complement_rate:
            return self._complement(item)
        same = r < self.config.complement_rate + self.config.same_category_rate
        category = self.catalogue.items[item].category if same else self._category(user, t)
        drawn = item
        for _ in range(5):
            drawn = self.catalogue.draw_in(self.rng, category)
            if drawn != item:
                break
        return drawn

    def _due_repeat(self, user: User, t: int) -> int | None:
        items = self.catalogue.items
        due = [i for i, last in user.purchases.items() if t - last >= items[i].repeat_days * DAY_US]
        return self.rng.choice(due) if due else None

    def _plan(self, user: User, t: int) -> list[tuple[int, EventType]]:
        """The session's steps in order; updates the user's state as if the session happened."""
        cfg, rng = self.config, self.rng
        steps: list[tuple[int, EventType]] = []
        repeat = self._due_repeat(user, t)
        if repeat is not None and rng.random() < cfg.repeat_rate:
            steps += [(repeat, EventType.VIEW), (repeat, EventType.ADD_TO_CART), (repeat, EventType.PURCHASE)]
        if user.last_item is not None and rng.random() < cfg.continue_rate:
            current = self._complement(user.last_item)
        else:
            current = self.catalogue.draw_in(rng, self._category(user, t))
        views = min(15, 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - 1.0 / cfg.mean_views)))
        cart: list[int] = []
        for n in range(views):
            steps.append((current, EventType.VIEW))
            if current not in cart and rng.random() < cfg.cart_rate:
                steps.append((current, EventType.ADD_TO_CART))
                cart.append(current)
            if n < views - 1:
                current = self._next(current, user, t)
        bought = [i for i in cart if rng.random() < cfg.checkout_rate]
        steps += [(i, EventType.PURCHASE) for i in bought]
        for i in [s[0] for s in steps if s[1] is EventType.PURCHASE]:
            if self.catalogue.items[i].repeat_days:
                user.purchases.pop(i, None)
                user.purchases[i] = t
                if len(user.purchases) > MAX_REMEMBERED:
                    del user.purchases[next(iter(user.purchases))]
        user.last_item = steps[-1][0]
        if rng.random() < cfg.drift_rate:
            self._drift(user, t)
        return steps

    def _drift(self, user: User, t: int) -> None:
        names = [c.name for c in CATEGORIES if c.name not in user.affinity]
        weights = [CATEGORY_BY_NAME[n].weight * season(n, t) for n in names]
        user.affinity = [self.rng.choices(names, weights)[0], *user.affinity[:-1]]

    def _start_session(self, t: int) -> _Step:
        rng = self.rng
        user = self._user(t)
        user.sessions += 1
        session_id = next(self.session_ids)
        steps = self._plan(user, t)
        due = t
        for item, event_type in steps[1:]:
            if event_type is EventType.VIEW:
                due += rng.randint(10 * SECOND_US, 180 * SECOND_US)
            elif event_type is EventType.ADD_TO_CART:
                due += rng.randint(3 * SECOND_US, 60 * SECOND_US)
            else:
                due += rng.randint(20 * SECOND_US, 300 * SECOND_US)
            heapq.heappush(self.pending, (due, next(self.seq), _Step(user, session_id, item, event_type)))
        user.busy_until_us = due
        first, first_type = steps[0]
        return _Step(user, session_id, first, first_type)

    # -- records ----------------------------------------------------------------------------------

    def _catalogue_record(self, item: Item, t: int) -> GeneratedEvent:
        update_id = next(self.update_ids)
        record = {
            "update_id": update_id,
            "item_id": item.item_id,
            "category": item.category,
            "price": item.price,
            "timestamp": rfc3339(t),
        }
        return self._emit(Stream.ITEMS, record, event_id=update_id, key=item.item_id, t=t, item_id=item.item_id)

    def _interaction(self, step: _Step, t: int) -> GeneratedEvent:
        interaction_id = next(self.interaction_ids)
        item = self.catalogue.items[step.item]
        record = {
            "interaction_id": interaction_id,
            "user_id": step.user.user_id,
            "item_id": item.item_id,
            "category": item.category,
            "price": item.price,
            "event_type": step.event_type.value,
            "session_id": step.session_id,
            "timestamp": rfc3339(t),
        }
        return self._emit(
            Stream.INTERACTIONS,
            record,
            event_id=interaction_id,
            key=step.user.user_id,
            t=t,
            user_id=step.user.user_id,
            item_id=item.item_id,
            event_type=step.event_type,
        )

    def _emit(
        self,
        stream: Stream,
        record: dict[str, Any],
        *,
        event_id: str,
        key: str,
        t: int,
        user_id: str = "",
        item_id: str = "",
        event_type: EventType | None = None,
    ) -> GeneratedEvent:
        malformed: MalformedKind | None = None
        value = orjson.dumps(record)
        if self.rng.random() < self.config.malformed_fraction:
            malformed = self.rng.choice(tuple(MalformedKind))
            value = corrupt(self.rng, stream, record, malformed)
        return GeneratedEvent(
            stream=stream,
            key=key,
            value=value,
            event_id=event_id,
            time_us=t,
            malformed=malformed,
            user_id=user_id,
            item_id=item_id,
            event_type=event_type,
        )


def generate_events(config: GeneratorConfig) -> Iterator[GeneratedEvent]:
    """Yield the catalogue, then ``config.events`` interactions in time order (see the module doc); lazy."""
    return _Generator(config).run()
