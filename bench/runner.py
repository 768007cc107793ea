"""The command-line shell every benchmark shares: a work directory, the run, the tables, ``results.md``.

``run_benchmark`` runs ``bench(args, workdir, command)``, prints ``render(report)``, writes
``results_markdown(report)`` to ``args.results`` and removes the work directory unless ``args.keep``;
an exception of one of ``failures`` prints the reason, keeps the logs and returns 1.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")


def run_benchmark(
    name: str,
    argv: list[str],
    args: argparse.Namespace,
    bench: Callable[[argparse.Namespace, Path, str], Coroutine[Any, Any, R]],
    render: Callable[[R], str],
    results_markdown: Callable[[R], str],
    failures: tuple[type[BaseException], ...],
) -> int:
    """Run benchmark ``name`` (``python -m bench.<name>``); returns the process exit code."""
    command = " ".join([f"python -m bench.{name}", *argv])
    workdir = Path(tempfile.mkdtemp(prefix=f"aimesh-bench-{name}-"))
    try:
        report = asyncio.run(bench(args, workdir, command))
    except failures as exc:
        print(f"benchmark failed: {exc}\n(logs kept in {workdir})", file=sys.stderr)
        return 1
    print()
    print(render(report))
    args.results.write_text(results_markdown(report))
    print(f"\nwritten {args.results}")
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
