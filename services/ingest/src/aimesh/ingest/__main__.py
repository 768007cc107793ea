"""``python -m aimesh.ingest``: run the ingest service until SIGTERM."""

from aimesh.core.app import run_main
from aimesh.ingest.app import serve_ingest
from aimesh.ingest.settings import IngestSettings


def main() -> None:
    run_main(IngestSettings, serve_ingest)


if __name__ == "__main__":
    main()
