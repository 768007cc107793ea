"""The fault suite's private stack (session scoped) and the supervisor step between scenarios.

``fault_stack`` starts a Kafka, an Elasticsearch and a Triton of the suite's own on free ports (never the
shared ones other tests use), the five services against them, applies the banking pack and trains one
model so ``Score`` routes to a champion. ``healthy_stack`` runs before each test: it waits until every
service is ready and ``Score`` succeeds, and only when that fails within ``HEAL_WAIT_S`` restarts what is
down (printed), so one scenario's damage does not fail the next.

Run with ``make test-faults`` (``pytest tests/faults -m faults``). Load sizes: ``FAULTS_RATE`` (upstream
events/s, default 120) and ``FAULTS_SCORE_RATE`` (Score calls/s, default 12).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from aimesh.api.inference.v1 import inference_pb2_grpc
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import read_pid
from tests.faults.load import make_cards, score_request
from tests.faults.stack import FaultStack, build_stack, start_stack, train_champion

HEAL_WAIT_S = 45.0
ORDER = ("test_outages.py", "test_kill9.py", "test_hostile.py", "test_fuzz.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Highest-value scenarios first: outages, kill -9, the hostile corpus, then the fuzz."""

    def rank(item: pytest.Item) -> int:
        name = Path(str(item.fspath)).name
        return ORDER.index(name) if "faults" in Path(str(item.fspath)).parts and name in ORDER else -1

    indexed = sorted(enumerate(items), key=lambda pair: (rank(pair[1]), pair[0]))
    items[:] = [item for _, item in indexed]


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[FaultStack]:
    """The private stack. Its home is ``.aimesh/faults/<run>`` (pytest's temporary directories are private
    to root, and Elasticsearch runs as its own user); removed afterwards unless ``FAULTS_KEEP`` is set."""
    parent = Paths.default().home / "faults"
    parent.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="run-", dir=parent))
    stack = build_stack(home)
    t0 = time.monotonic()
    try:
        start_stack(stack, stack.note)
        stack.training = train_champion(stack, stack.note)
        stack.note(f"stack ready with a champion in {time.monotonic() - t0:.0f}s (home {stack.paths.home})")
        yield stack
    finally:
        stack.stop_all()
        if not os.environ.get("FAULTS_KEEP"):
            shutil.rmtree(home, ignore_errors=True)


def score_ok(stack: FaultStack) -> str | None:
    """None when one Score call succeeds, else why not."""
    card = make_cards("heal", 1, random.Random(1))[0]
    with stack.sync_channel("inference") as channel:
        try:
            inference_pb2_grpc.InferenceServiceStub(channel).Score(
                score_request(f"heal-{time.time_ns()}", card, random.Random(2)),
                timeout=2.0,
                metadata=stack.metadata or None,
            )
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    return None


def unready(stack: FaultStack) -> dict[str, str]:
    out = {}
    for name in stack.services:
        try:
            response = httpx.get(f"{stack.admin(name)}/readyz", timeout=3.0)
            if response.status_code != 200:
                out[name] = response.text[:200]
        except httpx.HTTPError as exc:
            out[name] = f"no answer ({exc})"
    return out


@pytest.fixture(autouse=True)
def healthy_stack(request: pytest.FixtureRequest) -> None:
    """Before each fault test: every service ready and Score OK, restarting what is broken if need be."""
    if "fault_stack" not in request.fixturenames:
        return
    stack: FaultStack = request.getfixturevalue("fault_stack")
    started = stack.ensure_infra()
    if started:
        stack.note(f"supervisor: restarted private {', '.join(started)}")
    deadline = time.monotonic() + HEAL_WAIT_S
    problems: dict[str, str] = {}
    while time.monotonic() < deadline:
        problems = unready(stack)
        why = score_ok(stack) if not problems else "services not ready"
        if not problems and why is None:
            return
        if why:
            problems["score"] = why
        time.sleep(2.0)
    stack.note(f"supervisor: not healthy after {HEAL_WAIT_S:.0f}s ({problems}); restarting the services")
    for name in stack.services:
        if name in problems or "score" in problems or read_pid(stack.services[name].pidfile) is None:
            stack.kill(name)
            stack.restart(name)
    why = score_ok(stack)
    stack.note(f"supervisor: after restart Score {'OK' if why is None else why}")
