"""The model reconciler and the ``models`` readiness check against a fake Triton (explicit model control).

The fake keeps what is loaded; ``load_model`` makes the versions its "repository" holds ready (or fails
as told); ``alive`` False makes every call fail as an unreachable server does. The clock is the test's.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import Unavailable
from aimesh.core.events import Event
from aimesh.core.model_catalog import ModelCatalog
from aimesh.inference import reconciler as module
from aimesh.inference.reconciler import ModelReconciler
from aimesh.inference.routing import RoutedVersion, routed_versions


class FakeTriton:
    def __init__(self) -> None:
        self.alive = True
        self.repository: dict[str, set[int]] = {}
        """What a load of each model makes ready."""
        self.loaded: dict[str, set[int]] = {}
        self.load_errors: dict[str, str] = {}
        self.loads: list[str] = []
        self.die_during_load = False
        """The next load kills the server (a restart while Triton loads a model)."""

    async def is_model_ready(self, model: str, version: int, *, timeout_s: float) -> bool:
        if not self.alive:
            raise Unavailable("Triton at fake: failed to connect to all addresses")
        versions = self.loaded.get(model, set())
        return bool(versions) if version == 0 else version in versions

    async def load_model(self, model: str, *, timeout_s: float) -> None:
        if not self.alive:
            raise Unavailable("Triton at fake: failed to connect to all addresses")
        self.loads.append(model)
        if self.die_during_load:
            self.die_during_load = False
            self.alive = False
            raise Unavailable("Triton at fake could not load: Socket closed")
        if model in self.load_errors:
            raise Unavailable(f"Triton at fake could not load {model!r}: {self.load_errors[model]}")
        self.loaded[model] = set(self.repository.get(model, set()))

    async def check_live(self) -> None:
        if not self.alive:
            raise Unavailable("Triton at fake is not live")

    def restart(self) -> None:
        """A Triton restart in explicit model-control mode: nothing stays loaded."""
        self.loaded.clear()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registered(model: str, version: int, triton: str, triton_version: int) -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=model,
        version=version,
        triton_model_name=triton,
        triton_model_version=triton_version,
        features=["v:a"],
    )


def alias(model: str, name: str, version: int) -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name=model,
        version=version,
        alias_change=training_pb2.AliasChange(model_name=model, alias=name, new_version=version),
    )


@pytest.fixture
def catalog() -> ModelCatalog:
    c = ModelCatalog()
    for event in (
        registered("risk", 1, "risk_tr", 1),
        registered("risk", 2, "risk_tr", 2),
        registered("risk", 3, "risk_tr", 3),
        alias("risk", "champion", 3),
        alias("risk", "challenger", 2),
    ):
        c.apply(event)
    return c


@pytest.fixture
def triton() -> FakeTriton:
    fake = FakeTriton()
    fake.repository["risk_tr"] = {2, 3}
    return fake


def make(catalog: ModelCatalog, triton: FakeTriton, clock: Clock | None = None, **kw: object) -> ModelReconciler:
    return ModelReconciler(catalog, triton, interval_s=2.0, backoff_max_s=16.0, clock=clock or Clock(), **kw)  # type: ignore[arg-type]


def test_routed_versions_are_every_alias_target_once_with_its_routes(catalog: ModelCatalog) -> None:
    catalog.apply(registered("other", 1, "risk_tr", 3))
    catalog.apply(alias("other", "champion", 1))
    catalog.apply(alias("risk", "ghost", 9))  # not registered: nothing to load
    assert routed_versions(catalog) == [
        RoutedVersion("risk_tr", 2, ("risk version 2 (alias challenger)",)),
        RoutedVersion("risk_tr", 3, ("other version 1 (alias champion)", "risk version 3 (alias champion)")),
    ]
    assert "version 1 (alias champion)" not in str(routed_versions(ModelCatalog()))


async def test_a_pass_loads_what_is_routed_and_not_ready_and_nothing_when_all_is_ready(
    catalog: ModelCatalog, triton: FakeTriton
) -> None:
    rec = make(catalog, triton)
    first = await rec.reconcile()
    assert triton.loads == ["risk_tr"], "one load per Triton model, however many of its versions are routed"
    assert first.loaded == ("risk_tr",) and not first.unready
    assert len(first.ready) == 2
    await rec.reconcile()
    assert triton.loads == ["risk_tr"], "nothing is loaded when every routed version is ready"
    assert module.ROUTED_UNLOADED._value.get() == 0


async def test_after_a_triton_restart_the_next_pass_loads_again(catalog: ModelCatalog, triton: FakeTriton) -> None:
    rec = make(catalog, triton)
    await rec.reconcile()
    triton.alive = False
    down = await rec.reconcile()
    assert len(down.unready) == 2 and not down.failed, "an unreachable Triton is not a load failure"
    assert module.ROUTED_UNLOADED._value.get() == 2
    triton.alive = True
    triton.restart()
    back = await rec.reconcile()
    assert back.loaded == ("risk_tr",) and not back.unready
    assert triton.loads == ["risk_tr", "risk_tr"]


async def test_failed_loads_back_off_per_model_doubling_up_to_the_maximum(
    catalog: ModelCatalog, triton: FakeTriton
) -> None:
    catalog.apply(registered("fine", 1, "fine_tr", 1))
    catalog.apply(alias("fine", "champion", 1))
    triton.repository["fine_tr"] = {1}
    triton.load_errors["risk_tr"] = "model.py: SyntaxError"
    clock = Clock()
    rec = make(catalog, triton, clock)
    failures_before = module.MODEL_LOAD_FAILURES.labels("risk_tr")._value.get()
    attempts: list[float] = []
    for _ in range(80):  # 80 passes, 1 s apart
        before = len(triton.loads)
        result = await rec.reconcile()
        if "risk_tr" in triton.loads[before:]:
            attempts.append(clock.now - 1000.0)
        clock.now += 1.0
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[:4] == [2.0, 4.0, 8.0, 16.0] and set(gaps[4:]) == {16.0}, gaps
    assert module.MODEL_LOAD_FAILURES.labels("risk_tr")._value.get() - failures_before == len(attempts)
    assert triton.loads.count("fine_tr") == 1, "another model's failures do not hold this one back"
    assert "SyntaxError" in result.unready[next(iter(result.unready))]
    del triton.load_errors["risk_tr"]
    clock.now += 16.0
    assert not (await rec.reconcile()).unready


async def test_a_load_that_leaves_a_routed_version_unready_is_a_failure(
    catalog: ModelCatalog, triton: FakeTriton
) -> None:
    triton.repository["risk_tr"] = {3}  # version 2 fell out of the version policy
    rec = make(catalog, triton)
    result = await rec.reconcile()
    assert result.failed == ("risk_tr",)
    assert [rv.triton_version for rv in result.unready] == [2]
    assert "still not ready" in next(iter(result.unready.values()))
    await rec.check_ready()  # one routed version serves: ready


async def test_readiness_needs_one_routed_version_loaded_and_names_the_missing_ones(
    catalog: ModelCatalog, triton: FakeTriton
) -> None:
    rec = make(catalog, triton)
    with pytest.raises(Unavailable) as missing:
        await rec.check_ready()
    text = str(missing.value)
    assert "risk version 3 (alias champion) -> Triton 'risk_tr' version 3 not loaded in Triton: not ready" in text
    assert "risk version 2 (alias challenger)" in text
    assert triton.loads == [], "the readiness check only looks, it does not load"
    await rec.reconcile()
    await rec.check_ready()
    triton.alive = False
    with pytest.raises(Unavailable, match=r"version 3 not loaded in Triton: Triton did not answer: .*connect"):
        await rec.check_ready()


async def test_readiness_with_no_routed_version_follows_the_setting(triton: FakeTriton) -> None:
    catalog = ModelCatalog()
    await make(catalog, triton).check_ready()
    with pytest.raises(Unavailable, match="no model version is routed yet"):
        await make(catalog, triton, ready_without_routes=False).check_ready()
    triton.alive = False
    with pytest.raises(Unavailable, match="not live"):
        await make(catalog, triton).check_ready()


async def test_run_reacts_to_a_catalog_change_at_once_and_stops(triton: FakeTriton) -> None:
    catalog = ModelCatalog()
    rec = ModelReconciler(catalog, triton, interval_s=60.0, backoff_max_s=60.0)
    task = asyncio.create_task(rec.run())
    await asyncio.sleep(0.05)
    triton.repository["new_tr"] = {1}
    for event in (registered("new", 1, "new_tr", 1), alias("new", "champion", 1)):
        await rec.handle(Event("t", 0, 0, b"new", event.SerializeToString(), (), 0))
    for _ in range(100):
        if triton.loads:
            break
        await asyncio.sleep(0.01)
    assert triton.loads == ["new_tr"], "a routing change is reconciled at once, not after the 60 s interval"
    await rec.stop()
    await asyncio.wait_for(task, 1.0)


async def test_a_model_backed_off_before_a_triton_restart_is_loaded_at_the_first_pass_after_it(
    catalog: ModelCatalog, triton: FakeTriton
) -> None:
    """The slow path the fault suite hit: backoffs earned before the restart delayed the reload after it."""
    triton.load_errors["risk_tr"] = "repository not mounted yet"
    clock = Clock()
    rec = make(catalog, triton, clock)
    for _ in range(3):  # attempts at 0, 2 and 6 s, each when the last one's backoff ended
        if "risk_tr" in rec._backoff:
            clock.now = rec._backoff["risk_tr"].next_attempt
        await rec.reconcile()
    assert rec._backoff["risk_tr"].failures == 3
    assert rec._backoff["risk_tr"].next_attempt - clock.now == 8.0
    del triton.load_errors["risk_tr"]
    clock.now += 0.5
    triton.alive = False
    await rec.reconcile()
    triton.alive = True
    triton.restart()
    clock.now += 0.5
    back = await rec.reconcile()
    assert back.loaded == ("risk_tr",) and not back.unready, "loaded at once, not 7 s later when the backoff ends"


async def test_triton_dying_during_a_load_is_not_a_load_failure(catalog: ModelCatalog, triton: FakeTriton) -> None:
    clock = Clock()
    rec = make(catalog, triton, clock)
    failures_before = module.MODEL_LOAD_FAILURES.labels("risk_tr")._value.get()
    triton.die_during_load = True
    during = await rec.reconcile()
    assert not during.failed and not during.loaded
    assert "Triton did not answer" in next(iter(during.unready.values()))
    assert module.MODEL_LOAD_FAILURES.labels("risk_tr")._value.get() == failures_before
    triton.alive = True
    triton.restart()
    clock.now += 0.5
    assert (await rec.reconcile()).loaded == ("risk_tr",), "no backoff: the load is retried at the next pass"


async def test_run_probes_every_half_second_while_triton_is_silent(catalog: ModelCatalog, triton: FakeTriton) -> None:
    triton.alive = False
    rec = ModelReconciler(catalog, triton, interval_s=60.0, backoff_max_s=60.0, unreachable_interval_s=0.1)
    task = asyncio.create_task(rec.run())
    try:
        await asyncio.sleep(0.05)
        assert triton.loads == []
        triton.alive = True
        back = asyncio.get_running_loop().time()
        while not triton.loads:
            assert asyncio.get_running_loop().time() - back < 1.0, "still not loaded 1 s after Triton answered"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.25)
        assert triton.loads == ["risk_tr"], "once loaded, passes are every interval_s again"
    finally:
        await rec.stop()
        await asyncio.wait_for(task, 1.0)
