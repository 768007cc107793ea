"""Render every service's settings as Markdown tables between the README's settings markers.

``python scripts/settings_doc.py`` rewrites README.md in place; ``--check`` exits 1 when the README is
stale (the test suite runs the check). The tables come from the pydantic-settings classes themselves,
so the documented names, defaults and descriptions cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from aimesh.core.settings import ServiceSettings
from aimesh.feature.settings import FeatureSettings
from aimesh.inference.settings import InferenceSettings
from aimesh.ingest.settings import IngestSettings
from aimesh.monitor.settings import MonitorSettings
from aimesh.training.settings import TrainingSettings

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
SERVICES: list[type[ServiceSettings]] = [
    IngestSettings,
    FeatureSettings,
    TrainingSettings,
    InferenceSettings,
    MonitorSettings,
]


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return f"`{info.default_factory()}`"  # type: ignore[call-arg]
    if info.default is PydanticUndefined or info.default is None or info.default == "":
        return ""
    value = info.default
    if hasattr(value, "get_secret_value"):
        return "(a development value)"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(prefix: str, fields: dict[str, FieldInfo]) -> list[str]:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in fields.items():
        rows.append(f"| `{prefix}{name.upper()}` | {_cell(_default(info))} | {_cell(info.description or '')} |")
    return [*rows, ""]


def render() -> str:
    """The generated block; defaults are shown as they are without any ``AIMESH_*`` variable set."""
    for name in [n for n in os.environ if n.startswith("AIMESH_")]:
        del os.environ[name]
    shared = set(ServiceSettings.model_fields)
    lines = [BEGIN, "", "**shared by every service** (`<P>_` is the service's prefix)", ""]
    lines += _rows("<P>_", dict(ServiceSettings.model_fields))
    for cls in SERVICES:
        prefix = str(cls.model_config.get("env_prefix", ""))
        own = {name: info for name, info in cls.model_fields.items() if name not in shared}
        ports = f"gRPC `{cls.model_fields['grpc_port'].default}`, admin `{cls.model_fields['admin_port'].default}`"
        lines += [f"**{prefix.rstrip('_').lower()}** (`{prefix}*`; {ports})", ""]
        lines += _rows(prefix, own)
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is stale")
    args = parser.parse_args()
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + render() + text[end:]
    if args.check:
        if updated != text:
            print("README.md settings tables are stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
