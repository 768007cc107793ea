"""What the numbers were measured on: the machine, the broker and the exact software versions."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

from aimesh.devstack.kafka import Kafka
from aimesh.devstack.paths import Paths

PACKAGES = ("aiokafka", "aimesh-ingest", "aimesh-core", "orjson", "pyarrow", "protobuf", "psutil")


@dataclass(frozen=True, slots=True)
class Environment:
    cpu_model: str
    cores: int
    ram_gib: float
    kernel: str
    python: str
    kafka: str
    packages: dict[str, str]


def describe() -> Environment:
    """The machine (from /proc), Kafka's version (the installed broker jar) and the harness's package versions."""
    return Environment(
        cpu_model=_cpu_model(),
        cores=psutil.cpu_count(logical=True) or 0,
        ram_gib=_mem_total_kib() / 1024**2,
        kernel=platform.release(),
        python=platform.python_version(),
        kafka=Kafka(Paths.default()).installed_version() or "unknown",
        packages={name: _version(name) for name in PACKAGES},
    )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
