"""A consumer process that SIGKILLs itself mid-stream, for the redelivery test.

Usage: python crash_consumer.py BOOTSTRAP TOPIC GROUP EFFECTS_FILE KILL_AFTER

Each handled event id is appended to EFFECTS_FILE and fsynced (the durable effect); after
KILL_AFTER effects the process kills itself with SIGKILL, so whatever was not committed yet is
never committed by this process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from aimesh.core.bus import EventConsumer
from aimesh.core.events import Event


async def main(bootstrap: str, topic: str, group: str, effects: str, kill_after: int) -> None:
    done = 0
    with open(effects, "a") as out:

        async def handle(event: Event) -> None:
            nonlocal done
            out.write(event.id + "\n")
            out.flush()
            os.fsync(out.fileno())
            done += 1
            if done >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        consumer = EventConsumer(
            bootstrap, group_id=group, topics=[topic], handler=handle, service="crash-test", max_batch=50
        )
        await consumer.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
