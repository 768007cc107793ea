"""What `aimesh status` reads from a service's ``/metrics`` and ``/readyz``: consumer lag, stuck
partitions, the spool depth, and the dependencies readiness names as missing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

STUCK_AFTER_SECONDS = 30.0
"""A partition is reported stuck once its position has not advanced for this long while records wait
(``aimesh_consumer_partition_stalled_seconds``)."""


@dataclass(frozen=True)
class StuckPartition:
    """One partition whose position has not advanced for ``STUCK_AFTER_SECONDS`` while it has lag."""

    topic: str
    partition: str
    stalled_seconds: float
    lag: int
    attempts: int
    waiting_on_dependency: bool

    def describe(self) -> str:
        why = "waiting on a dependency" if self.waiting_on_dependency else f"{self.attempts} failed attempts"
        return f"{self.topic}/{self.partition} stuck {self.stalled_seconds:.0f}s, lag {self.lag} ({why})"


@dataclass(frozen=True)
class ConsumerReport:
    """The consumer state a service's ``/metrics`` shows (every sample of the process, all its consumers)."""

    lag: int | None = None
    """Records behind the partitions' ends, summed over the partitions; None when no consumer reports."""
    stuck: list[StuckPartition] = field(default_factory=list)
    spool_records: int | None = None
    """Records held in the local spool (``aimesh_spool_records``, summed); None when not exported."""

    def describe(self) -> str:
        parts = [f"lag {self.lag}" if self.lag is not None else "no consumer lag"]
        if self.spool_records is not None:
            parts.append(f"spool {self.spool_records}")
        parts.extend(s.describe() for s in self.stuck)
        return ", ".join(parts)


def consumer_report(metrics_text: str) -> ConsumerReport:
    """Parse the Prometheus text of ``/metrics``; raises ``ValueError`` when it is not Prometheus text."""
    per_partition: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    spool: float | None = None
    wanted = {
        "aimesh_consumer_lag",
        "aimesh_consumer_partition_stalled_seconds",
        "aimesh_consumer_retry_attempts",
        "aimesh_consumer_waiting_on_dependency",
    }
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in wanted:
                key = (sample.labels.get("topic", ""), sample.labels.get("partition", ""))
                per_partition[sample.name][key] = max(per_partition[sample.name].get(key, 0.0), sample.value)
            elif sample.name == "aimesh_spool_records":
                spool = (spool or 0.0) + sample.value
    lags = per_partition["aimesh_consumer_lag"]
    stuck = [
        StuckPartition(
            topic=topic,
            partition=partition,
            stalled_seconds=seconds,
            lag=int(lags.get((topic, partition), 0)),
            attempts=int(per_partition["aimesh_consumer_retry_attempts"].get((topic, partition), 0)),
            waiting_on_dependency=per_partition["aimesh_consumer_waiting_on_dependency"].get((topic, partition), 0) > 0,
        )
        for (topic, partition), seconds in sorted(per_partition["aimesh_consumer_partition_stalled_seconds"].items())
        if seconds >= STUCK_AFTER_SECONDS
    ]
    return ConsumerReport(
        lag=int(sum(lags.values())) if lags else None,
        stuck=stuck,
        spool_records=int(spool) if spool is not None else None,
    )
