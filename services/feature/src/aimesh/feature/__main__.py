"""``python -m aimesh.feature``: run the feature service until SIGTERM."""

from aimesh.core.app import run_main
from aimesh.feature.app import serve_feature
from aimesh.feature.settings import FeatureSettings


def main() -> None:
    run_main(FeatureSettings, serve_feature)


if __name__ == "__main__":
    main()
