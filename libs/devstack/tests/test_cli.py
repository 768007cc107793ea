"""The CLI's contract: selection, order, one-line errors, logs; no server is started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.console import Console

from aimesh.devstack import cli
from aimesh.devstack.component import Component, Health
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.stack import Stack


class Fake(Component):
    """Records the calls the stack makes, in a shared journal."""

    def __init__(self, paths: Paths, name: str, journal: list[str]) -> None:
        super().__init__(paths)
        self.name = name
        self.journal = journal

    def install(self) -> None:
        self.journal.append(f"install {self.name}")

    def start(self) -> None:
        self.journal.append(f"start {self.name}")

    def wait_ready(self, timeout: float) -> None:
        self.journal.append(f"ready {self.name}")

    def health(self) -> Health:
        return Health(self.name, False, False, None, "-")

    def stop(self) -> bool:
        self.journal.append(f"stop {self.name}")
        return True


def _stack(paths: Paths, journal: list[str]) -> Stack:
    infra = tuple(Fake(paths, n, journal) for n in ("kafka", "elasticsearch", "postgres", "triton"))
    svcs = tuple(Fake(paths, n, journal) for n in ("ingest", "monitor"))
    return Stack(infra, svcs, Console(quiet=True))


def test_up_starts_infra_before_waiting_then_services(paths: Paths) -> None:
    journal: list[str] = []
    stack = _stack(paths, journal)
    stack.up(stack.select(), timeout=10)
    starts = [e for e in journal if not e.startswith("install")]
    assert starts == [
        "start kafka",
        "start elasticsearch",
        "start postgres",
        "start triton",
        "ready kafka",
        "ready elasticsearch",
        "ready postgres",
        "ready triton",
        "start ingest",
        "start monitor",
        "ready ingest",
        "ready monitor",
    ]


def test_down_stops_services_first(paths: Paths) -> None:
    journal: list[str] = []
    stack = _stack(paths, journal)
    stack.down(stack.select())
    assert journal == [f"stop {n}" for n in ("monitor", "ingest", "triton", "postgres", "elasticsearch", "kafka")]


def test_select(paths: Paths) -> None:
    stack = _stack(paths, [])
    assert [c.name for c in stack.select(infra_only=True)] == ["kafka", "elasticsearch", "postgres", "triton"]
    assert [c.name for c in stack.select(["monitor", "kafka"])] == ["kafka", "monitor"]
    with pytest.raises(DevstackError, match="unknown part"):
        stack.select(["kafak"])


def _main(monkeypatch: pytest.MonkeyPatch, home: Path, *argv: str) -> int:
    monkeypatch.setenv("AIMESH_HOME", str(home))
    monkeypatch.setattr(sys, "argv", ["aimesh", *argv])
    with pytest.raises(SystemExit) as info:
        cli.main()
    return int(info.value.code or 0)


def test_error_is_one_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(monkeypatch, tmp_path, "up", "--only", "nope") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown part(s): nope" in err and "Fix:" in err
    assert "Traceback" not in err


def test_logs_prints_the_last_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "kafka.log").write_text("".join(f"line {i}\n" for i in range(100)))
    assert _main(monkeypatch, tmp_path, "logs", "kafka", "-n", "3") == 0
    assert capsys.readouterr().out == "line 97\nline 98\nline 99\n"
    assert _main(monkeypatch, tmp_path, "logs", "zookeeper") == 1
    assert "use one of: kafka" in capsys.readouterr().err
