"""``python -m bench.feature.profiled``: ``python -m aimesh.feature`` under cProfile (``--profile``'s hook).

The profile goes to the file named by ``BENCH_PROFILE_OUT`` when the service exits (it drains on
SIGTERM and returns, so the stats cover the whole run). Only the main thread (the event loop and the
gRPC handlers on it) is profiled; work handed to worker threads is not in the stats.
"""

from __future__ import annotations

import cProfile
import os
import runpy

SERVICE_MODULE = "aimesh.feature"


def main() -> None:
    out = os.environ.get("BENCH_PROFILE_OUT")
    if not out:
        runpy.run_module(SERVICE_MODULE, run_name="__main__", alter_sys=True)
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(runpy.run_module, SERVICE_MODULE, run_name="__main__", alter_sys=True)
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
