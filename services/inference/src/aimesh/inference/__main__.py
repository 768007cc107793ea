"""``python -m aimesh.inference``: run the inference service until SIGTERM."""

from aimesh.core.app import run_main
from aimesh.inference.app import serve_inference
from aimesh.inference.settings import InferenceSettings


def main() -> None:
    run_main(InferenceSettings, serve_inference)


if __name__ == "__main__":
    main()
