"""Every method of every service's gRPC API has an access rule (auth fails closed on a missing one),
and each rule computes its requirements from an empty request of the method's own type."""

from __future__ import annotations

import importlib

import pytest
from google.protobuf import symbol_database

from aimesh.core.auth import ALL

SERVICES = {
    "ingest": "aimesh.api.ingest.v1.ingest_pb2",
    "feature": "aimesh.api.feature.v1.feature_pb2",
    "training": "aimesh.api.training.v1.training_pb2",
    "inference": "aimesh.api.inference.v1.inference_pb2",
    "monitor": "aimesh.api.monitor.v1.monitor_pb2",
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_method_has_an_access_rule(service: str) -> None:
    access = importlib.import_module(f"aimesh.{service}.access").ACCESS
    module = importlib.import_module(SERVICES[service])
    (descriptor,) = module.DESCRIPTOR.services_by_name.values()
    methods = {f"/{descriptor.full_name}/{m.name}": m for m in descriptor.methods}
    assert set(access) == set(methods)
    for name, method in methods.items():
        request = symbol_database.Default().GetSymbol(method.input_type.full_name)()
        requirements = list(access[name](request))
        assert requirements, name
        for action, resource in requirements:
            assert action.count(".") == 1, (name, action)
            assert resource == ALL, (name, resource)  # an empty request names no resource: every one
