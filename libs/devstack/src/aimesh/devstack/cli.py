"""`aimesh up | down | status | logs`: the local stack without Docker; `aimesh ingest ...` / `aimesh feature ...` /
`aimesh model ...`: service operations; `aimesh kibana import`: the saved objects into a Kibana.

Every failure the devstack foresees is a DevstackError: it is printed as one line (cause and fix) and
the command exits with status 1, without a traceback.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aimesh.devstack import credentials
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.kibana import import_saved_objects
from aimesh.devstack.paths import Paths, repo_root
from aimesh.devstack.server import log_tail
from aimesh.devstack.stack import Stack

app = typer.Typer(
    help="Run the aimesh stack locally (Kafka, Elasticsearch, PostgreSQL, Redis, Triton and the five services).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ingest_app = typer.Typer(help="Operate the ingest service (register sources, DLQ replay).", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
feature_app = typer.Typer(
    help="Operate the feature store (apply definitions, backfill, consistency check).", no_args_is_help=True
)
app.add_typer(feature_app, name="feature")
model_app = typer.Typer(
    help="Operate the model registry's traffic policies (canary, shadow, promote, rollback).", no_args_is_help=True
)
app.add_typer(model_app, name="model")
kibana_app = typer.Typer(help="Kibana: import the saved objects of deploy/kibana.", no_args_is_help=True)
app.add_typer(kibana_app, name="kibana")

Only = Annotated[list[str] | None, typer.Option("--only", help="Only this part (repeatable).")]
InfraOnly = Annotated[
    bool, typer.Option("--infra-only", help="Only kafka, elasticsearch, otelcol, postgres, redis and triton.")
]


def _console() -> Console:
    """Rich console on stdout; wide when stdout is not a terminal (logs, CI), so tables do not wrap."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _stack() -> tuple[Stack, Paths, Console]:
    console = _console()
    paths = Paths.default()
    paths.ensure()
    return Stack.build(paths, console), paths, console


@app.command()
def up(
    infra_only: InfraOnly = False,
    only: Only = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for everything to be ready.")] = 300.0,
) -> None:
    """Install what is missing, start everything (or the selection) and wait until it is ready."""
    stack, paths, console = _stack()
    parts = stack.select(only or (), infra_only=infra_only)
    t0 = time.monotonic()
    stack.up(parts, timeout=timeout)
    console.print(
        f"[bold green]up[/]: {len(parts)} part(s) ready in {time.monotonic() - t0:.1f}s (state in {paths.home})"
    )


@app.command()
def down(only: Only = None) -> None:
    """Stop what `up` started (services first, then infrastructure), child processes included."""
    stack, _paths, _console = _stack()
    stack.down(stack.select(only or ()))


@app.command()
def status(infra_only: InfraOnly = False, only: Only = None) -> None:
    """Print each part's state; exit 0 only when every selected part is healthy."""
    stack, _paths, console = _stack()
    healths = stack.status(stack.select(only or (), infra_only=infra_only))
    table = Table("name", "running", "healthy", "version", "endpoint", "detail", title="aimesh local stack")
    for h in healths:
        table.add_row(
            h.name,
            "[green]yes[/]" if h.running else "[red]no[/]",
            "[green]yes[/]" if h.healthy else "[red]no[/]",
            h.version or "-",
            h.endpoint,
            h.detail,
        )
    console.print(table)
    if not all(h.healthy for h in healths):
        raise typer.Exit(1)


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="A part (kafka, ingest, ...) or another log, e.g. kafka-install.")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines from the end.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines (Ctrl-C stops).")] = False,
) -> None:
    """Print the end of a part's log (stdout and stderr of its process)."""
    paths = Paths.default()
    logfile = paths.logfile(name)
    if not logfile.is_file():
        known = sorted(p.stem for p in paths.logs.glob("*.log"))
        raise DevstackError(
            name, f"no log file {logfile}", f"use one of: {', '.join(known) or 'none yet (run aimesh up)'}"
        )
    for line in log_tail(logfile, lines):
        sys.stdout.write(line + "\n")
    if follow:
        _follow(logfile)


def _follow(logfile: Path) -> None:
    """Print what is appended to ``logfile`` until interrupted."""
    with logfile.open(errors="replace") as f:
        f.seek(0, 2)
        try:
            while True:
                line = f.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            return


@ingest_app.command("apply")
def ingest_apply(
    file: Annotated[
        Path,
        typer.Argument(
            help="Source definitions (YAML, `sources:`), e.g. a use case pack's sources.yaml "
            "(examples/src/aimesh/examples/banking/pack/sources.yaml); ingest ships none."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be created / updated / unchanged; register nothing.")
    ] = False,
    address: Annotated[
        str | None, typer.Option(help="The ingest service's gRPC address (default 127.0.0.1:INGEST_GRPC_PORT).")
    ] = None,
) -> None:
    """Register each source of FILE with a running ingest (RegisterSource) and show what changed.

    Re-applying a file is a no-op; a breaking change to a stored source registers nothing of the file.
    Every ingest replica consumes a registered source without a restart.
    """
    import grpc

    try:
        from aimesh.core.errors import AimeshError
        from aimesh.ingest.operations import Action, apply_sources
        from aimesh.ingest.settings import IngestSettings
    except ImportError as exc:
        raise DevstackError("ingest", f"aimesh-ingest is not installed ({exc})", "run `make setup`") from exc
    target = address or f"127.0.0.1:{IngestSettings().grpc_port}"
    try:
        document = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DevstackError("ingest", f"cannot read {file} ({exc})", "give the path of a YAML sources file") from exc
    try:
        changes = asyncio.run(apply_sources(target, document, dry_run=dry_run))
    except AimeshError as exc:
        fix = {
            grpc.StatusCode.INVALID_ARGUMENT: "fix the definitions the message names",
            grpc.StatusCode.FAILED_PRECONDITION: "keep the stored contract (only compatible changes), or "
            "register the changed source under a new name",
        }
        raise DevstackError("ingest", exc.message, fix.get(exc.code, "see the ingest service log")) from exc
    except grpc.aio.AioRpcError as exc:
        fixes = {
            grpc.StatusCode.INVALID_ARGUMENT: "fix the definition the message names",
            grpc.StatusCode.FAILED_PRECONDITION: "another change got in first: apply the file again",
            grpc.StatusCode.UNAVAILABLE: f"start ingest (`aimesh up --only ingest`) or pass --address (tried {target})",
            grpc.StatusCode.DEADLINE_EXCEEDED: f"check ingest at {target} with `aimesh status`",
        }
        raise DevstackError(
            "ingest", f"{exc.code().name}: {exc.details()}", fixes.get(exc.code(), "see the ingest service log")
        ) from exc
    table = Table(
        "source", "action", "version", "topic", "what changed", title=f"apply {file}{' (dry run)' if dry_run else ''}"
    )
    colours = {Action.CREATED: "green", Action.UPDATED: "yellow", Action.UNCHANGED: "dim"}
    for change in changes:
        table.add_row(
            change.name,
            f"[{colours[change.action]}]{change.action.value}[/]",
            str(change.version),
            change.topic,
            change.detail,
        )
    _console().print(table)


@ingest_app.command("replay-dlq")
def replay_dlq(
    source: Annotated[str | None, typer.Option(help="Only entries of this source.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only entries with this reason, e.g. NOT_ALLOWED_VALUE.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Only entries dead-lettered at or after this time (ISO 8601, local if naive)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be re-submitted; send nothing.")] = False,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (default INGEST_KAFKA_BOOTSTRAP).")
    ] = None,
) -> None:
    """Re-submit dead-lettered records to their source's topic (after a schema fix); nothing is published twice.

    Reads the DLQ topic and the source registry of the ingest settings (INGEST_* environment).
    """
    try:
        from aimesh.ingest.replay import ReplayFilter, ReplaySummary, run_replay
        from aimesh.ingest.settings import IngestSettings
    except ImportError as exc:
        raise DevstackError("ingest", f"aimesh-ingest is not installed ({exc})", "run `make setup`") from exc
    settings = IngestSettings()
    if bootstrap:
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    console = _console()
    with Progress(
        TextColumn("[bold]replay-dlq[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(settings.dlq_topic, total=None)

        def show(summary: ReplaySummary) -> None:
            progress.update(task, completed=summary.scanned, description=f"{summary.resubmitted} re-submitted")

        try:
            summary = asyncio.run(
                run_replay(
                    settings,
                    only=ReplayFilter(source=source, reason=reason),
                    since=since,
                    dry_run=dry_run,
                    on_start=lambda total: progress.update(task, total=total),
                    on_progress=show,
                )
            )
        except (KafkaError, TimeoutError) as exc:
            raise DevstackError(
                "ingest",
                f"replay of {settings.dlq_topic} at {settings.kafka_bootstrap} failed ({exc})",
                "check Kafka with `aimesh status` and run it again (re-running never duplicates)",
            ) from exc
    table = Table(title=f"DLQ replay of {settings.dlq_topic}{' (dry run: nothing sent)' if dry_run else ''}")
    table.add_column("what")
    table.add_column("records", justify="right")
    rows = [
        ("scanned", summary.scanned),
        ("matching the filters", summary.matched),
        ("re-submitted" if not dry_run else "would be re-submitted", summary.resubmitted),
        ("skipped: entry of a chain already re-submitted", summary.already_replayed),
        ("skipped: no source / unknown topic", summary.unroutable),
        ("skipped: not a DeadLetter", summary.unreadable),
    ]
    rows += [(f"  source {name}", n) for name, n in sorted(summary.by_source.items())]
    rows += [(f"  reason {name}", n) for name, n in sorted(summary.by_reason.items())]
    for what, count in rows:
        table.add_row(what, str(count))
    console.print(table)


def _feature_settings() -> Any:
    try:
        from aimesh.feature.settings import FeatureSettings
    except ImportError as exc:
        raise DevstackError("feature", f"aimesh-feature is not installed ({exc})", "run `make setup`") from exc
    return FeatureSettings()


@feature_app.command("apply")
def feature_apply(
    file: Annotated[
        Path,
        typer.Argument(
            help="Feature definitions (YAML), e.g. a use case pack's features.yaml "
            "(examples/src/aimesh/examples/banking/pack/features.yaml); the service ships none."
        ),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the diff; store nothing.")] = False,
    address: Annotated[
        str | None, typer.Option(help="The feature service's gRPC address (default 127.0.0.1:FEATURE_GRPC_PORT).")
    ] = None,
) -> None:
    """Validate FILE, show what it creates / updates / leaves unchanged, and store it (new versions).

    Breaking changes to stored definitions are refused; new or re-laid-out views are backfilled by the service.
    """
    import grpc

    from aimesh.api.feature.v1 import feature_pb2
    from aimesh.feature.operations import apply_file

    settings = _feature_settings()
    target = address or f"127.0.0.1:{settings.grpc_port}"
    try:
        document = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DevstackError(
            "feature", f"cannot read {file} ({exc})", "give the path of a YAML definitions file"
        ) from exc
    try:
        response = asyncio.run(apply_file(target, document, dry_run=dry_run))
    except grpc.aio.AioRpcError as exc:
        fixes = {
            grpc.StatusCode.INVALID_ARGUMENT: "fix the definitions at the path named",
            grpc.StatusCode.FAILED_PRECONDITION: "keep the stored computation; give changed features a new name",
            grpc.StatusCode.UNAVAILABLE: "start the feature service (`aimesh up --only feature`) or pass --address",
        }
        raise DevstackError(
            "feature", f"{exc.code().name}: {exc.details()}", fixes.get(exc.code(), "see the feature service log")
        ) from exc
    table = Table(
        "kind", "name", "action", "version", "what changed", title=f"apply {file}{' (dry run)' if dry_run else ''}"
    )
    colours = {"CREATED": "green", "UPDATED": "yellow", "UNCHANGED": "dim"}
    for change in response.changes:
        action = feature_pb2.ChangeAction.Name(change.action).removeprefix("CHANGE_ACTION_")
        table.add_row(
            change.kind,
            change.name,
            f"[{colours.get(action, 'white')}]{action.lower()}[/]",
            str(change.version),
            change.detail,
        )
    _console().print(table)


@feature_app.command("backfill")
def feature_backfill(
    view: Annotated[str, typer.Argument(help="The feature view to initialise from the lake.")],
) -> None:
    """Initialise VIEW's online state from the lake (record batches, bounded memory); safe to re-run.

    Uses the feature service's database and lake (FEATURE_* environment); the stream keeps applying meanwhile.
    """
    from aimesh.core.errors import AimeshError
    from aimesh.feature.operations import backfill

    settings = _feature_settings()
    console = _console()
    with Progress(
        TextColumn("[bold]backfill[/] " + view), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(view, total=None)
        try:
            result = asyncio.run(
                backfill(settings, view, on_progress=lambda rows: progress.update(task, completed=rows))
            )
        except AimeshError as exc:
            raise DevstackError("feature", exc.message, "apply the view first (`aimesh feature apply`)") from exc
    console.print(
        f"[bold green]backfilled[/] {result.view}: {result.rows} lake rows, {result.written} events written, "
        f"{result.skipped} rows without the entity id"
    )


@feature_app.command("check")
def feature_check(
    samples: Annotated[int, typer.Option("--samples", help="Entities sampled per feature view.")] = 50,
    seed: Annotated[int | None, typer.Option(help="Random seed (repeatable samples).")] = None,
) -> None:
    """Compare online values with offline (lake) retrieval for sampled entities and times; exit 1 on any mismatch."""
    from aimesh.feature.operations import check

    report = asyncio.run(check(_feature_settings(), samples=samples, seed=seed))
    console = _console()
    summary = Table("feature view", "values compared", title="online vs offline")
    for view, count in sorted(report.compared.items()):
        summary.add_row(view, str(count))
    console.print(summary)
    if report.ok:
        console.print("[bold green]consistent[/]: every sampled online value equals its offline value")
        return
    table = Table("view", "entity", "at", "feature", "online", "offline", title=f"{len(report.mismatches)} mismatches")
    for m in report.mismatches[:200]:
        at = datetime.fromtimestamp(m.at_us / 1e6).astimezone().isoformat(timespec="microseconds")
        table.add_row(m.view, m.entity_id, at, m.feature, m.online, m.offline)
    console.print(table)
    raise typer.Exit(1)


T = TypeVar("T")
ModelName = Annotated[str, typer.Argument(help="The registered model.")]
Actor = Annotated[
    str | None, typer.Option(help="Who makes the change (recorded in the audit; default the OS user name).")
]
Reason = Annotated[str, typer.Option(help="Why (recorded in the audit).")]
TrainingAddress = Annotated[
    str | None, typer.Option(help="The training service's gRPC address (default 127.0.0.1:TRAINING_GRPC_PORT).")
]


def _training_settings() -> Any:
    try:
        from aimesh.training.settings import TrainingSettings
    except ImportError as exc:
        raise DevstackError("training", f"aimesh-training is not installed ({exc})", "run `make setup`") from exc
    return TrainingSettings()


def _training_call(address: str | None, model: str, call: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """``call(target)`` against the training service; its gRPC errors as one-line DevstackErrors."""
    import grpc

    target = address or f"127.0.0.1:{_training_settings().grpc_port}"
    try:
        return asyncio.run(call(target))
    except grpc.aio.AioRpcError as exc:
        fixes = {
            grpc.StatusCode.INVALID_ARGUMENT: "fix the option the message names",
            grpc.StatusCode.NOT_FOUND: f"check the model name and versions (`aimesh model policy {model}`)",
            grpc.StatusCode.FAILED_PRECONDITION: f"see the current policy (`aimesh model policy {model}`) and run "
            "the command again",
            grpc.StatusCode.UNAVAILABLE: f"start training (`aimesh up --only training`) or pass --address "
            f"(tried {target})",
            grpc.StatusCode.DEADLINE_EXCEEDED: f"check training at {target} with `aimesh status`",
        }
        raise DevstackError(
            "training", f"{exc.code().name}: {exc.details()}", fixes.get(exc.code(), "see the training service log")
        ) from exc


def _fallback(policy: Any) -> str:
    """A policy's fallback for the audit table (``aimesh.core.fallback.describe``), ``-`` for none."""
    from aimesh.core.fallback import describe
    from aimesh.training.traffic_policy import fallback_of

    fallback = fallback_of(policy)
    return "-" if fallback is None else describe(fallback)


def _fallback_option(score: float | None, version: int | None, rule: str | None) -> Any:
    """The ``Fallback`` one of ``--fallback-score``, ``--fallback-version`` or ``--fallback-rule`` asks for
    (None when none is given); ``DevstackError`` when several are, or the rule is not a FallbackRule in
    protobuf JSON (inline, or ``@FILE``)."""
    from google.protobuf import json_format

    from aimesh.api.training.v1 import training_pb2

    given = [name for name, value in (("score", score), ("version", version), ("rule", rule)) if value is not None]
    if len(given) > 1:
        raise DevstackError(
            "training", f"--fallback-{given[0]} and --fallback-{given[1]} contradict", "pass one fallback kind"
        )
    if score is not None:
        return training_pb2.Fallback(constant_score=score)
    if version is not None:
        return training_pb2.Fallback(previous_version=training_pb2.PreviousVersionFallback(version=version))
    if rule is None:
        return None
    text = Path(rule[1:]).read_text(encoding="utf-8") if rule.startswith("@") else rule
    try:
        return training_pb2.Fallback(rule=json_format.Parse(text, training_pb2.FallbackRule()))
    except json_format.ParseError as exc:
        raise DevstackError(
            "training",
            f"--fallback-rule is not a FallbackRule: {exc}",
            'pass e.g. \'{"conditions": [{"field": "context.amount", "op": "OP_GT", "number": 1000, "score": 0.9}], '
            '"default_score": 0.05}\' or @rule.json',
        ) from exc


def _split(policy: Any) -> str:
    """A policy's split and fallback in words: ``canary v2 at 0.1 of key entities, shadow v3 mirroring
    0.25 of requests, fallback score 0.5`` (``champion only`` without canary and shadow)."""
    parts = []
    if policy.canary_version:
        parts.append(f"canary v{policy.canary_version} at {policy.canary_weight:.4g} of key entities")
    if policy.shadow_version:
        parts.append(f"shadow v{policy.shadow_version} mirroring {policy.shadow_share:.4g} of requests")
    words = ", ".join(parts) or "champion only"
    fallback = _fallback(policy)
    return words if fallback == "-" else f"{words}, fallback {fallback}"


def _revision(policy: Any) -> str:
    if not policy.revision:
        return "revision 0 (never set)"
    when = policy.time.ToDatetime(tzinfo=UTC).astimezone().isoformat(timespec="seconds")
    return f"revision {policy.revision} by {policy.actor} at {when}" + (f": {policy.reason}" if policy.reason else "")


@model_app.command("traffic")
def model_traffic(
    model: ModelName,
    *,
    canary_version: Annotated[int | None, typer.Option(help="Version that gets canary traffic (0: none).")] = None,
    canary_weight: Annotated[float | None, typer.Option(help="Share of key entities on the canary, 0..1.")] = None,
    shadow_version: Annotated[int | None, typer.Option(help="Version requests are mirrored to (0: none).")] = None,
    shadow_share: Annotated[float | None, typer.Option(help="Share of requests mirrored, 0..1.")] = None,
    fallback_score: Annotated[
        float | None, typer.Option(help="Constant score Score answers when the model cannot be called in time.")
    ] = None,
    fallback_version: Annotated[
        int | None, typer.Option(help="Version scored instead when the routed one cannot be called in time.")
    ] = None,
    fallback_rule: Annotated[
        str | None,
        typer.Option(
            help="A rule over request fields scored instead (FallbackRule in protobuf JSON, or @FILE): the first "
            "condition that holds gives the score, else default_score."
        ),
    ] = None,
    no_fallback: Annotated[bool, typer.Option("--no-fallback", help="Drop the fallback.")] = False,
    actor: Actor = None,
    reason: Reason = "",
    address: TrainingAddress = None,
) -> None:
    """Change MODEL's traffic policy: options not given keep their current value (a version set to 0 drops
    its weight or share). Refused when the policy changed since it was read; an identical policy records
    nothing."""
    from aimesh.training.operations import SplitChange, set_traffic

    fallback = _fallback_option(fallback_score, fallback_version, fallback_rule)
    if no_fallback and fallback is not None:
        raise DevstackError("training", "a --fallback-... option and --no-fallback contradict", "pass one of them")
    change = SplitChange(canary_version, canary_weight, shadow_version, shadow_share, fallback, no_fallback)
    who = actor or getpass.getuser()
    policy, changed = _training_call(
        address, model, lambda target: set_traffic(target, model, change, actor=who, reason=reason)
    )
    verb = "[bold green]set[/]" if changed else "[dim]unchanged[/]"
    _console().print(f"{verb} {model}: {_split(policy)} ({_revision(policy)})")


@model_app.command("policy")
def model_policy(
    model: ModelName,
    limit: Annotated[int, typer.Option(help="How many revisions of the audit to show.")] = 20,
    address: TrainingAddress = None,
) -> None:
    """Show MODEL's champion, its current traffic policy and the policy's revisions, newest first."""
    from aimesh.training.operations import policy_and_audit

    champion_alias = _training_settings().champion_alias
    current, audit, champion = _training_call(
        address,
        model,
        lambda target: policy_and_audit(target, model, limit=limit, champion_alias=champion_alias),
    )
    console = _console()
    console.print(f"{model}@{champion_alias}: " + (f"v{champion.version}" if champion is not None else "none"))
    console.print(f"traffic: {_split(current)} ({_revision(current)})")
    table = Table(
        "revision", "canary", "weight", "shadow", "share", "fallback", "actor", "time", "reason", title="policy audit"
    )
    for p in audit:
        table.add_row(
            str(p.revision),
            f"v{p.canary_version}" if p.canary_version else "-",
            f"{p.canary_weight:.4g}",
            f"v{p.shadow_version}" if p.shadow_version else "-",
            f"{p.shadow_share:.4g}",
            _fallback(p),
            p.actor,
            p.time.ToDatetime(tzinfo=UTC).astimezone().isoformat(timespec="seconds"),
            p.reason,
        )
    console.print(table)


@model_app.command("promote")
def model_promote(model: ModelName, actor: Actor = None, reason: Reason = "", address: TrainingAddress = None) -> None:
    """Promote MODEL's canary: the champion alias points at the canary version and the canary is cleared."""
    from aimesh.training.operations import promote

    who = actor or getpass.getuser()
    response = _training_call(address, model, lambda target: promote(target, model, actor=who, reason=reason))
    change = response.champion
    _console().print(
        f"[bold green]promoted[/] {model}@{change.alias}: v{change.previous_version} -> v{change.new_version}; "
        f"traffic: {_split(response.policy)} ({_revision(response.policy)})"
    )


@model_app.command("rollback")
def model_rollback(model: ModelName, actor: Actor = None, reason: Reason = "", address: TrainingAddress = None) -> None:
    """Roll MODEL's canary and shadow back: the champion takes all traffic (nothing to roll back: no change)."""
    from aimesh.training.operations import rollback

    who = actor or getpass.getuser()
    policy = _training_call(address, model, lambda target: rollback(target, model, actor=who, reason=reason))
    _console().print(f"[bold green]rolled back[/] {model}: {_split(policy)} ({_revision(policy)})")


@kibana_app.command("import")
def kibana_import(
    *,
    url: Annotated[str, typer.Option("--url", help="Kibana base URL, e.g. http://127.0.0.1:5601.")],
    space: Annotated[str | None, typer.Option("--space", help="Kibana space id (default: the default space).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace objects that already exist.")] = False,
    file: Annotated[
        Path | None, typer.Option("--file", help="NDJSON file (default: deploy/kibana/aimesh-saved-objects.ndjson).")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="KIBANA_API_KEY", help="Kibana API key.")] = None,
    username: Annotated[str | None, typer.Option(envvar="KIBANA_USERNAME", help="Basic-auth user.")] = None,
    password: Annotated[str | None, typer.Option(envvar="KIBANA_PASSWORD", help="Basic-auth password.")] = None,
) -> None:
    """Import the data views, saved searches, Lens charts and dashboards with Kibana's saved-objects import API."""
    ndjson = file or repo_root() / "deploy" / "kibana" / "aimesh-saved-objects.ndjson"
    headers = {"Authorization": f"ApiKey {api_key}"} if api_key else {}
    auth = (username, password or "") if username else None
    result = import_saved_objects(url, ndjson, space=space, overwrite=overwrite, headers=headers, auth=auth)
    _console().print(f"[bold green]imported[/] {result.success_count} saved object(s) from {ndjson} into {url}")


def main() -> None:
    """Console-script entry point: run the app; DevstackError -> one line on stderr, exit status 1."""
    # aiokafka logs every refused connection at ERROR; a probe that fails is reported in the table instead.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    credentials.use_demo_token(Paths.default())  # the gRPC commands authenticate as the stack's demo tenant
    try:
        app()
    except DevstackError as exc:
        Console(stderr=True).print(f"[bold red]error[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; `aimesh down` stops what was started")
        sys.exit(130)
