"""Training cost of ``sequence_next_item``: seconds per epoch and peak memory for synthetic sequential data.

```bash
.venv/bin/python -m bench.recommend.training                        # 1,000,000 interactions, 2 epochs
.venv/bin/python -m bench.recommend.training --interactions 100000  # smaller
```

What one run does: builds the ``Dataset`` a next-item run would build (``services/training/tests/
sequential.py``: ``--entities`` walks over ``--items`` items, ``interactions / entities`` steps each; each
step after the first is a row whose history is the items before it, encoded by the real signature
codec, leave-last-out split), then calls the trainer directly (``TRAINER.fit``, no services, no Kafka)
with the default parameters except ``--epochs``, then the ranking evaluation (``next_item.evaluate``).
Measured: wall seconds of the data build, of each epoch (between ``progress`` calls), of the evaluation;
peak RSS of this process (psutil, sampled every 0.05 s, per phase, and ``ru_maxrss``); on CUDA,
``torch.cuda.max_memory_allocated`` of the training. Prints a table and writes it to ``results.md`` beside
this file (``--results``), with the machine and its load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import psutil
import torch

from aimesh.training import next_item
from aimesh.training.trainers.sequence_next_item import TRAINER

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _sequential() -> ModuleType:
    path = ROOT / "services" / "training" / "tests" / "sequential.py"
    spec = importlib.util.spec_from_file_location("bench_sequential_data", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class PeakRss:
    """Samples this process's RSS every ``interval`` s in a thread; ``phase()`` resets the peak per phase."""

    def __init__(self, interval: float = 0.05) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    @contextmanager
    def phase(self, into: dict[str, float], name: str) -> Iterator[None]:
        self._peak = self._process.memory_info().rss
        started = time.perf_counter()
        yield
        into[f"{name}_s"] = time.perf_counter() - started
        into[f"{name}_peak_rss_mib"] = max(self._peak, self._process.memory_info().rss) / 2**20

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def run(args: argparse.Namespace) -> tuple[dict[str, float], list[float], dict[str, float]]:
    sequential = _sequential()
    sampler = PeakRss()
    numbers: dict[str, float] = {}
    try:
        per_entity = max(2, args.interactions // args.entities)
        with sampler.phase(numbers, "data"):
            data = sequential.dataset(args.entities, args.items, per_entity, max_len=args.max_len, seed=args.seed)
        numbers["train_rows"] = float(len(data.y_train))
        numbers["eval_rows"] = float(len(data.y_eval))
        numbers["interactions"] = float(args.entities * per_entity)
        numbers["vocabulary"] = float(len(data.inputs[0].vocabulary))
        params = {**TRAINER.defaults, "epochs": str(args.epochs), "max_len": str(args.max_len)}
        ticks: list[float] = []
        losses: list[float] = []

        def progress(epoch: int, loss: float) -> None:
            ticks.append(time.perf_counter())
            losses.append(loss)
            print(f"epoch {epoch}: loss {loss:.4f}, {ticks[-1] - (ticks[-2] if len(ticks) > 1 else start):.1f}s")

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with sampler.phase(numbers, "train"):
            fitted = TRAINER.fit(data, params, threads=args.threads, progress=progress)
        if torch.cuda.is_available():
            numbers["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        epochs = [b - a for a, b in zip([start, *ticks[:-1]], ticks, strict=True)]
        numbers["final_loss"] = losses[-1]
        with sampler.phase(numbers, "evaluate"):
            metrics, _ = next_item.evaluate(fitted, data, seed=1)
        numbers["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return numbers, epochs, metrics
    finally:
        sampler.close()


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU training)"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{cpu}, {psutil.cpu_count()} logical cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; GPU: {gpu}; "
        f"load average at the end {load}; torch {torch.__version__}, Python {platform.python_version()}"
    )


def table(args: argparse.Namespace, numbers: dict[str, float], epochs: list[float], metrics: dict[str, float]) -> str:
    device = "cuda" if torch.cuda.is_available() else f"cpu ({args.threads} threads)"
    rows = [
        ("interactions", f"{numbers['interactions']:,.0f} ({args.entities:,} entities, {args.items:,} items)"),
        ("rows train / eval", f"{numbers['train_rows']:,.0f} / {numbers['eval_rows']:,.0f}"),
        ("vocabulary", f"{numbers['vocabulary']:,.0f}"),
        ("device", device),
        (
            "params",
            f"defaults (embedding_dim 64, hidden 128, batch_size 512), epochs {args.epochs}, max_len {args.max_len}",
        ),
        (
            "data build (generate + encode)",
            f"{numbers['data_s']:.1f} s, peak RSS {numbers['data_peak_rss_mib']:,.0f} MiB",
        ),
        ("seconds per epoch", ", ".join(f"{e:.1f}" for e in epochs) + f" (mean {sum(epochs) / len(epochs):.1f})"),
        ("rows per second (training)", f"{numbers['train_rows'] * len(epochs) / sum(epochs):,.0f}"),
        ("training peak RSS", f"{numbers['train_peak_rss_mib']:,.0f} MiB"),
        (
            "CUDA max allocated",
            f"{numbers['cuda_max_allocated_mib']:,.0f} MiB" if "cuda_max_allocated_mib" in numbers else "n/a (no CUDA)",
        ),
        ("evaluation", f"{numbers['evaluate_s']:.1f} s, peak RSS {numbers['evaluate_peak_rss_mib']:,.0f} MiB"),
        ("process max RSS (ru_maxrss)", f"{numbers['ru_maxrss_mib']:,.0f} MiB"),
        ("final training loss", f"{numbers['final_loss']:.4f}"),
        ("hr@10 / popularity", f"{metrics['hr@10']:.3f} / {metrics['popularity_hr@10']:.3f}"),
        ("hr@10_full / popularity", f"{metrics['hr@10_full']:.3f} / {metrics['popularity_hr@10_full']:.3f}"),
        ("ndcg@10 / popularity", f"{metrics['ndcg@10']:.3f} / {metrics['popularity_ndcg@10']:.3f}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recommend.training", description=__doc__.split("\n")[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the service default: 1)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--results", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    numbers, epochs, metrics = run(args)
    text = table(args, numbers, epochs, metrics)
    print(text)
    command = " ".join(["python -m bench.recommend.training", *argv])
    args.results.write_text(
        f"# sequence_next_item training cost\n\n`{command}`\n\n{text}\n\nMachine: {machine()}\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
