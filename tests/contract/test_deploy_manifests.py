"""Static checks of the service image (deploy/Dockerfile, one per service by ``--build-arg SERVICE``) and
the Kubernetes manifests (deploy/k8s).

Every service must be deployable the same hardened way: gRPC health probes on its gRPC port,
resource requests and limits, non-root, read-only root filesystem with an emptyDir for /tmp, and
settings from a ConfigMap whose keys carry the service's env prefix. Triton (deploy/k8s/triton) is the
NGC image on a GPU, serving the native variant the training service exports into the shared repository.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PORTS: dict[str, tuple[int, int]] = {  # service -> (gRPC port, admin port)
    "ingest": (50051, 8081),
    "feature": (50052, 8082),
    "training": (50053, 8083),
    "inference": (50054, 8084),
    "monitor": (50055, 8085),
}
SERVICES = sorted(PORTS)
TRITON_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}

_UNITS = {"": 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}


def _quantity(value: str | int | float) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and match.group(2) in _UNITS, f"bad quantity {value!r}"
    return float(match.group(1)) * _UNITS[match.group(2)]


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kustomization_resources(directory: Path) -> list[dict[str, Any]]:
    """Objects of a kustomization directory, following nested directories (no kustomize needed)."""
    kustomization = _load(directory / "kustomization.yaml")[0]
    objects: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        target = directory / entry
        assert target.exists(), f"{directory / 'kustomization.yaml'} lists missing {entry}"
        objects.extend(_kustomization_resources(target) if target.is_dir() else _load(target))
    return objects


def _objects(service: str) -> dict[str, dict[str, Any]]:
    by_kind: dict[str, dict[str, Any]] = {}
    for obj in _kustomization_resources(K8S / service):
        assert obj["kind"] not in by_kind, f"{service}: two {obj['kind']} objects"
        by_kind[obj["kind"]] = obj
    return by_kind


def _container(deployment: dict[str, Any], service: str) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    matching = [c for c in containers if c["name"] == service]
    assert len(matching) == 1, f"{service}: expected one container named {service}"
    container: dict[str, Any] = matching[0]
    return container


def test_root_kustomization_lists_every_service() -> None:
    root = _load(K8S / "kustomization.yaml")[0]
    assert set(SERVICES) <= set(root["resources"])
    deployments = {o["metadata"]["name"] for o in _kustomization_resources(K8S) if o["kind"] == "Deployment"}
    assert deployments == {f"aimesh-{s}" for s in SERVICES} | {"aimesh-triton"}
    assert "triton" in root["resources"]


@pytest.mark.parametrize("service", SERVICES)
def test_service_has_deployment_service_and_configmap(service: str) -> None:
    assert {"Deployment", "Service", "ConfigMap"} <= set(_objects(service))


@pytest.mark.parametrize("service", SERVICES)
def test_probes_readiness_over_grpc_health_liveness_over_admin(service: str) -> None:
    """Readiness: grpc.health.v1 (it follows the real dependency checks); liveness: /healthz (loops moving)."""
    grpc_port, admin_port = PORTS[service]
    container = _container(_objects(service)["Deployment"], service)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": grpc_port, "admin": admin_port}
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe].get("grpc", {}).get("port") == grpc_port, f"{service}: {probe} must be gRPC"
    liveness = container["livenessProbe"].get("httpGet", {})
    assert (liveness.get("path"), liveness.get("port")) == ("/healthz", admin_port), f"{service}: liveness"


@pytest.mark.parametrize("service", SERVICES)
def test_resources_have_requests_and_limits(service: str) -> None:
    resources = _container(_objects(service)["Deployment"], service)["resources"]
    for resource in ("cpu", "memory"):
        request, limit = resources["requests"][resource], resources["limits"][resource]
        assert _quantity(request) <= _quantity(limit), f"{service}: {resource} request above limit"


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_non_root_with_read_only_root_filesystem(service: str) -> None:
    deployment = _objects(service)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment, service)
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"].get("runAsUser", 1) != 0
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert "ALL" in security["capabilities"]["drop"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], f"{service}: /tmp must be an emptyDir"


@pytest.mark.parametrize("service", SERVICES)
def test_settings_come_from_a_prefixed_configmap(service: str) -> None:
    objects = _objects(service)
    prefix = f"{service.upper()}_"
    data = objects["ConfigMap"]["data"]
    assert all(key.startswith(prefix) for key in data), f"{service}: every key needs the {prefix} prefix"
    assert data[f"{prefix}KAFKA_BOOTSTRAP"]
    assert data[f"{prefix}GRPC_HOST"] == "0.0.0.0", "binding 127.0.0.1 in a pod makes the probes fail"
    assert int(data[f"{prefix}GRPC_PORT"]) == PORTS[service][0]
    assert int(data[f"{prefix}ADMIN_PORT"]) == PORTS[service][1]
    env_from = _container(objects["Deployment"], service)["envFrom"]
    assert {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}} in env_from


@pytest.mark.parametrize("service", SERVICES)
def test_service_selects_the_pods_and_exposes_both_ports(service: str) -> None:
    objects = _objects(service)
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = objects["Service"]["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in objects["Service"]["spec"]["ports"]}
    assert ports == {"grpc": (PORTS[service][0], "grpc"), "admin": (PORTS[service][1], "admin")}


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_one_dockerfile_builds_every_service_non_root_from_the_slim_python_image() -> None:
    instructions = _instructions()
    froms = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    assert froms and all(image == "python:3.11-slim" for image in froms)
    stages = "\n".join(instructions).split("\nFROM ")[1:]
    assert all("\nARG SERVICE" in stage for stage in stages), "every stage needs ARG SERVICE"
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "runs as root"
    assert "ENV" in next(line for line in instructions if "AIMESH_SERVICE=${SERVICE}" in line)
    for part in ("libs/api", "libs/core", "services/${SERVICE}"):
        assert any(line.startswith(f"COPY {part} ") for line in instructions), f"image must install {part}"
    defaults = next(line for line in instructions if "/home/aimesh/.env" in line)
    assert "_GRPC_HOST=0.0.0.0" in defaults and "_ADMIN_HOST=0.0.0.0" in defaults, "bind every interface"
    assert not [s for s in SERVICES if (ROOT / "services" / s / "Dockerfile").exists()], "one Dockerfile, not five"


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_runs_python_m_aimesh_service_as_pid_1(service: str, tmp_path: Path) -> None:
    """The entrypoint expands AIMESH_SERVICE and execs ``python -m aimesh.<service>`` (a fake python here)."""
    entrypoint = json.loads(next(line for line in _instructions() if line.startswith("ENTRYPOINT ")).split(" ", 1)[1])
    assert entrypoint[:2] == ["/bin/sh", "-c"] and entrypoint[2].startswith("exec python -m ")
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "AIMESH_SERVICE": service}
    ran = subprocess.run(entrypoint, env=env, capture_output=True, text=True, check=True, timeout=10)
    assert ran.stdout.split() == ["-m", f"aimesh.{service}"]
    assert (ROOT / "services" / service / "src" / "aimesh" / service / "__main__.py").is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_defaults_match_the_settings_and_the_manifests(service: str) -> None:
    """The image's .env names ``<SERVICE>_*`` and relies on the settings' default ports, which the manifests use."""
    settings = importlib.import_module(f"aimesh.{service}.settings")
    cls = next(
        c
        for c in vars(settings).values()
        if isinstance(c, type) and c.__module__ == settings.__name__ and c.__name__.endswith("Settings")
    )
    assert cls.model_config["env_prefix"] == f"{service.upper()}_"
    fields = cls.model_fields
    assert (fields["grpc_port"].default, fields["admin_port"].default) == PORTS[service]
    image = _container(_objects(service)["Deployment"], service)["image"]
    assert image.startswith(f"aimesh/{service}:"), image


def _triton() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    objects = _objects("triton")
    return objects, _container(objects["Deployment"], "triton")


def test_triton_runs_the_pinned_ngc_image_on_one_gpu() -> None:
    _, container = _triton()
    match = re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d{2}\.\d{2})-py3", container["image"])
    assert match, f"the NGC Triton image with a pinned release tag, not {container['image']!r}"
    resources = container["resources"]
    assert int(resources["limits"]["nvidia.com/gpu"]) == 1
    assert int(resources["requests"].get("nvidia.com/gpu", 1)) == 1, "GPU requests must equal limits"
    for resource in ("cpu", "memory"):
        assert _quantity(resources["requests"][resource]) <= _quantity(resources["limits"][resource])


def test_triton_serves_the_shared_model_repository_in_explicit_mode_with_complete_configs() -> None:
    objects, container = _triton()
    args = container["args"]
    assert "--model-control-mode=explicit" in args and "--disable-auto-complete-config" in args
    repository = next(a.split("=", 1)[1] for a in args if a.startswith("--model-repository="))
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[repository].get("readOnly") is True
    volumes = {v["name"]: v for v in objects["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    claim = volumes[mounts[repository]["name"]]["persistentVolumeClaim"]["claimName"]
    assert objects["PersistentVolumeClaim"]["metadata"]["name"] == claim
    assert "ReadWriteMany" in objects["PersistentVolumeClaim"]["spec"]["accessModes"], "training writes it too"
    training = _objects("training")
    training_pod = training["Deployment"]["spec"]["template"]["spec"]
    training_mounts = {
        m["name"]: m["mountPath"] for m in _container(training["Deployment"], "training")["volumeMounts"]
    }
    name = next(
        v["name"] for v in training_pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim
    )
    assert training["ConfigMap"]["data"]["TRAINING_MODEL_REPOSITORY"] == training_mounts[name]


def test_triton_exposes_http_grpc_and_metrics_and_is_ready_by_v2_health_ready() -> None:
    objects, container = _triton()
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == TRITON_PORTS
    ready = container["readinessProbe"]["httpGet"]
    assert (ready["path"], ready["port"]) == ("/v2/health/ready", TRITON_PORTS["http"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    service_ports = {p["name"]: (p["port"], p["targetPort"]) for p in objects["Service"]["spec"]["ports"]}
    assert service_ports == {name: (port, name) for name, port in TRITON_PORTS.items()}
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert objects["Service"]["spec"]["selector"].items() <= pod_labels.items()
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False


def test_training_exports_a_native_gpu_variant_for_that_triton() -> None:
    from aimesh.training.settings import TrainingSettings
    from aimesh.training.triton_config import NATIVE_VARIANTS

    data = _objects("training")["ConfigMap"]["data"]
    assert data["TRAINING_TRITON_VARIANT"] in NATIVE_VARIANTS
    settings = TrainingSettings.model_validate(
        {
            "triton_variant": data["TRAINING_TRITON_VARIANT"],
            "triton_gpu_instances": data["TRAINING_TRITON_GPU_INSTANCES"],
        }
    )
    assert settings.triton_gpu_instances >= 1
    service = _objects("triton")["Service"]["metadata"]["name"]
    grpc = f"{service}:{TRITON_PORTS['grpc']}"
    assert data["TRAINING_TRITON_GRPC"] == grpc
    assert _objects("inference")["ConfigMap"]["data"]["INFERENCE_TRITON_URL"] == grpc
