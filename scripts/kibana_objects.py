"""Generate Kibana's saved objects for the monitor's indices: deploy/kibana/aimesh-saved-objects.ndjson.

``python scripts/kibana_objects.py`` rewrites the file; ``--check`` exits 1 when it is stale (the test
suite runs the check); ``--prefix P --output F`` writes the objects for indices named ``P-*`` elsewhere.
The objects are Kibana 8/9 saved-objects export lines (``index-pattern`` data views, ``search`` saved
searches, ``lens`` visualizations, ``dashboard``), each dashboard referencing its panels and each panel
its data view, so ``aimesh kibana import`` (the saved-objects import API) brings in all of them at once.
The description below is the single source: one data view per index, then per dashboard its panels.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimesh.devstack.otelcol import DEFAULT_TRACES_INDEX

OUTPUT = Path(__file__).resolve().parents[1] / "deploy" / "kibana" / "aimesh-saved-objects.ndjson"
CORE_MIGRATION = "8.8.0"
TYPE_MIGRATION = {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0", "dashboard": "8.9.0"}
LAYER = "layer1"
RECORDS = "___records___"
"""Lens's pseudo field of a count column."""

DATA_VIEWS = {
    "predictions": "predictions",
    "logs": "service logs",
    "drift": "drift reports",
    "alerts": "alerts",
    "deadletters": "dead letters",
    "traces": "trace spans",
}
"""Data view (one per monitor index kind) and its display name."""
DURATION_FORMAT = {"id": "duration", "params": {"inputFormat": "nanoseconds", "outputFormat": "humanizePrecise"}}
FIELD_FORMATS = {"traces": {"event.duration": DURATION_FORMAT}}


@dataclass(frozen=True)
class Column:
    """One Lens column: ``operation`` over the field ``source`` (``RECORDS`` for a count)."""

    id: str
    operation: str
    source: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        bucketed = self.operation in ("date_histogram", "terms", "range")
        data_type = "date" if self.operation == "date_histogram" else "number"
        if self.operation == "terms" and not self.params.get("numeric"):
            data_type = "string"
        scale = {"date_histogram": "interval", "range": "interval", "terms": "ordinal"}.get(self.operation, "ratio")
        params = {k: v for k, v in self.params.items() if k != "numeric"}
        return {
            "label": self.label,
            "customLabel": True,
            "dataType": data_type,
            "operationType": self.operation,
            "sourceField": self.source,
            "isBucketed": bucketed,
            "scale": scale,
            "params": params,
        }


def timeline(column_id: str = "x") -> Column:
    return Column(column_id, "date_histogram", "@timestamp", "@timestamp", {"interval": "auto", "dropPartials": False})


def top(column_id: str, source: str, label: str, order_by: str, size: int = 10, *, numeric: bool = False) -> Column:
    params = {
        "size": size,
        "orderBy": {"type": "column", "columnId": order_by},
        "orderDirection": "desc",
        "otherBucket": True,
        "missingBucket": False,
        "numeric": numeric,
    }
    return Column(column_id, "terms", source, label, params)


def count(column_id: str = "y", label: str = "Documents") -> Column:
    return Column(column_id, "count", RECORDS, label, {"emptyAsNull": True})


def metric(column_id: str, operation: str, source: str, label: str, **params: Any) -> Column:
    return Column(column_id, operation, source, label, dict(params))


def histogram(column_id: str, source: str, label: str) -> Column:
    return Column(column_id, "range", source, label, {"type": "histogram", "ranges": [], "maxBars": "auto"})


@dataclass(frozen=True)
class Lens:
    """A Lens chart over one data view: ``chart`` is ``line``, ``bar_stacked``, ``area`` or ``table``."""

    id: str
    title: str
    view: str
    chart: str
    x: Column
    ys: tuple[Column, ...]
    split: Column | None = None
    query: str = ""

    def columns(self) -> list[Column]:
        """Bucket columns first (the breakdown outermost, as Lens nests them), then the metrics."""
        return [*([self.split] if self.split else []), self.x, *self.ys]

    def visualization(self) -> tuple[str, dict[str, Any]]:
        if self.chart == "table":
            columns = [{"columnId": c.id, "isTransposed": False} for c in self.columns()]
            return "lnsDatatable", {"layerId": LAYER, "layerType": "data", "columns": columns}
        layer: dict[str, Any] = {
            "layerId": LAYER,
            "layerType": "data",
            "seriesType": self.chart,
            "xAccessor": self.x.id,
            "accessors": [c.id for c in self.ys],
        }
        if self.split:
            layer["splitAccessor"] = self.split.id
        state = {
            "legend": {"isVisible": True, "position": "right"},
            "valueLabels": "hide",
            "preferredSeriesType": self.chart,
            "layers": [layer],
        }
        return "lnsXY", state

    def saved_object(self, prefix: str) -> dict[str, Any]:
        kind, visualization = self.visualization()
        layer = {
            "columnOrder": [c.id for c in self.columns()],
            "columns": {c.id: c.state() for c in self.columns()},
            "incompleteColumns": {},
        }
        state = {
            "datasourceStates": {"formBased": {"layers": {LAYER: layer}}},
            "visualization": visualization,
            "query": {"language": "kuery", "query": self.query},
            "filters": [],
            "adHocDataViews": {},
            "internalReferences": [],
        }
        return _object(
            "lens",
            f"{prefix}-{self.id}",
            {"title": self.title, "description": "", "visualizationType": kind, "state": state},
            [_view_reference(prefix, self.view, f"indexpattern-datasource-layer-{LAYER}")],
        )


@dataclass(frozen=True)
class Search:
    """A saved search (Discover) over one data view: its columns, KQL query and sort."""

    id: str
    title: str
    view: str
    columns: tuple[str, ...]
    query: str = ""
    sort: tuple[tuple[str, str], ...] = (("@timestamp", "desc"),)

    def saved_object(self, prefix: str) -> dict[str, Any]:
        source = {
            "query": {"query": self.query, "language": "kuery"},
            "filter": [],
            "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
        }
        attributes = {
            "title": self.title,
            "description": "",
            "columns": list(self.columns),
            "sort": [list(pair) for pair in self.sort],
            "grid": {},
            "hideChart": False,
            "isTextBasedQuery": False,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source, sort_keys=True)},
        }
        reference = _view_reference(prefix, self.view, "kibanaSavedObjectMeta.searchSourceJSON.index")
        return _object("search", f"{prefix}-{self.id}", attributes, [reference])


@dataclass(frozen=True)
class Dashboard:
    """Panels laid out two per row, each ``HALF`` wide and ``HEIGHT`` tall, in order."""

    id: str
    title: str
    description: str
    panels: tuple[Lens | Search, ...]

    HALF = 24
    HEIGHT = 15

    def saved_object(self, prefix: str) -> dict[str, Any]:
        panels, references = [], []
        for i, panel in enumerate(self.panels):
            index = f"p{i + 1}"
            grid = {"x": (i % 2) * self.HALF, "y": (i // 2) * self.HEIGHT, "w": self.HALF, "h": self.HEIGHT, "i": index}
            kind = "lens" if isinstance(panel, Lens) else "search"
            panels.append(
                {
                    "type": kind,
                    "gridData": grid,
                    "panelIndex": index,
                    "embeddableConfig": {"enhancements": {}},
                    "panelRefName": f"panel_{index}",
                }
            )
            references.append({"name": f"{index}:panel_{index}", "type": kind, "id": f"{prefix}-{panel.id}"})
        options = {"useMargins": True, "syncColors": False, "syncCursor": True, "syncTooltips": False}
        attributes = {
            "title": self.title,
            "description": self.description,
            "panelsJSON": json.dumps(panels, sort_keys=True),
            "optionsJSON": json.dumps({**options, "hidePanelTitles": False}, sort_keys=True),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 60000},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
            },
        }
        return _object("dashboard", f"{prefix}-{self.id}", attributes, references)


def _view_reference(prefix: str, view: str, name: str) -> dict[str, str]:
    return {"name": name, "type": "index-pattern", "id": f"{prefix}-{view}"}


def _object(kind: str, object_id: str, attributes: dict[str, Any], references: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "type": kind,
        "id": object_id,
        "attributes": attributes,
        "references": references,
        "managed": False,
        "coreMigrationVersion": CORE_MIGRATION,
        "typeMigrationVersion": TYPE_MIGRATION[kind],
    }


TRACES_PATTERN = f"{DEFAULT_TRACES_INDEX}*"
"""The traces data view reads the Collector's data stream (``aimesh.devstack.otelcol``), not a monitor index."""


def data_view(prefix: str, kind: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "title": TRACES_PATTERN if kind == "traces" else f"{prefix}-{kind}*",
        "name": f"{prefix} {DATA_VIEWS[kind]}",
        "timeFieldName": "@timestamp",
    }
    if kind in FIELD_FORMATS:
        attributes["fieldFormatMap"] = json.dumps(FIELD_FORMATS[kind], sort_keys=True)
    return _object("index-pattern", f"{prefix}-{kind}", attributes, [])


DASHBOARDS = (
    Dashboard(
        "dashboard-models",
        "aimesh: scores and latency per model version",
        "Predictions per model version (live and shadow): how scores are distributed, latency percentiles, "
        "traffic per route.",
        (
            Lens(
                "lens-score-distribution",
                "Score distribution per model version",
                "predictions",
                "bar_stacked",
                histogram("x", "score", "score"),
                (count(),),
                split=top("split", "model.version", "model version", "y", numeric=True),
            ),
            Lens(
                "lens-latency",
                "Latency p95 (ms) per model version",
                "predictions",
                "line",
                timeline(),
                (metric("y", "percentile", "latency_ms", "latency p95 (ms)", percentile=95),),
                split=top("split", "model.version", "model version", "y", numeric=True),
            ),
            Lens(
                "lens-predictions-by-route",
                "Predictions per route",
                "predictions",
                "bar_stacked",
                timeline(),
                (count(),),
                split=top("split", "route", "route", "y"),
            ),
            Lens(
                "lens-models-table",
                "Models and versions: volume, mean score, latency p99",
                "predictions",
                "table",
                top("x", "model.name", "model", "n"),
                (
                    count("n", "predictions"),
                    metric("mean", "average", "score", "mean score"),
                    metric("p99", "percentile", "latency_ms", "latency p99 (ms)", percentile=99),
                ),
                split=top("split", "model.version", "version", "n", numeric=True),
            ),
        ),
    ),
    Dashboard(
        "dashboard-drift",
        "aimesh: drift per feature",
        "Drift reports per input (the score and every profiled feature): PSI, Jensen-Shannon distance and "
        "Wasserstein distance over time, and the reports that crossed their thresholds.",
        (
            Lens(
                "lens-psi",
                "PSI per feature (max)",
                "drift",
                "line",
                timeline(),
                (metric("y", "max", "psi", "PSI"),),
                split=top("split", "feature", "feature", "y"),
            ),
            Lens(
                "lens-js-distance",
                "Jensen-Shannon distance per feature (max)",
                "drift",
                "line",
                timeline(),
                (metric("y", "max", "js_distance", "JS distance"),),
                split=top("split", "feature", "feature", "y"),
            ),
            Lens(
                "lens-drifted-features",
                "Drifted reports per feature",
                "drift",
                "bar_stacked",
                timeline(),
                (count("y", "drifted reports"),),
                split=top("split", "feature", "feature", "y"),
                query="drifted: true",
            ),
            Search(
                "search-drifted",
                "Drifted reports",
                "drift",
                ("model.name", "model.version", "feature", "psi", "js_distance", "wasserstein", "sample_count"),
                query="drifted: true",
            ),
        ),
    ),
    Dashboard(
        "dashboard-deadletters",
        "aimesh: dead letters per reason and source",
        "Events every service dead-lettered: per reason code, per source and writing service, with the "
        "latest letters (payload references, never header values).",
        (
            Lens(
                "lens-deadletter-reasons",
                "Dead letters per reason",
                "deadletters",
                "bar_stacked",
                timeline(),
                (count("y", "dead letters"),),
                split=top("split", "deadletter.reason", "reason", "y"),
            ),
            Lens(
                "lens-deadletter-sources",
                "Dead letters per source and reason",
                "deadletters",
                "table",
                top("x", "deadletter.source", "source", "n"),
                (count("n", "dead letters"), metric("bytes", "max", "payload.size", "largest payload (bytes)")),
                split=top("split", "deadletter.reason", "reason", "n"),
            ),
            Search(
                "search-deadletters",
                "Latest dead letters",
                "deadletters",
                ("service.name", "deadletter.source", "deadletter.reason", "deadletter.topic", "message"),
            ),
        ),
    ),
    Dashboard(
        "dashboard-alerts",
        "aimesh: alerts",
        "Alerts the monitor raised: per severity and kind over time, and those still firing.",
        (
            Lens(
                "lens-alerts-by-severity",
                "Alerts per severity",
                "alerts",
                "bar_stacked",
                timeline(),
                (count("y", "alerts"),),
                split=top("split", "alert.severity", "severity", "y"),
            ),
            Lens(
                "lens-alerts-by-kind",
                "Alerts per kind and model",
                "alerts",
                "table",
                top("x", "alert.kind", "kind", "n"),
                (count("n", "alerts"), metric("worst", "max", "value", "highest value")),
                split=top("split", "model.name", "model", "n"),
            ),
            Search(
                "search-alerts-firing",
                "Alerts not resolved",
                "alerts",
                ("alert.severity", "alert.kind", "alert.state", "alert.rule", "model.name", "feature", "message"),
                query="not alert.state: ALERT_STATE_RESOLVED",
            ),
        ),
    ),
    Dashboard(
        "dashboard-logs",
        "aimesh: service logs by level",
        "Every service's log lines: volume per level and per service, and the latest warnings and errors "
        "with their trace id.",
        (
            Lens(
                "lens-logs-by-level",
                "Log lines per level",
                "logs",
                "bar_stacked",
                timeline(),
                (count("y", "log lines"),),
                split=top("split", "log.level", "level", "y"),
            ),
            Lens(
                "lens-errors-by-service",
                "Errors and warnings per service",
                "logs",
                "bar_stacked",
                timeline(),
                (count("y", "log lines"),),
                split=top("split", "service.name", "service", "y"),
                query="log.level: (error or warning or critical)",
            ),
            Search(
                "search-log-errors",
                "Warnings and errors",
                "logs",
                ("service.name", "log.level", "log.logger", "message", "error.type", "trace.id"),
                query="log.level: (error or warning or critical)",
            ),
        ),
    ),
    Dashboard(
        "dashboard-traces",
        "aimesh: traces",
        "OpenTelemetry spans of every service: duration percentiles per span name, spans per service, and "
        "the slowest spans with their trace id (open one trace by filtering on trace.id).",
        (
            Lens(
                "lens-span-duration",
                "Span duration p95 per span name",
                "traces",
                "line",
                timeline(),
                (metric("y", "percentile", "event.duration", "duration p95", percentile=95),),
                split=top("split", "span.name", "span", "y"),
            ),
            Lens(
                "lens-spans-by-service",
                "Spans per service",
                "traces",
                "bar_stacked",
                timeline(),
                (count("y", "spans"),),
                split=top("split", "service.name", "service", "y"),
            ),
            Search(
                "search-spans",
                "Slowest spans",
                "traces",
                ("service.name", "span.name", "event.duration", "trace.id", "span.id", "parent.id"),
                sort=(("event.duration", "desc"),),
            ),
        ),
    ),
)


def saved_objects(prefix: str = "aimesh") -> list[dict[str, Any]]:
    """Every object in import order: data views, then each dashboard's panels, then the dashboards."""
    objects = [data_view(prefix, kind) for kind in DATA_VIEWS]
    for dashboard in DASHBOARDS:
        objects += [panel.saved_object(prefix) for panel in dashboard.panels]
    objects += [dashboard.saved_object(prefix) for dashboard in DASHBOARDS]
    return objects


def render(prefix: str = "aimesh") -> str:
    """The NDJSON text: one object a line, keys sorted, so a regeneration diff shows only real changes."""
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in saved_objects(prefix))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is not what would be generated")
    parser.add_argument("--prefix", default="aimesh", help="index prefix (MONITOR_INDEX_PREFIX)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    text = render(args.prefix)
    if args.check:
        current = args.output.read_text() if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is stale: run python scripts/kibana_objects.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {len(text.splitlines())} saved objects to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
