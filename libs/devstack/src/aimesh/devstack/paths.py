"""Where the local stack keeps its state: one directory, `.aimesh/` at the repository root by default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def repo_root() -> Path:
    """The repository root: the nearest parent of this file that holds `proto/` and `deploy/`."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "proto").is_dir() and (parent / "deploy").is_dir():
            return parent
    return Path.cwd()


@dataclass(frozen=True)
class Paths:
    """Layout of the state directory.

    - ``home/run/<name>.pid``: PID file of each process the CLI started;
    - ``home/logs/<name>.log``: its stdout and stderr;
    - ``home/data/<name>/``: its data;
    - ``home/dist/``: unpacked distributions (Kafka jars, Elasticsearch, Triton backends).
    """

    home: Path
    repo: Path

    @classmethod
    def default(cls) -> Paths:
        repo = repo_root()
        home = Path(os.environ.get("AIMESH_HOME", repo / ".aimesh")).resolve()
        return cls(home=home, repo=repo)

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def dist(self) -> Path:
        return self.home / "dist"

    def data(self, name: str) -> Path:
        return self.home / "data" / name

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def ensure(self) -> None:
        for d in (self.run, self.logs, self.dist, self.home / "data"):
            d.mkdir(parents=True, exist_ok=True)
