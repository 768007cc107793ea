"""``python -m aimesh.examples.retail demo``: the next-item scenario on the running mesh, with a summary.

Each run uses the next seed (kept in ``$AIMESH_HOME/retail/demo-seed``), so a re-run adds a new
catalogue and new users instead of replaying the same events.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aimesh.examples.banking.demo import next_seed
from aimesh.examples.mesh import ScenarioError, use_stack_token
from aimesh.examples.retail.scenario import (
    METRICS,
    MODEL_NAME,
    MeshAddress,
    Scenario,
    ScenarioConfig,
    ScenarioSummary,
)


def summary_table(summary: ScenarioSummary) -> Table:
    """The demo's closing summary: what went in, what the model learned against popularity, how fast it answered."""
    table = Table(title="aimesh retail scenario (next-item recommendations)", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    published = summary.published
    table.add_row("retail records published", f"{published.total:,}")
    for topic, count in sorted(published.per_topic.items()):
        table.add_row(f"  {topic}", f"{count:,}")
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in published.event_types.most_common())
    table.add_row("  well-formed interactions", kinds or "none")
    table.add_row("  users / items interacted with", f"{len(published.users):,} / {len(published.items):,}")
    table.add_row("records ingested (canonical + lake)", f"{summary.ingest_accepted:,}")
    dlq = ", ".join(f"{reason} {count}" for reason, count in summary.dlq_by_reason.most_common()) or "none"
    table.add_row("records in the DLQ", f"{sum(summary.dlq_by_reason.values())} ({dlq})")
    if summary.run is not None:
        table.add_row("model", f"{MODEL_NAME} v{summary.run.model_version} (alias champion)")
        for metric in METRICS:
            model, popular = summary.metric(metric), summary.metric(f"popularity_{metric}")
            name, _, full = metric.partition("_")
            against = "the full catalogue" if full else "100 sampled negatives"
            table.add_row(f"{name.upper()} vs {against}", f"model {model:.3f} / popularity {popular:.3f}")
    answered = summary.answered
    table.add_row("Recommend calls over gRPC", f"{len(answered):,} ok, {sum(summary.errors.values())} failed")
    table.add_row("  answered from popular items (fallback)", f"{summary.fallbacks:,}")
    table.add_row(
        "Recommend latency p50 / p99",
        f"{summary.latency_percentile(0.5):.1f} ms / {summary.latency_percentile(0.99):.1f} ms",
    )
    table.add_row("predictions in Elasticsearch", f"{summary.indexed_predictions:,}")
    for step, seconds in summary.seconds.items():
        table.add_row(f"time: {step}", f"{seconds:.1f} s")
    return table


def run_demo(events: int, requests: int, console: Console) -> int:
    """Run the scenario against the local mesh; returns the process exit code."""
    home = Path(os.environ.get("AIMESH_HOME", ".aimesh"))
    use_stack_token(home)
    config = ScenarioConfig(events=events, requests=requests, seed=next_seed(home / "retail"))
    console.print(
        f"[bold]retail scenario[/bold]: {events:,} interactions (seed {config.seed}), {requests:,} Recommend calls"
    )

    async def go() -> ScenarioSummary:
        scenario = Scenario(MeshAddress(), config, report=lambda line: console.print(f"  [green]✓[/green] {line}"))
        try:
            with console.status("running the scenario ..."):
                return await scenario.run()
        finally:
            await scenario.close()

    try:
        summary = asyncio.run(go())
    except ScenarioError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    console.print(summary_table(summary))
    return 0
