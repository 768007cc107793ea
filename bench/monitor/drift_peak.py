"""A process's own peak resident memory, for the drift contenders to report (standard library only).

``ru_maxrss`` as ``os.wait4`` reports it for a child is not the child's own: Linux carries the parent's
high-water mark into the child at ``exec`` (``subprocess`` starts children with ``vfork``), so a small
contender of a large harness would report the harness's size. ``VmHWM`` in ``/proc/self/status`` is the
peak RSS of the process's own address space since its ``exec``.
"""

from __future__ import annotations

from pathlib import Path


def peak_rss_bytes() -> int:
    """This process's peak RSS (``VmHWM``) in bytes; 0 when /proc does not say."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
