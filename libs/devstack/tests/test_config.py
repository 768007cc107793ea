"""Rendering of the Kafka and Elasticsearch configuration and discovery of JDKs, Maven and PostgreSQL."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from string import Template

import pytest
from rich.console import Console

from aimesh.core.auth import Policy, TokenVerifier
from aimesh.devstack.elasticsearch import Elasticsearch, unpack_zip
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.jdk import find_java_home, major_version
from aimesh.devstack.kafka import Kafka
from aimesh.devstack.maven import find_mvn, run_pom
from aimesh.devstack.paths import Paths
from aimesh.devstack.postgres import find_bin_dir
from aimesh.devstack.services import services


def _properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_kafka_server_properties(paths: Paths) -> None:
    kafka = Kafka(paths)
    props = _properties(kafka.render_config().read_text())
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["log.dirs"] == str(paths.data("kafka") / "kraft")
    assert props["num.partitions"] == "3"
    assert props["auto.create.topics.enable"] == "true"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"
    assert (kafka.config_dir / "log4j2.properties").is_file()


def test_kafka_version_from_jar_name(paths: Paths) -> None:
    kafka = Kafka(paths)
    assert kafka.installed_version() is None
    kafka.libs.mkdir(parents=True)
    (kafka.libs / "kafka_2.13-4.1.1.jar").touch()
    (kafka.libs / "kafka-clients-4.1.1.jar").touch()
    assert kafka.installed_version() == "4.1.1"


def test_elasticsearch_yml_template(paths: Paths) -> None:
    es = Elasticsearch(paths)
    text = Template((es.deploy_dir / "elasticsearch.yml").read_text()).substitute(
        host="127.0.0.1", http_port=9200, path_data="/d", path_logs="/l"
    )
    settings = dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert settings["discovery.type"] == "single-node"
    assert settings["network.host"] == "127.0.0.1"
    assert settings["http.port"] == "9200"
    assert settings["xpack.security.enabled"] == "false"
    assert (settings["path.data"], settings["path.logs"]) == ("/d", "/l")


def test_unpack_zip_keeps_modes(tmp_path: Path) -> None:
    archive = tmp_path / "dist.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        script = zipfile.ZipInfo("es-1/bin/elasticsearch")
        script.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(script, "#!/bin/sh\n")
        zf.writestr("es-1/config/jvm.options", "-Xms1g\n")
    unpack_zip(archive, tmp_path / "out")
    assert os.access(tmp_path / "out" / "es-1" / "bin" / "elasticsearch", os.X_OK)
    assert (tmp_path / "out" / "es-1" / "config" / "jvm.options").read_text() == "-Xms1g\n"
    assert not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize(("text", "major"), [("17.0.15", 17), ("1.8.0_402", 8), ("25", 25), ("21-ea", 21)])
def test_major_version(text: str, major: int) -> None:
    assert major_version(text) == major


def _fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    home.mkdir(parents=True)
    (home / "release").write_text(f'IMPLEMENTOR="test"\nJAVA_VERSION="{version}"\n')
    return home


def test_find_java_home_picks_first_new_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("ES_JAVA_HOME", raising=False)
    old = _fake_jdk(tmp_path, "java-17", "17.0.15")
    new = _fake_jdk(tmp_path, "temurin-25", "25.0.1")
    monkeypatch.setenv("JAVA_HOME", str(old))
    assert find_java_home("kafka", 17, jvm_root=tmp_path) == old
    assert find_java_home("elasticsearch", 21, env_vars=("ES_JAVA_HOME", "JAVA_HOME"), jvm_root=tmp_path) == new


def test_no_new_enough_jdk_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("ES_JAVA_HOME", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    _fake_jdk(tmp_path, "java-17", "17.0.15")
    with pytest.raises(DevstackError) as info:
        find_java_home("elasticsearch", 21, env_vars=("ES_JAVA_HOME",), jvm_root=tmp_path)
    assert "no JDK 21+" in info.value.cause
    assert "ES_JAVA_HOME" in info.value.fix


def test_missing_mvn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevstackError) as info:
        find_mvn("kafka")
    assert "apt-get install -y maven" in info.value.fix


def test_maven_failure_reports_its_error_line(paths: Paths, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "mvn"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        "echo '[INFO] Downloading from central: https://repo/x/a-1.jar'\n"
        "echo '[ERROR] Failed to execute goal: Could not transfer artifact a:a:1 (Connection refused)'\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    with pytest.raises(DevstackError) as info:
        run_pom("kafka", tmp_path / "pom.xml", properties={}, logfile=tmp_path / "mvn.log", console=Console(quiet=True))
    assert "Connection refused" in info.value.cause
    assert "Maven Central" in info.value.fix
    assert "Downloading" in (tmp_path / "mvn.log").read_text()


def test_find_postgres_bin_dir_prefers_newest(tmp_path: Path) -> None:
    assert find_bin_dir(tmp_path) is None
    for major in ("9", "15", "13"):
        (tmp_path / major / "bin").mkdir(parents=True)
        (tmp_path / major / "bin" / "initdb").touch()
    assert find_bin_dir(tmp_path) == tmp_path / "15" / "bin"


def test_service_ports_and_environment(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMESH_AUTH_ENABLED", "false")
    svcs = services(paths, kafka_bootstrap="127.0.0.1:9092")
    assert [s.name for s in svcs] == ["ingest", "feature", "training", "inference", "monitor"]
    assert [s.ports for s in svcs] == [(50051 + i, 8081 + i) for i in range(5)]
    assert svcs[3].environment() == {
        "INFERENCE_GRPC_PORT": "50054",
        "INFERENCE_ADMIN_PORT": "8084",
        "INFERENCE_DATA_DIR": str(paths.home / "data"),
        "AIMESH_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    }
    svcs[3].extra_env = {"INFERENCE_FEATURE_ADDRESS": "127.0.0.1:1", "INFERENCE_DATA_DIR": "/elsewhere"}
    env = svcs[3].environment()
    assert env["INFERENCE_FEATURE_ADDRESS"] == "127.0.0.1:1" and env["INFERENCE_DATA_DIR"] == "/elsewhere"


def test_services_run_with_the_stacks_credentials_by_default(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIMESH_AUTH_ENABLED", raising=False)
    env = services(paths, kafka_bootstrap="127.0.0.1:9092")[1].environment()
    auth = paths.home / "auth"
    assert env["AIMESH_AUTH_ENABLED"] == "true"
    assert env["AIMESH_AUTH_JWKS_FILE"] == str(auth / "jwks.json")
    assert env["AIMESH_AUTH_POLICY_FILE"] == str(auth / "policy.yaml")
    assert env["AIMESH_AUTH_TOKEN_FILE"] == str(auth / "services.token")
    verifier = TokenVerifier(auth / "jwks.json", audience=env["AIMESH_AUTH_AUDIENCE"], issuer=env["AIMESH_AUTH_ISSUER"])
    assert verifier.verify((auth / "demo.token").read_text().strip()) == ("demo-user", "demo")
    assert verifier.verify((auth / "services.token").read_text().strip()) == ("aimesh-services", "platform")
    assert "demo" in Policy.load(auth / "policy.yaml").tenants
