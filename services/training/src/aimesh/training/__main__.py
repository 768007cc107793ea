"""``python -m aimesh.training``: run the training service until SIGTERM."""

from aimesh.core.app import run_main
from aimesh.training.app import serve_training
from aimesh.training.settings import TrainingSettings


def main() -> None:
    run_main(TrainingSettings, serve_training)


if __name__ == "__main__":
    main()
