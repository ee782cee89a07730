"""`microagents eval`: score a workflow on a dataset; compare two variants; sweep tiers.

The work is `microagents.evals`; this module parses options, builds one engine per variant
(the simulated back-end imitates one workflow's agents), prints tables and writes files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import MicroagentsError
from ._common import EXIT_FAILED, EXIT_OK, echo_problems, make_project, project_options

if TYPE_CHECKING:
    from rich.console import Console

    from ..evals._compare import Comparison
    from ..evals._report import EvalReport
    from ..evals._sweep import SweepReport
    from ..graph._compiled import CompiledWorkflow
    from ..runtime._engine import Engine


@click.command("eval")
@click.argument("workflow", type=click.Path(path_type=Path), required=False)
@click.option("--dataset", type=click.Path(path_type=Path), metavar="FILE.jsonl")
@click.option(
    "--compare",
    "variant",
    metavar="VARIANT",
    help="Also run B and report B − A per node with paired-bootstrap intervals: another "
    "workflow file, NAME@VERSION of an agent, git:REF, or eval:ID (a stored eval, not re-run).",
)
@click.option("--sweep-tiers", is_flag=True, help="Pin each agent node to each rung of its ladder.")
@click.option(
    "--target", type=click.FloatRange(0, 1), help="Accuracy the sweep's recommendation must meet."
)
@click.option("--node", "nodes", multiple=True, help="Sweep only this node (repeatable).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), metavar="FILE")
@click.option("--html", "html_path", type=click.Path(path_type=Path), metavar="FILE")
@click.option("--fail-under", type=click.FloatRange(0, 1), help="Exit 1 below this accuracy.")
@click.option("--list", "list_only", is_flag=True, help="List the stored evals and stop.")
@click.option(
    "--backend",
    type=click.Choice(["anthropic", "simulate"]),
    default="anthropic",
    show_default=True,
)
@click.option("--concurrency", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--budget-usd", type=click.FloatRange(min=0, min_open=True), metavar="X")
@click.option("--cache", is_flag=True, help="Use the response cache under MICROAGENTS_HOME.")
@click.option("--judge-tier", default="sonnet", show_default=True, help="Tier of $judge checks.")
@project_options
def eval_command(
    workflow: Path | None,
    dataset: Path | None,
    variant: str | None,
    sweep_tiers: bool,
    target: float | None,
    nodes: tuple[str, ...],
    json_path: Path | None,
    html_path: Path | None,
    fail_under: float | None,
    list_only: bool,
    backend: str,
    concurrency: int,
    budget_usd: float | None,
    cache: bool,
    judge_tier: str,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> int:
    """Run WORKFLOW on every case of --dataset and score it per node.

    Prints accuracy, escalation rate, cost and latency per node, confusion matrices of router
    nodes and the failing cases with their trace ids; stores the eval under
    MICROAGENTS_HOME/evals (see --list); --json and --html write the report to files.

    \b
    Exit status: 0 done; 1 accuracy below --fail-under; 2 bad input, dataset or spec.
    """
    import anyio

    from ..evals._compare import compare_reports
    from ..evals._dataset import load_dataset
    from ..evals._evaluate import evaluate
    from ..evals._store import list_evals, load_eval, save_eval
    from ..evals._sweep import sweep_tiers as run_sweep
    from ..evals._variants import load_variant

    if list_only:
        _print_list(list_evals())
        return EXIT_OK
    if workflow is None or dataset is None:
        raise MicroagentsError("give a WORKFLOW and --dataset FILE.jsonl (or --list)")
    if backend == "anthropic" and not os.environ.get("ANTHROPIC_API_KEY"):
        from ._run import NO_KEY_MESSAGE

        raise MicroagentsError(NO_KEY_MESSAGE)
    if (target is not None or nodes) and not sweep_tiers:
        raise MicroagentsError("--target and --node go with --sweep-tiers")
    project = make_project(agent_dirs, tool_modules, sources)
    compiled = project.load_workflow(workflow)
    echo_problems(list(compiled.warnings))
    cases = load_dataset(dataset)

    def engine_for(flow: CompiledWorkflow) -> Engine:
        from ..models._tiers import TierTable
        from ._run import _engine, _latency_scale

        scale = _latency_scale() if backend == "simulate" else 0.0
        return _engine(
            backend, flow, TierTable.load(), cache=cache, cache_ttl="5m", latency_scale=scale
        )

    async def score(flow: CompiledWorkflow, label: str) -> EvalReport:
        async with engine_for(flow) as engine:
            return await evaluate(
                flow,
                cases,
                engine=engine,
                concurrency=concurrency,
                budget_usd=budget_usd,
                judge_tier=judge_tier,
                variant=label,
            )

    async def sweep() -> SweepReport:
        async with engine_for(compiled) as engine:
            return await run_sweep(
                compiled,
                cases,
                engine=engine,
                target=target,
                nodes=list(nodes) or None,
                concurrency=concurrency,
                judge_tier=judge_tier,
            )

    console = _console()
    swept = anyio.run(sweep) if sweep_tiers else None
    report = swept.ladder_report if swept is not None else anyio.run(score, compiled, "A")
    stored = report.to_json()
    save_eval(stored)
    _print_report(console, report)
    comparison: Comparison | None = None
    if variant is not None:
        if variant.startswith("eval:"):
            baseline, candidate = load_eval(variant[5:]), stored
        else:
            from ..project._project import Project

            with load_variant(variant, workflow, project, project_at=Project) as other:
                b_report = anyio.run(score, other.workflow, f"B: {other.label}")
            baseline, candidate = stored, b_report.to_json()
            save_eval(candidate)
            _print_report(console, b_report)
        comparison = compare_reports(baseline, candidate)
        _print_comparison(console, comparison)
    if swept is not None:
        _print_sweep(console, swept)
    if json_path is not None:
        document: dict[str, Any] = dict(stored)
        if comparison is not None:
            document["comparison"] = comparison.to_json()
        if swept is not None:
            document["sweep"] = swept.to_json()
        json_path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        console.print(f"json: {json_path}")
    if html_path is not None:
        from ..evals._html import render_html

        html_path.write_text(render_html(report, comparison=comparison, sweep=swept))
        console.print(f"html: {html_path}")
    accuracy = report.accuracy
    if fail_under is not None and (accuracy is None or accuracy < fail_under):
        console.print(f"accuracy {accuracy} is below --fail-under {fail_under}")
        return EXIT_FAILED
    return EXIT_OK


def _console() -> Console:
    from rich.console import Console

    from ._common import terminal_width

    return Console(stderr=True, width=max(terminal_width(), 100), highlight=False)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.5f}"


def _print_report(console: Console, report: EvalReport) -> None:
    from rich.table import Table

    data = report.to_json()
    overall = data["overall"]
    simulated = "SIMULATED " if report.simulated else ""
    console.print(
        f"{simulated}eval {report.eval_id} of {report.workflow} ({report.variant}) on "
        f"{report.dataset}: {overall['ran']}/{overall['cases']} cases run, "
        f"accuracy {_pct(overall['accuracy'])}, escalation rate "
        f"{_pct(overall['escalation_rate'])}, cost {_usd(overall['cost_usd'])} "
        f"({_usd(overall['cost_per_case_usd'])} a case), latency p50 "
        f"{overall['latency_p50_s']} s p95 {overall['latency_p95_s']} s"
    )
    table = Table("node", "accuracy", "labelled", "runs", "escalated", "by trigger", "cost/run",
                  "p50 s", "p95 s")  # fmt: skip
    for node, n in data["nodes"].items():
        triggers = ", ".join(f"{t} {r:.0%}" for t, r in n["escalations_by_trigger"].items())
        table.add_row(node, _pct(n["accuracy"]), str(n["labelled"]), str(n["runs"]),
                      _pct(n["escalation_rate"]), triggers or "-", _usd(n["cost_per_run_usd"]),
                      str(n["latency_p50_s"]), str(n["latency_p95_s"]))  # fmt: skip
    console.print(table)
    for confusion in report.confusions:
        matrix = Table(f"{confusion.node}.{confusion.field}: expected ↓ actual →",
                       *confusion.labels)  # fmt: skip
        for label, row in zip(confusion.labels, confusion.matrix, strict=True):
            matrix.add_row(label, *(str(count) for count in row))
        console.print(matrix)
    failing = data["failing"]
    console.print(f"failing cases: {len(failing)}")
    for case in failing[:20]:
        why = case["error"] or "; ".join(
            f"{c['target']}{'.' + c['field'] if c['field'] else ''}: {c['reason']}, "
            f"got {json.dumps(c['actual'])[:60]}"
            for c in case["checks"]
        )
        console.print(f"  {case['case']} (line {case['line']}, trace {case['trace_id']}): {why}")
    if len(failing) > 20:
        console.print(f"  … and {len(failing) - 20} more (see --json)")


def _print_comparison(console: Console, comparison: Comparison) -> None:
    from rich.table import Table

    console.print(f"A: {comparison.a}\nB: {comparison.b}")
    table = Table("target", "cases", "A", "B", "B − A",
                  f"{comparison.confidence:.0%} interval", "")  # fmt: skip
    for d in comparison.deltas:
        verdict = "better" if d.low > 0 else "worse" if d.high < 0 else "no clear difference"
        table.add_row(d.target, str(d.cases), _pct(d.a), _pct(d.b), f"{d.delta:+.1%}",
                      f"[{d.low:+.1%}, {d.high:+.1%}]", verdict)  # fmt: skip
    console.print(table)


def _print_sweep(console: Console, sweep: SweepReport) -> None:
    from rich.table import Table

    table = Table("node", "option", "accuracy", "cost/run", "escalated", "scored by", "")
    for node in sweep.nodes:
        best = sweep.recommend(node)
        for option in sweep.of(node):
            mark = "← cheapest meeting target" if best is not None and best == option else ""
            table.add_row(node, option.option, _pct(option.accuracy), _usd(option.cost_per_run),
                          _pct(option.escalation_rate), option.scored_by, mark)  # fmt: skip
    console.print(table)
    if sweep.target is not None:
        for node in sweep.nodes:
            best = sweep.recommend(node)
            advice = best.option if best is not None else f"no option reaches {sweep.target:.0%}"
            console.print(f"{node}: {advice}")


def _print_list(stored: list[Any]) -> None:
    for item in stored:
        overall = item.overall
        click.echo(
            f"{item.eval_id}  {item.workflow}  {item.variant}  {item.dataset}  "
            f"accuracy {_pct(overall.get('accuracy'))}  cost ${overall.get('cost_usd', 0):.5f}"
        )
    if not stored:
        click.echo("no stored evals")
