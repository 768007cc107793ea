"""``python -m aimesh.examples.banking demo``: the fraud scenario on the running mesh, with a summary.

Each run uses the next seed (kept in ``$AIMESH_HOME/demo-seed``), so a re-run adds a new population
of customers and cards instead of replaying the same events.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aimesh.examples.banking.scenario import MeshAddress, Scenario, ScenarioConfig, ScenarioSummary
from aimesh.examples.mesh import ScenarioError, use_stack_token


def next_seed(home: Path, first: int = 42) -> int:
    """The seed for this run: one more than the last run's (``first`` on the first run)."""
    path = home / "demo-seed"
    seed = int(path.read_text()) + 1 if path.exists() else first
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{seed}\n")
    return seed


def summary_table(summary: ScenarioSummary) -> Table:
    """The demo's closing summary: what went in, what the model learned, how fast it scored."""
    table = Table(title="aimesh fraud scenario", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    published = summary.published
    table.add_row("upstream events published", f"{published.total:,}")
    table.add_row("  of which fraudulent transactions", f"{published.fraud_transactions:,}")
    table.add_row("events ingested (canonical + lake)", f"{summary.ingest_accepted:,}")
    dlq = ", ".join(f"{reason} {count}" for reason, count in summary.dlq_by_reason.most_common()) or "none"
    table.add_row("records in the DLQ", f"{sum(summary.dlq_by_reason.values())} ({dlq})")
    if summary.run is not None:
        metrics = summary.run.metrics
        table.add_row("model", f"fraud v{summary.run.model_version} (alias champion)")
        table.add_row("eval ROC AUC", f"{metrics.get('auc', float('nan')):.3f}")
        table.add_row(
            "precision / recall at threshold",
            f"{metrics.get('precision', float('nan')):.3f} / {metrics.get('recall', float('nan')):.3f}",
        )
    ok = len(summary.latencies_ms)
    table.add_row("payments scored over gRPC", f"{ok:,} ok, {sum(summary.errors.values())} failed")
    table.add_row(
        "Score latency p50 / p99",
        f"{summary.latency_percentile(0.5):.1f} ms / {summary.latency_percentile(0.99):.1f} ms",
    )
    table.add_row("predictions in Elasticsearch", f"{summary.indexed_predictions:,}")
    if summary.drift is not None:
        table.add_row(
            "score PSI vs training reference", f"{summary.drift.psi:.4f} ({summary.drift.sample_count} scores)"
        )
    for step, seconds in summary.seconds.items():
        table.add_row(f"time: {step}", f"{seconds:.1f} s")
    return table


def run_demo(events: int, payments: int, console: Console) -> int:
    """Run the scenario against the local mesh; returns the process exit code."""
    home = Path(os.environ.get("AIMESH_HOME", ".aimesh"))
    use_stack_token(home)
    config = ScenarioConfig(events=events, payments=payments, seed=next_seed(home))
    console.print(
        f"[bold]fraud scenario[/bold]: {events:,} upstream events (seed {config.seed}), {payments:,} payments to score"
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
