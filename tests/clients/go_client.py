"""Drive the Go inference client (tests/clients/go, ``aimesh-inference``) from Python tests.

``build_go_client()`` builds the binary with ``go build`` unless it is newer than every input;
``go_score()`` / ``go_recommend()`` run it once and return its JSON line. All of them block (use
``asyncio.to_thread`` when the server under test runs on the caller's event loop).

``compare_recommend()`` and ``recommend_mismatches()`` compare the Go client's Recommend answers with the
Python client's for the same requests, for any TASK_NEXT_ITEM model (``next_item_models()`` finds those a
running mesh serves).
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core.channels import TOKEN_FILE_ENV, open_caller_channel

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "tests" / "clients" / "go"
BINARY = MODULE / "bin" / "aimesh-inference"
SCORE_TOLERANCE = 1e-9
"""Go and Python decode the same float64 from the same bytes: equal up to JSON text round-tripping (exact)."""


class GoClientUnavailable(RuntimeError):
    """Go is missing or ``go build`` failed; the message says which and how to fix it."""


def _gen_proto_go() -> ModuleType:
    """scripts/gen_proto_go.py (where the Go toolchain is found), loaded as a module."""
    name = "gen_proto_go"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "gen_proto_go.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def go_env() -> dict[str, str]:
    """The environment ``go`` runs in: this toolchain only, go.mod/go.sum as committed, no VCS stamping."""
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}


def go_command() -> str:
    """The ``go`` executable (``$GO``, PATH, /usr/local/go/bin/go); GoClientUnavailable when there is none."""
    gen = _gen_proto_go()
    try:
        return str(gen.go_executable())
    except gen.GenerationError as exc:
        raise GoClientUnavailable(str(exc)) from exc


def _inputs() -> list[Path]:
    sources = [MODULE / "go.mod", MODULE / "go.sum", *MODULE.glob("cmd/**/*.go"), *MODULE.glob("gen/**/*.go")]
    return [p for p in sources if p.is_file()]


def _up_to_date() -> bool:
    return BINARY.is_file() and BINARY.stat().st_mtime >= max(p.stat().st_mtime for p in _inputs())


def build_go_client(timeout_s: float = 600) -> Path:
    """Return the ``aimesh-inference`` binary, running ``go build`` first unless it is up to date.

    Seconds when the module cache is warm (``make setup`` runs ``go mod download``); the first build
    without it downloads grpc-go and protobuf-go from the Go module proxy. Concurrent callers serialise
    on a lock file in ``bin/``. Raises ``GoClientUnavailable`` when Go is missing or the build fails
    (with Go's output).
    """
    go = go_command()
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    with (BINARY.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _up_to_date():
            result = subprocess.run(
                [go, "build", "-o", str(BINARY), "./cmd/aimesh-inference"],
                cwd=MODULE,
                env=go_env(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            if result.returncode != 0 or not BINARY.is_file():
                raise GoClientUnavailable(f"go build failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return BINARY


def run_go_client(binary: Path, args: Sequence[str], timeout_s: float = 60) -> dict[str, Any]:
    """Run ``binary args...`` (with ``--token-file $AIMESH_AUTH_TOKEN_FILE`` when that is set) and return
    its JSON line: ``status`` "OK" (exit 0) or a gRPC status code name (exit 1). Raises
    ``subprocess.CalledProcessError`` for any other exit (2: bad flags) and ``subprocess.TimeoutExpired``
    after ``timeout_s``.
    """
    token_file = os.environ.get(TOKEN_FILE_ENV)
    command = [str(binary), *args, *(["--token-file", token_file] if token_file else [])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode not in (0, 1):
        raise subprocess.CalledProcessError(result.returncode, command, result.stdout, result.stderr)
    line: dict[str, Any] = json.loads(result.stdout)
    assert (line["status"] == "OK") == (result.returncode == 0), (result.returncode, line)
    return line


def _common(
    target: str,
    model: str,
    entity_ids: Mapping[str, str],
    request_id: str | None,
    deadline_ms: int,
    alias: str | None,
    version: int | None,
) -> list[str]:
    args = ["--target", target, "--model", model, "--deadline-ms", str(deadline_ms)]
    args += [a for kind, value in sorted(entity_ids.items()) for a in ("--entity", f"{kind}={value}")]
    args += ["--request-id", request_id] if request_id is not None else []
    args += ["--alias", alias] if alias is not None else []
    args += ["--version", str(version)] if version is not None else []
    return args


def go_score(
    binary: Path,
    target: str,
    model: str,
    entity_ids: Mapping[str, str],
    context: Mapping[str, Any] | None = None,
    *,
    features: Mapping[str, float] | None = None,
    request_id: str | None = None,
    deadline_ms: int = 2000,
    alias: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """One ``Score`` through the Go client; ``context`` is JSON-encoded (numbers -> double_value,
    strings, booleans, null, lists of scalars). Returns its JSON line (see ``run_go_client``)."""
    args = ["score", *_common(target, model, entity_ids, request_id, deadline_ms, alias, version)]
    if context is not None:
        args += ["--context-json", json.dumps(dict(context))]
    args += [a for name, value in (features or {}).items() for a in ("--feature", f"{name}={value!r}")]
    return run_go_client(binary, args)


def go_recommend(
    binary: Path,
    target: str,
    model: str,
    entity_ids: Mapping[str, str],
    context_items: Sequence[str] = (),
    *,
    k: int = 0,
    exclude: Sequence[str] = (),
    request_id: str | None = None,
    deadline_ms: int = 2000,
    alias: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """One ``Recommend`` through the Go client. Returns its JSON line (see ``run_go_client``)."""
    args = ["recommend", *_common(target, model, entity_ids, request_id, deadline_ms, alias, version)]
    args += [a for item in context_items for a in ("--context-item", item)]
    args += [a for item in exclude for a in ("--exclude", item)]
    args += ["--k", str(k)] if k else []
    return run_go_client(binary, args)


async def next_item_models(training_grpc: str, inference_grpc: str) -> list[str]:
    """Names of the models whose champion version is TASK_NEXT_ITEM, sorted.

    The registry has no list of models: the names come from the training service's succeeded runs that
    registered a version; inference's GetModelSignature (champion) says each one's task.
    """
    names: set[str] = set()
    async with open_caller_channel(training_grpc) as channel:
        training = training_pb2_grpc.TrainingServiceStub(channel)
        token = ""
        while True:
            reply = await training.ListRuns(
                training_pb2.ListRunsRequest(
                    status=training_pb2.RUN_STATUS_SUCCEEDED,
                    page={"page_size": 1000, "page_token": token},
                )
            )
            names.update(run.spec.model_name for run in reply.runs if run.model_version > 0)
            token = reply.page.next_page_token
            if not token:
                break
    found = []
    async with open_caller_channel(inference_grpc) as channel:
        inference = inference_pb2_grpc.InferenceServiceStub(channel)
        for name in sorted(names):
            try:
                answer = await inference.GetModelSignature(inference_pb2.GetModelSignatureRequest(model=name))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # registered, never promoted to champion
                    continue
                raise
            if answer.signature.task == signature_pb2.TASK_NEXT_ITEM:
                found.append(name)
    return found


@dataclass(frozen=True)
class RecommendCase:
    """One Recommend request, sent the same way by both clients."""

    entity_ids: dict[str, str]
    context_items: list[str] = field(default_factory=list)
    k: int = 0
    exclude: list[str] = field(default_factory=list)


async def default_cases(inference_grpc: str, model: str) -> list[RecommendCase]:
    """Requests every TASK_NEXT_ITEM model can answer, built from its champion's signature only: an entity
    with no history (the popular-items fallback), that entity with popular items as context (the model's
    ranking), with exclusions and a small k, and with an item outside the vocabulary (``unknown_items``).
    A test with entities that have history passes its own cases instead."""
    async with open_caller_channel(inference_grpc) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        answer = await stub.GetModelSignature(inference_pb2.GetModelSignatureRequest(model=model))
    signature = answer.signature
    popular = list(signature.popular_items)
    nobody = {kind: "go-client-no-history" for kind in signature.entity_types}
    return [
        RecommendCase(nobody),
        RecommendCase(nobody, context_items=popular[1:4], k=10),
        RecommendCase(nobody, context_items=popular[:2], k=5, exclude=popular[2:5]),
        RecommendCase(nobody, context_items=[*popular[:1], "go-client-not-an-item"], k=3),
    ]


@dataclass(frozen=True)
class RecommendComparison:
    """One case as both clients answered it: ``python`` and ``go`` hold the compared fields (``status``,
    then on OK ``model_name``, ``model_version``, ``route``, ``fallback``, ``unknown_items``, ``max_k`` and
    ``items`` as (id, score) pairs, else ``message``); ``problems`` says how they differ (empty: agree)."""

    case: RecommendCase
    python: dict[str, Any]
    go: dict[str, Any]
    problems: list[str]


async def compare_recommend(
    binary: Path, inference_grpc: str, model: str, cases: Sequence[RecommendCase] | None = None
) -> list[RecommendComparison]:
    """Send each case through the Python client and then the Go client, and compare the answers.

    Compared: status (and message), model name and version, route, fallback, unknown items, max_k and the
    items (ids in order, scores within ``SCORE_TOLERANCE``). Request and event ids differ by design and
    are not compared. ``cases`` default: ``default_cases``.
    """
    if cases is None:
        cases = await default_cases(inference_grpc, model)
    run = uuid.uuid4().hex[:8]
    comparisons: list[RecommendComparison] = []
    async with open_caller_channel(inference_grpc) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for i, case in enumerate(cases):
            request = inference_pb2.RecommendRequest(
                request_id=f"py-recommend-{run}-{i}",
                model=model,
                entity_ids=case.entity_ids,
                context_items=case.context_items,
                k=case.k,
                exclude_items=case.exclude,
            )
            try:
                reply = await stub.Recommend(request, timeout=5)
                python: dict[str, Any] = {
                    "status": "OK",
                    "model_name": reply.model_name,
                    "model_version": reply.model_version,
                    "route": inference_pb2.Route.Name(reply.route),
                    "fallback": reply.fallback,
                    "unknown_items": list(reply.unknown_items),
                    "max_k": reply.max_k,
                    "items": [(item.item_id, item.score) for item in reply.items],
                }
            except grpc.aio.AioRpcError as exc:
                python = {"status": exc.code().name, "message": exc.details()}
            line = await asyncio.to_thread(
                go_recommend,
                binary,
                inference_grpc,
                model,
                case.entity_ids,
                case.context_items,
                k=case.k,
                exclude=case.exclude,
                request_id=f"go-recommend-{run}-{i}",
                deadline_ms=5000,
            )
            go: dict[str, Any] = {key: line.get(key) for key in python}
            if "items" in python:
                go["items"] = [(item["item_id"], item["score"]) for item in line.get("items") or []]
            comparisons.append(RecommendComparison(case, python, go, _differences(f"case {i} {case}", python, go)))
    return comparisons


async def recommend_mismatches(
    binary: Path, inference_grpc: str, model: str, cases: Sequence[RecommendCase] | None = None
) -> list[str]:
    """Every difference ``compare_recommend`` finds; an empty list means both clients agree on every case."""
    return [p for c in await compare_recommend(binary, inference_grpc, model, cases) for p in c.problems]


def _differences(label: str, python: dict[str, Any], go: dict[str, Any]) -> list[str]:
    problems = [
        f"{label}: {key}: python {python[key]!r}, go {go[key]!r}"
        for key in python
        if key != "items" and python[key] != go[key]
    ]
    if "items" in python:
        ids_py, ids_go = [i for i, _ in python["items"]], [i for i, _ in go["items"]]
        if ids_py != ids_go:
            problems.append(f"{label}: items: python {ids_py}, go {ids_go}")
        else:
            problems += [
                f"{label}: score of {item}: python {a}, go {b}"
                for (item, a), (_, b) in zip(python["items"], go["items"], strict=True)
                if abs(a - b) > SCORE_TOLERANCE
            ]
    return problems
