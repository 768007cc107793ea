"""Index lifecycle of the monitor's indices: rollover behind a write alias, retention per index (pure).

Append-only kinds (``ROLLED_KINDS``: predictions, logs, drift, deadletters) are written through
the write alias ``<prefix>-<kind>`` onto backing indices ``<prefix>-<kind>-000001``, ``-000002`` ...
Rollover aliases rather than data streams: the writers index with ``op_type=index`` and ``_id`` = the
event id, so a redelivered event overwrites its own document; a data stream accepts only
``op_type=create`` and answers a repeated id with a conflict, which would turn every redelivery into a
rejected document. Behind a write alias, a repeat overwrites as long as its first copy is in the
current write index; only a repeat that straddles a rollover (at most once per ``rollover_max_age``)
adds a second copy in the next index.

Alerts are not rolled over: an alert is updated in place by its id (resolve, acknowledge), which needs
the one index that holds it. Its retention deletes alerts raised more than ``retention_days`` ago.

Retention: a backing index is deleted once the index that followed it (its rollover) is older than the
retention, so no document is deleted before it is ``retention_days`` old. With Elasticsearch's ILM the
cluster does both (``ilm_policy``); without it (the integ-test-zip of the local stack) the monitor
rolls over and deletes on a timer (``aimesh.monitor.elastic.ElasticStore.enforce_lifecycle``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

ROLLED_KINDS = ("predictions", "logs", "drift", "deadletters")
"""Kinds written through a rollover write alias."""
DEFAULT_RETENTION_DAYS: Mapping[str, int] = {
    "predictions": 7,
    "logs": 7,
    "drift": 90,
    "alerts": 90,
    "deadletters": 30,
}
MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Retention in days per kind and the rollover conditions of the rolled kinds."""

    retention_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RETENTION_DAYS))
    rollover_max_age: str = "1d"
    rollover_max_primary_shard_size: str = "10gb"

    @property
    def rollover_conditions(self) -> dict[str, str]:
        """The ``_rollover`` conditions (either one rolls the write index over)."""
        return {"max_age": self.rollover_max_age, "max_primary_shard_size": self.rollover_max_primary_shard_size}


def backing_index(alias: str, generation: int = 1) -> str:
    """The ``generation``-th backing index of ``alias`` (``<alias>-000001``), the name rollover increments."""
    return f"{alias}-{generation:06d}"


def is_backing_index(alias: str, name: str) -> bool:
    """Whether ``name`` is one of ``alias``'s backing indices (``<alias>-`` and six digits)."""
    suffix = name.removeprefix(f"{alias}-")
    return suffix != name and len(suffix) == 6 and suffix.isdigit()


def ilm_policy(lifecycle: Lifecycle, kind: str) -> dict[str, Any]:
    """The ILM policy of a rolled ``kind``: hot phase rolls over, delete phase after the retention."""
    return {
        "phases": {
            "hot": {"min_age": "0ms", "actions": {"rollover": lifecycle.rollover_conditions}},
            "delete": {"min_age": f"{lifecycle.retention_days[kind]}d", "actions": {"delete": {}}},
        }
    }


def ilm_settings(alias: str) -> dict[str, str]:
    """Index settings that attach a backing index to its policy (named like the alias) and alias."""
    return {"index.lifecycle.name": alias, "index.lifecycle.rollover_alias": alias}


def expired_backing_indices(alias: str, created_ms: Mapping[str, int], now_ms: int, retention_days: int) -> list[str]:
    """Backing indices of ``alias`` whose successor was created more than ``retention_days`` before ``now_ms``.

    ``created_ms`` maps index names to their creation time (epoch milliseconds); names that are not
    backing indices of ``alias`` are ignored, and the newest backing index is never expired.
    """
    ordered = sorted(name for name in created_ms if is_backing_index(alias, name))
    cutoff = now_ms - retention_days * MS_PER_DAY
    return [name for name, successor in pairwise(ordered) if created_ms[successor] <= cutoff]
