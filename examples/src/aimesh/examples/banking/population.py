"""The bank's customers, cards and merchants, drawn once from the generator's seeded RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass

MERCHANT_CATEGORIES = (
    "grocery",
    "fuel",
    "restaurant",
    "travel",
    "electronics",
    "fashion",
    "gaming",
    "crypto",
    "gift_cards",
    "pharmacy",
)
RISKY_CATEGORIES = frozenset({"gaming", "crypto", "gift_cards", "electronics"})
CATEGORY_WEIGHTS = (30, 12, 18, 4, 6, 10, 4, 2, 2, 12)
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "BE", "AT", "GB", "US", "PL")
COUNTRY_WEIGHTS = (25, 18, 12, 10, 10, 6, 5, 8, 4, 2)
CURRENCY_BY_COUNTRY = {"GB": "GBP", "US": "USD"}


@dataclass(frozen=True, slots=True)
class Card:
    card_id: str
    card_number: str


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    home_country: str
    cards: tuple[Card, ...]
    devices: tuple[str, ...]
    typical_amount: float


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str
    category: str
    online: bool


@dataclass(frozen=True, slots=True)
class Population:
    customers: tuple[Customer, ...]
    merchants: tuple[Merchant, ...]
    risky_merchants: tuple[Merchant, ...]

    @property
    def card_numbers(self) -> frozenset[str]:
        return frozenset(card.card_number for c in self.customers for card in c.cards)


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit that makes ``digits + check`` valid."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def device_id(rng: random.Random) -> str:
    return f"dev-{rng.getrandbits(48):012x}"


def _card_number(rng: random.Random, taken: set[str]) -> str:
    while True:
        body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
        number = body + luhn_check_digit(body)
        if number not in taken:
            taken.add(number)
            return number


def build_population(rng: random.Random, *, customers: int, merchants: int, namespace: str = "") -> Population:
    """``customers`` customers (1-2 cards with unique Luhn-valid 16-digit numbers, 1-2 devices) and merchants.

    ``namespace`` prefixes card and customer ids, so populations of different seeds never share an id.
    """
    taken: set[str] = set()
    people = []
    card_seq = 0
    for i in range(customers):
        cards = []
        for _ in range(1 if rng.random() < 0.7 else 2):
            card_seq += 1
            cards.append(Card(card_id=f"card-{namespace}{card_seq:08d}", card_number=_card_number(rng, taken)))
        people.append(
            Customer(
                customer_id=f"cust-{namespace}{i + 1:08d}",
                home_country=rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
                cards=tuple(cards),
                devices=tuple(device_id(rng) for _ in range(1 if rng.random() < 0.6 else 2)),
                typical_amount=round(rng.lognormvariate(3.3, 0.6), 2),
            )
        )
    shops = tuple(
        Merchant(
            merchant_id=f"merch-{i + 1:06d}",
            category=(category := rng.choices(MERCHANT_CATEGORIES, CATEGORY_WEIGHTS)[0]),
            online=category in RISKY_CATEGORIES or rng.random() < 0.3,
        )
        for i in range(merchants)
    )
    risky = tuple(m for m in shops if m.category in RISKY_CATEGORIES)
    if not risky:
        risky = (Merchant(merchant_id=f"merch-{merchants + 1:06d}", category="gift_cards", online=True),)
        shops = (*shops, *risky)
    return Population(customers=tuple(people), merchants=shops, risky_merchants=risky)
