"""``--profile`` of the serving benchmarks: the inference process once more under ``bench/profiled.py``
(cProfile of its main thread, the event loop), one contender driven against it, its hot spots as text."""

from __future__ import annotations

import asyncio
import io
import pstats
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.feature.load import run_cell
from bench.serving.measure import Contender
from bench.serving.stack import InferenceProcess


async def profile_inference(
    profiled: InferenceProcess,
    first_answer: Callable[[str], Awaitable[None]],
    client: Callable[[str], Contender],
    picks: Sequence[Sequence[str]],
    *,
    concurrency: int,
    seconds: float,
    settle: Callable[[InferenceProcess], Awaitable[object]] | None = None,
    top: int = 40,
) -> str:
    """Start ``profiled`` (``profile_to`` set; the timed process stopped, so its ``home`` and credentials can
    be reused), wait for ``first_answer(target)``, drive ``client(target)`` at ``concurrency`` for ``seconds``
    (untimed for the tables), then ``settle(profiled)`` when given (e.g. wait for background work to finish),
    stop it; returns a heading and its ``top`` functions by own and by cumulative
    time."""
    assert profiled.profile_to is not None
    profiled.start()
    try:
        await asyncio.to_thread(profiled.wait_ready, 180)
        await first_answer(profiled.target)
        contender = client(profiled.target)
        cell = await run_cell(contender, picks, concurrency=concurrency, seconds=seconds, warmup_s=0)
        await contender.close()
        if settle is not None:
            await settle(profiled)
    finally:
        await asyncio.to_thread(profiled.stop)
    text = io.StringIO()
    rows = f" of {cell.entities} rows" if cell.entities > 1 else ""
    text.write(
        f"cProfile of the inference service's main thread, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {contender.name} "
        f"at concurrency {concurrency} for {seconds:.0f} s under the profiler: {cell.requests:,} requests{rows}, "
        f"p50 {cell.p50_ms:.2f} ms\n"
    )
    for order in ("tottime", "cumulative"):
        text.write(f"\n=== top {top} by {order} ===\n")
        pstats.Stats(str(profiled.profile_to), stream=text).strip_dirs().sort_stats(order).print_stats(top)
    return text.getvalue()


def cumulative_seconds(stats_file: Path, functions: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """Cumulative seconds of each ``(file name, function name)`` in a cProfile stats file (summed over the
    functions of that name in files of that base name; 0.0 when absent). A coroutine's time counts each of
    its resumptions, so it is the main thread's time spent in it, awaits excluded."""
    found = dict.fromkeys(functions, 0.0)
    for (filename, _, function), (_, _, _, cumulative, _) in pstats.Stats(str(stats_file)).stats.items():  # type: ignore[attr-defined]
        key = (Path(filename).name, function)
        if key in found:
            found[key] += cumulative
    return found
