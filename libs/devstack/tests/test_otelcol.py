"""The collector part (``aimesh.devstack.otelcol``) without building or running it: the build cache is
keyed by the manifest, the stack starts it after Elasticsearch and points the services at it, the traces
template makes the data stream the exporter writes, and the configuration reads what ``environment`` sets."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from aimesh.devstack.otelcol import BUILDER_VERSION, DEFAULT_TRACES_INDEX, OtelCollector, traces_template
from aimesh.devstack.paths import Paths
from aimesh.devstack.services import Service
from aimesh.devstack.stack import Stack


def test_the_build_is_cached_per_manifest(paths: Paths, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(paths.repo / "deploy" / "local" / "otelcol", repo / "deploy" / "local" / "otelcol")
    collector = OtelCollector(Paths(home=paths.home, repo=repo))
    first = collector.build_dir
    assert first.parent == paths.dist / "otelcol" and collector.binary == first / "otelcol-aimesh"
    assert collector.build_dir == first
    collector.manifest.write_text(collector.manifest.read_text() + "\n# changed\n")
    assert collector.build_dir != first


def test_the_manifest_pins_every_module_at_the_builders_release() -> None:
    manifest = (Paths.default().repo / "deploy" / "local" / "otelcol" / "builder-config.yaml").read_text()
    versions = set(re.findall(r"gomod: \S*(?:receiver|processor|exporter)\S* (v\S+)", manifest))
    assert versions == {BUILDER_VERSION}
    assert "elasticsearchexporter" in manifest and "otlpreceiver" in manifest


def test_the_stack_starts_it_after_elasticsearch_and_the_services_export_to_it(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIMESH_OTLP_ENDPOINT", raising=False)
    stack = Stack.build(paths, Console(quiet=True))
    names = [c.name for c in stack.infra]
    assert names.index("otelcol") == names.index("elasticsearch") + 1
    assert all(isinstance(s, Service) for s in stack.services)
    endpoints = {s.environment()["AIMESH_OTLP_ENDPOINT"] for s in stack.services if isinstance(s, Service)}
    assert endpoints == {"127.0.0.1:4317"}


def test_an_endpoint_in_the_environment_wins(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMESH_OTLP_ENDPOINT", "10.0.0.1:4317")
    service = Stack.build(paths, Console(quiet=True)).services[0]
    assert isinstance(service, Service) and service.environment()["AIMESH_OTLP_ENDPOINT"] == "10.0.0.1:4317"


def test_the_template_is_a_data_stream_with_the_ecs_ids_as_keywords() -> None:
    template = traces_template()
    assert template["index_patterns"] == [f"{DEFAULT_TRACES_INDEX}*"] and template["data_stream"] == {}
    properties = template["template"]["mappings"]["properties"]
    assert properties["trace"]["properties"]["id"]["type"] == "keyword"
    assert properties["service"]["properties"]["name"]["type"] == "keyword"
    assert properties["parent"]["properties"]["id"]["type"] == "keyword"


def test_the_configuration_reads_exactly_the_environment_it_is_given(paths: Paths) -> None:
    collector = OtelCollector(paths, grpc_port=14317, http_port=14318, traces_index="traces-aimesh.it-default")
    wanted = set(re.findall(r"\$\{env:(\w+)\}", collector.config.read_text()))
    assert wanted == set(collector.environment())
    assert collector.environment()["OTELCOL_GRPC_PORT"] == "14317"
    assert collector.template_name == "traces-aimesh.it-default"
    assert OtelCollector(paths).template_name == "traces-aimesh"
