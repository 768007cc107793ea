"""``python -m aimesh.examples.banking``: see ``aimesh.examples.banking.cli``."""

from aimesh.examples.banking.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
