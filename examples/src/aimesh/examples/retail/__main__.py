"""``python -m aimesh.examples.retail``: see ``aimesh.examples.retail.cli``."""

from aimesh.examples.retail.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
