"""``python -m aimesh.monitor``: run the monitor service until SIGTERM."""

from aimesh.core.app import run_main
from aimesh.monitor.app import serve_monitor
from aimesh.monitor.settings import MonitorSettings


def main() -> None:
    run_main(MonitorSettings, serve_monitor)


if __name__ == "__main__":
    main()
