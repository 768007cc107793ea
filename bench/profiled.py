"""``python -m bench.profiled MODULE``: run ``python -m MODULE`` (a service) under cProfile.

The benchmarks' ``--profile`` hook. With ``BENCH_PROFILE_OUT`` set, the stats are dumped there when the
module returns (the services drain on SIGTERM and return, so the stats cover the whole run); without
it the module runs unprofiled. Only the main thread (the event loop and what runs on it) is profiled:
work handed to worker threads (e.g. ingest's Parquet writes) is not in the stats.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import sys


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m bench.profiled MODULE")
    module = sys.argv.pop(1)
    out = os.environ.get("BENCH_PROFILE_OUT")
    if not out:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
