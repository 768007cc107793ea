"""Before any timing: Feast must serve the numbers aimesh serves, for the same cards.

Compares, for a sample of cards, every one of the 50 values Feast's ``/get-online-features`` returns with
aimesh's value at the as-of time that was materialised into Feast: the same missing values, the same
strings, numbers equal within 1e-9 (relative). Raises ``MismatchError`` naming the first differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import httpx
import orjson

from bench.feature.aimesh_side import ServedValues
from bench.feature.feast_side import JOIN_KEY, SERVICE


class MismatchError(RuntimeError):
    """Feast (or aimesh on another store) and aimesh disagree; the message lists up to ten differences."""


async def feast_values(url: str, cards: Sequence[str], features: Sequence[str]) -> dict[str, list[object]]:
    """Feast's values of ``features`` (aimesh references ``view:name``) per card; raises on a non-200 answer."""
    body = orjson.dumps({"feature_service": SERVICE, "entities": {JOIN_KEY: list(cards)}})
    async with httpx.AsyncClient(timeout=60.0) as client:
        response = await client.post(
            f"{url}/get-online-features", content=body, headers={"Content-Type": "application/json"}
        )
    response.raise_for_status()
    payload = orjson.loads(response.content)
    columns = {
        name: result["values"]
        for name, result in zip(payload["metadata"]["feature_names"], payload["results"], strict=True)
    }
    return {
        card: [columns[reference.rpartition(":")[2]][row] for reference in features] for row, card in enumerate(cards)
    }


def compare(aimesh: ServedValues, feast: dict[str, list[object]], *, other: str = "Feast") -> int:
    """The number of values compared; raises ``MismatchError`` naming ``other`` when any differs."""
    differences: list[str] = []
    compared = 0
    for card, theirs in feast.items():
        for reference, ours, value in zip(aimesh.features, aimesh.values[card], theirs, strict=True):
            compared += 1
            if not _same(ours, value):
                differences.append(f"{card} {reference}: aimesh {ours!r}, {other} {value!r}")
    if differences:
        shown = "\n".join(differences[:10])
        raise MismatchError(f"{len(differences)} of {compared} values differ:\n{shown}")
    return compared


def _same(ours: object, theirs: object) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if isinstance(ours, int | float) and isinstance(theirs, int | float) and not isinstance(ours, bool):
        return math.isclose(float(ours), float(theirs), rel_tol=1e-9, abs_tol=1e-12)
    return ours == theirs
