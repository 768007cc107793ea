"""Kibana's saved objects (deploy/kibana) are generated, reference each other, and use only mapped fields.

Every field an object names (a data view's time field and field formats, a Lens column's source field
and its KQL query, a saved search's columns, sort and query) must exist in the index template of the
data view's indices with a type that fits its use: dates for date histograms, numbers for metrics and
numeric breakdowns, keywords (or booleans, numbers) for top values, nothing unsortable in a sort.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from aimesh.devstack.otelcol import traces_template
from aimesh.monitor.documents import index_templates, mapped_type

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "deploy" / "kibana" / "aimesh-saved-objects.ndjson"
NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
METRICS = {"average", "max", "min", "sum", "median", "percentile", "standard_deviation"}
KQL_FIELD = re.compile(r"(?<![\w.@])(@?[A-Za-z_][\w.@]*)\s*:")


def templates() -> dict[str, dict[str, Any]]:
    """Monitor's index templates and the Collector's traces data stream template: what the objects read."""
    return {**index_templates("aimesh"), "traces-aimesh": traces_template()}


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in NDJSON.read_text().splitlines() if line.strip()]


def _kql_fields(query: str) -> list[str]:
    return KQL_FIELD.findall(query)


def _check(problems: list[str], where: str, mappings: dict[str, Any], field: str, use: str) -> None:
    kind = mapped_type(mappings, field)
    if kind is None:
        problems.append(f"{where}: {field} is not in the index template")
        return
    spec_ok = {
        "time": kind in {"date", "date_nanos"},
        "date_histogram": kind in {"date", "date_nanos"},
        "metric": kind in NUMERIC,
        "range": kind in NUMERIC,
        "terms:number": kind in NUMERIC,
        "terms:string": kind in {"keyword", "boolean", "flattened"},
        "sort": kind not in {"text", "binary", "object", "flattened"},
        "query": kind not in {"binary", "object"},
        "column": kind != "object",
        "duration": kind in NUMERIC,
    }[use]
    if not spec_ok:
        problems.append(f"{where}: {field} is {kind}, which does not fit its use as {use}")


def field_problems(objects: list[dict[str, Any]], templates: dict[str, dict[str, Any]]) -> list[str]:
    """Every field an object references that its data view's template lacks or types unfittingly."""
    by_pattern = {tuple(body["index_patterns"]): body["template"]["mappings"] for body in templates.values()}
    views: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for obj in objects:
        if obj["type"] != "index-pattern":
            continue
        attributes = obj["attributes"]
        mappings = by_pattern.get((attributes["title"],))
        if mappings is None:
            problems.append(f"data view {obj['id']}: no index template has the pattern {attributes['title']}")
            continue
        views[obj["id"]] = mappings
        _check(problems, f"data view {obj['id']}", mappings, attributes["timeFieldName"], "time")
        for field in json.loads(attributes.get("fieldFormatMap", "{}")):
            _check(problems, f"data view {obj['id']} format", mappings, field, "duration")
    for obj in objects:
        refs = {r["name"]: r["id"] for r in obj["references"]}
        where = f"{obj['type']} {obj['id']}"
        if obj["type"] == "lens":
            state = obj["attributes"]["state"]
            for layer_id, layer in state["datasourceStates"]["formBased"]["layers"].items():
                mappings = views.get(refs.get(f"indexpattern-datasource-layer-{layer_id}", ""))
                if mappings is None:
                    problems.append(f"{where}: layer {layer_id} has no data view reference")
                    continue
                for column in layer["columns"].values():
                    operation = column["operationType"]
                    if operation == "count":
                        continue
                    use = (
                        f"terms:{column['dataType']}"
                        if operation == "terms"
                        else "metric"
                        if operation in METRICS
                        else operation
                    )
                    _check(problems, where, mappings, column["sourceField"], use)
                for field in _kql_fields(state["query"]["query"]):
                    _check(problems, f"{where} query", mappings, field, "query")
        elif obj["type"] == "search":
            attributes = obj["attributes"]
            source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
            mappings = views.get(refs.get(source["indexRefName"], ""))
            if mappings is None:
                problems.append(f"{where}: no data view reference")
                continue
            for field in attributes["columns"]:
                _check(problems, where, mappings, field, "column")
            for field, _direction in attributes["sort"]:
                _check(problems, f"{where} sort", mappings, field, "sort")
            for field in _kql_fields(source["query"]["query"]):
                _check(problems, f"{where} query", mappings, field, "query")
    return problems


def test_the_saved_objects_file_is_what_the_script_generates() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kibana_objects.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr or result.stdout


def test_every_referenced_field_exists_in_the_index_templates_with_a_fitting_type() -> None:
    objects = load()
    assert {o["type"] for o in objects} == {"index-pattern", "search", "lens", "dashboard"}
    assert field_problems(objects, templates()) == []


def test_the_field_check_finds_a_missing_field_and_a_wrong_type() -> None:
    objects = copy.deepcopy(load())
    lens = next(o for o in objects if o["id"] == "aimesh-lens-latency")
    columns = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]["layer1"]["columns"]
    columns["y"]["sourceField"] = "no_such_field"
    columns["x"]["sourceField"] = "route"
    problems = field_problems(objects, templates())
    assert any("no_such_field is not in the index template" in p for p in problems), problems
    assert any("route is keyword" in p and "date_histogram" in p for p in problems), problems


def test_every_reference_resolves_to_an_object_of_its_type_in_the_file() -> None:
    objects = load()
    known = {(o["type"], o["id"]) for o in objects}
    assert len(known) == len(objects), "object ids are unique"
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in known, f"{obj['id']} references a missing {ref}"
        if obj["type"] == "dashboard":
            panels = json.loads(obj["attributes"]["panelsJSON"])
            names = {r["name"] for r in obj["references"]}
            assert panels and all(f"{p['panelIndex']}:{p['panelRefName']}" in names for p in panels)


def test_there_is_a_dashboard_for_each_topic() -> None:
    titles = {o["attributes"]["title"] for o in load() if o["type"] == "dashboard"}
    assert titles == {
        "aimesh: scores and latency per model version",
        "aimesh: drift per feature",
        "aimesh: dead letters per reason and source",
        "aimesh: alerts",
        "aimesh: service logs by level",
        "aimesh: traces",
    }
