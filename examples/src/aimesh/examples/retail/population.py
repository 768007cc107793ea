"""The retailer's catalogue and users, drawn once from the generator's seeded RNG.

- Items: each belongs to one category, has a price drawn around its category's median, and a
  long-tail (Zipf) popularity weight: the item of popularity rank r weighs ``1 / r ** zipf_exponent``.
- Complements: each item has ``COMPLEMENTS`` fixed successors (two in its own category, one in a
  complementary category), chosen with a flattened popularity bias, so that "A is often followed by
  B" holds for tail items too. ``COMPLEMENT_WEIGHTS`` is how often each successor is the one taken.
- Users: an activity weight (Pareto: a few heavy shoppers, a long tail of occasional ones) and an
  affinity over ``AFFINITY_SIZE`` categories (mutable: the generator drifts it over time).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Category:
    """A catalogue category: its share of items, price level, season and complementary categories."""

    name: str
    weight: float
    """Share of the catalogue's items and of users' first affinities."""
    median_price: float
    consumable: bool
    """Bought again and again (grocery, pet food): the generator schedules repeat purchases."""
    season_peak_day: int
    """Day of the year when demand peaks."""
    season_amplitude: float
    """Demand swings between ``1 - a`` and ``1 + a`` over the year."""
    weekend_boost: float
    """Demand multiplier on Saturdays and Sundays."""
    complements: tuple[str, ...]
    """Categories the third complement of an item is drawn from."""


CATEGORIES: tuple[Category, ...] = (
    Category("grocery", 16, 6.0, True, 355, 0.15, 1.0, ("grocery",)),
    Category("beauty", 8, 18.0, True, 45, 0.2, 1.1, ("beauty", "fashion")),
    Category("pet", 6, 15.0, True, 180, 0.1, 1.0, ("pet",)),
    Category("baby", 5, 20.0, True, 180, 0.1, 1.0, ("baby", "toys")),
    Category("electronics", 10, 120.0, False, 330, 0.45, 1.2, ("electronics", "music")),
    Category("books", 10, 14.0, False, 350, 0.25, 1.2, ("books",)),
    Category("fashion", 12, 40.0, False, 100, 0.3, 1.4, ("fashion", "beauty", "sports")),
    Category("home", 9, 35.0, False, 60, 0.2, 1.3, ("home", "garden")),
    Category("toys", 7, 25.0, False, 350, 0.8, 1.4, ("toys", "baby")),
    Category("sports", 7, 45.0, False, 190, 0.5, 1.3, ("sports", "fashion")),
    Category("garden", 5, 30.0, False, 140, 0.9, 1.5, ("garden", "home")),
    Category("music", 5, 12.0, False, 350, 0.2, 1.1, ("music", "electronics")),
)
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)
MAX_PRICE = 5000.0
COMPLEMENTS = 3
COMPLEMENT_WEIGHTS = (0.5, 0.3, 0.2)
AFFINITY_SIZE = 3


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    index: int
    category: str
    price: float
    popularity: float
    repeat_days: float
    """Consumables: the typical days between two purchases by one user; 0 for the rest."""


@dataclass(slots=True)
class User:
    """A user and the state the generator evolves (affinity drift, what was bought, where browsing stopped)."""

    user_id: str
    affinity: list[str]
    """The categories the user shops in now, most liked first (``AFFINITY_SIZE`` of them)."""
    affinity_weights: tuple[float, ...]
    last_item: int | None = None
    """Index of the item the previous session ended on (the next session often continues from it)."""
    purchases: dict[int, int] = field(default_factory=dict)
    """Consumable item index -> time (us) of its last purchase (at most ``MAX_REMEMBERED`` entries)."""
    busy_until_us: int = 0
    """End of the session in progress (no second session starts before it)."""
    sessions: int = 0


MAX_REMEMBERED = 20


class Sampler:
    """Weighted draws by cumulative weights (bisect), for a fixed population."""

    def __init__(self, weights: list[float]) -> None:
        if not weights:
            raise ValueError("a sampler needs at least one weight")
        self._cum = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> int:
        """An index, with probability proportional to its weight."""
        return bisect.bisect_right(self._cum, rng.random() * self._cum[-1])


@dataclass(frozen=True, slots=True)
class Catalogue:
    items: tuple[Item, ...]
    complements: tuple[tuple[int, ...], ...]
    """``complements[i]``: the successors of item i, in ``COMPLEMENT_WEIGHTS`` order."""
    by_category: dict[str, tuple[int, ...]]
    """Item indexes of each category, most popular first."""
    category_samplers: dict[str, Sampler]
    """Draws a position in ``by_category[name]`` by popularity."""

    def draw_in(self, rng: random.Random, category: str) -> int:
        """An item index of ``category``, drawn by popularity."""
        members = self.by_category[category]
        return members[self.category_samplers[category].draw(rng)]


def _price(rng: random.Random, category: Category) -> float:
    return round(min(MAX_PRICE, max(0.5, rng.lognormvariate(math.log(category.median_price), 0.6))), 2)


def build_catalogue(rng: random.Random, *, items: int, zipf_exponent: float, namespace: str = "") -> Catalogue:
    """``items`` items (at least one per category), their Zipf popularity and their complements.

    ``namespace`` prefixes item ids, so catalogues of different seeds never share an id.
    """
    if items < len(CATEGORIES):
        raise ValueError(f"a catalogue needs at least {len(CATEGORIES)} items (one per category)")
    names = list(CATEGORY_NAMES)
    draws = rng.choices(names, [c.weight for c in CATEGORIES], k=items - len(names))
    categories = names + draws
    rng.shuffle(categories)
    ranks = list(range(1, items + 1))
    rng.shuffle(ranks)
    built: list[Item] = []
    for i, (name, rank) in enumerate(zip(categories, ranks, strict=True)):
        category = CATEGORY_BY_NAME[name]
        repeat = rng.uniform(3.0, 12.0) if category.consumable else 0.0
        built.append(
            Item(
                item_id=f"it-{namespace}{i + 1:06d}",
                index=i,
                category=name,
                price=_price(rng, category),
                popularity=1.0 / rank**zipf_exponent,
                repeat_days=round(repeat, 2),
            )
        )
    by_category = {
        name: tuple(sorted((it.index for it in built if it.category == name), key=lambda j: -built[j].popularity))
        for name in names
    }
    samplers = {name: Sampler([built[j].popularity for j in members]) for name, members in by_category.items()}
    flat = {name: Sampler([built[j].popularity ** 0.5 for j in members]) for name, members in by_category.items()}

    def successor(i: int, category: str) -> int:
        members = by_category[category]
        for _ in range(20):
            j = members[flat[category].draw(rng)]
            if j != i:
                return j
        return members[0] if members[0] != i else members[-1]

    complements = []
    for it in built:
        own = CATEGORY_BY_NAME[it.category]
        first = successor(it.index, it.category)
        second = successor(it.index, it.category)
        for _ in range(5):
            if second != first:
                break
            second = successor(it.index, it.category)
        third = successor(it.index, rng.choice(own.complements))
        complements.append((first, second, third))
    return Catalogue(tuple(built), tuple(complements), by_category, samplers)


def build_users(rng: random.Random, *, users: int, namespace: str = "") -> tuple[list[User], Sampler]:
    """``users`` users with their first affinities, and a sampler of users by activity (Pareto)."""
    people = [
        User(
            user_id=f"u-{namespace}{i + 1:07d}",
            affinity=draw_affinity(rng),
            affinity_weights=tuple(
                sorted((rng.gammavariate(1.0, 1.0) + 0.05 for _ in range(AFFINITY_SIZE)), reverse=True)
            ),
        )
        for i in range(users)
    ]
    activity = Sampler([min(50.0, rng.paretovariate(1.3)) for _ in people])
    return people, activity


def draw_affinity(rng: random.Random) -> list[str]:
    """``AFFINITY_SIZE`` distinct categories, drawn by category weight."""
    chosen: list[str] = []
    while len(chosen) < AFFINITY_SIZE:
        name = rng.choices(CATEGORY_NAMES, [c.weight for c in CATEGORIES])[0]
        if name not in chosen:
            chosen.append(name)
    return chosen
