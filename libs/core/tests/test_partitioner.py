"""The producers' key partitioner places records exactly where aiokafka's (and the Java client's) does."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from aimesh.core.bus import key_partitioner


def test_keyed_records_land_on_the_default_partitioners_partition() -> None:
    rng = random.Random(7)
    default = DefaultPartitioner()
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for _ in range(500):
            key = rng.randbytes(rng.randint(1, 40))
            assert key_partitioner(key, partitions, partitions) == default(key, partitions, partitions)
            assert key_partitioner(key, partitions, partitions) == default(key, partitions, partitions), "cached"


def test_records_without_key_go_to_an_available_partition() -> None:
    assert {key_partitioner(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert key_partitioner(None, [0, 1, 2], []) in {0, 1, 2}
