"""Feast, set up to serve exactly the values aimesh serves: a generated feature repo, one Parquet offline
source per view written from aimesh's values, ``feast apply`` + ``feast materialize``, then ``feast serve``.

Every Feast command runs with the benchmark's own Feast virtualenv (``feast_env``). The repo mirrors
aimesh's definitions: one Feast entity ``card`` (join key ``card_id``), one feature view per aimesh view
with the same feature names, and the feature service ``bench_50`` over them. Column types follow the
values aimesh returned (double -> Float64, int64 -> Int64, string -> String); a MISSING value is a null.

``feast serve`` is started with ``--no-access-log`` and ``--max-requests 0`` (its default recycles the
worker every 1,000 requests, which would put restarts into the timed cells), one worker like aimesh's
one process.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from aimesh.devstack.process import spawn, stop
from bench.feature.feast_env import feast_cli
from bench.ingest.contenders import free_port

ENTITY = "card"
JOIN_KEY = "card_id"
SERVICE = "bench_50"
ARROW_TYPES = {"double": pa.float64(), "int64": pa.int64(), "string": pa.string(), "bool": pa.bool_()}
FEAST_TYPES = {"double": "Float64", "int64": "Int64", "string": "String", "bool": "Bool"}


class FeastError(RuntimeError):
    """A Feast command failed; the message quotes its output."""


@dataclass(frozen=True, slots=True)
class Column:
    """One feature: aimesh reference ``view:name`` and its value kind (``double``, ``int64``, ``string``, ``bool``)."""

    view: str
    name: str
    kind: str

    @classmethod
    def of(cls, reference: str, kind: str, views: Mapping[str, str]) -> Column:
        """``reference`` is ``view:name`` or a bare feature name, whose view ``views`` gives."""
        view, _, name = reference.rpartition(":")
        return cls(view or views[name], name, kind)


def views_by_feature(definitions: Path) -> dict[str, str]:
    """Feature name -> view name of an aimesh definitions YAML (feature names are unique in the benchmark's)."""
    document = yaml.safe_load(definitions.read_text(encoding="utf-8"))
    return {feature["name"]: view["name"] for view in document["feature_views"] for feature in view["features"]}


def write_repo(
    repo: Path,
    columns: Sequence[Column],
    values: Mapping[str, Sequence[object]],
    *,
    as_of: datetime,
    online_store: Mapping[str, str],
) -> None:
    """Write ``feature_store.yaml``, ``features.py`` and one Parquet file per view under ``repo``.

    ``values`` maps a card id to its values in ``columns`` order (None = missing); every row gets the
    event timestamp ``as_of``.
    """
    data = repo / "data"
    data.mkdir(parents=True, exist_ok=True)
    store_lines = "\n".join(f"  {key}: {value}" for key, value in online_store.items())
    (repo / "feature_store.yaml").write_text(
        "project: aimesh_bench\n"
        f"registry: {data / 'registry.db'}\n"
        "provider: local\n"
        f"online_store:\n{store_lines}\n"
        "offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    views = sorted({c.view for c in columns})
    cards = sorted(values)
    for view in views:
        indexed = [(i, c) for i, c in enumerate(columns) if c.view == view]
        table = pa.table(
            {
                JOIN_KEY: pa.array(cards, pa.string()),
                "event_timestamp": pa.array([as_of] * len(cards), pa.timestamp("us", tz="UTC")),
                **{c.name: pa.array([values[card][i] for card in cards], ARROW_TYPES[c.kind]) for i, c in indexed},
            }
        )
        pq.write_table(table, data / f"{view}.parquet")
    (repo / "features.py").write_text(_features_py(data, views, columns))


def _features_py(data: Path, views: Sequence[str], columns: Sequence[Column]) -> str:
    lines = [
        "from datetime import timedelta",
        "",
        "from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType",
        "from feast.types import Bool, Float64, Int64, String",
        "",
        f"card = Entity(name={ENTITY!r}, join_keys=[{JOIN_KEY!r}], value_type=ValueType.STRING)",
        "",
    ]
    for view in views:
        fields = ", ".join(f"Field(name={c.name!r}, dtype={FEAST_TYPES[c.kind]})" for c in columns if c.view == view)
        lines += [
            f"{view} = FeatureView(",
            f"    name={view!r},",
            "    entities=[card],",
            "    ttl=timedelta(days=3650),",
            f"    schema=[{fields}],",
            f"    source=FileSource(path={str(data / f'{view}.parquet')!r}, timestamp_field='event_timestamp'),",
            "    online=True,",
            ")",
            "",
        ]
    lines.append(f"{SERVICE} = FeatureService(name={SERVICE!r}, features=[{', '.join(views)}])")
    return "\n".join(lines) + "\n"


def apply_and_materialize(repo: Path, *, as_of: datetime) -> None:
    """``feast apply`` then ``feast materialize`` over (as_of - 1 day, as_of + 1 s]; raises ``FeastError``."""
    cli = str(feast_cli())
    _feast([cli, "apply"], repo)
    start = (as_of - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (as_of + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    _feast([cli, "materialize", start, end], repo)


def _feast(command: list[str], repo: Path) -> None:
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise FeastError(f"{' '.join(command[1:])} in {repo} exited with {done.returncode}:\n{tail}")


@dataclass(slots=True)
class FeastServer:
    """``feast serve`` of ``repo`` on a free port; ``start`` returns at once, ``url`` is its base URL."""

    repo: Path
    port: int = 0

    @property
    def pidfile(self) -> Path:
        return self.repo / "serve.pid"

    @property
    def logfile(self) -> Path:
        return self.repo / "serve.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> int:
        """Spawn the server; returns its pid."""
        self.port = free_port()
        command = [str(feast_cli()), "serve", "-h", "127.0.0.1", "-p", str(self.port), "--no-access-log"]
        command += ["--workers", "1", "--max-requests", "0", "--registry_ttl_sec", "3600"]
        return int(spawn(command, pidfile=self.pidfile, logfile=self.logfile, cwd=self.repo).pid)

    def stop(self) -> None:
        stop(self.pidfile)


@dataclass(slots=True)
class RedisServer:
    """A private ``redis-server`` (no persistence) on a free port, when one is installed."""

    workdir: Path
    port: int = 0

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def pidfile(self) -> Path:
        return self.workdir / "redis.pid"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        spawn(command, pidfile=self.pidfile, logfile=self.workdir / "redis.log", cwd=self.workdir)

    def stop(self) -> None:
        stop(self.pidfile)
