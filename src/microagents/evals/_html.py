"""The eval report as one self-contained HTML file: tables, and plots drawn as inline SVG.

Matplotlib draws the plots offline (glyphs as paths, so no font is fetched either); the page
has no script or style from elsewhere, and its Content-Security-Policy forbids loading
anything, so it opens the same on a laptop on a plane as in CI. Matplotlib is the `evals`
extra: `pip install 'microagents[evals]'`.
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

from ..errors import EvalError
from ._compare import Comparison
from ._report import Confusion, EvalReport
from ._sweep import SweepReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
# A few lines that count the drawn plots into the page (for a person: nothing to see; for a
# headless browser check: the proof that each SVG has a size and nothing was fetched).
CHECK_SCRIPT = """
addEventListener('load', () => {
  const drawn = [...document.querySelectorAll('figure.plot svg')].filter(svg => {
    const box = svg.getBoundingClientRect();
    return box.width > 50 && box.height > 50 && svg.querySelectorAll('path').length > 0;
  });
  document.body.dataset.plotsDrawn = String(drawn.length);
  // The confusion matrix is an inline data: image; anything else would be a fetch.
  const fetched = performance.getEntriesByType('resource').filter(e => !e.name.startsWith('data:'));
  document.body.dataset.resourcesLoaded = String(fetched.length);
});
"""
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure.plot { display: inline-block; margin: 0 1em 1em 0; }
.bad { color: #b00020; } .good { color: #1b7f3b; } code { font-size: 90%; }
"""


def render_html(
    report: EvalReport,
    *,
    comparison: Comparison | None = None,
    sweep: SweepReport | None = None,
) -> str:
    """The report (and a comparison or a sweep, when given) as a standalone HTML page."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EvalError(
            "the HTML report draws its plots with matplotlib, which is not installed: "
            "pip install 'microagents[evals]'"
        ) from None
    title = f"eval of {report.workflow} on {report.dataset}"
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p>eval <code>{_e(report.eval_id)}</code>, variant {_e(report.variant)}, "
        f"{_e(report.created_at)}{' — SIMULATED answers' if report.simulated else ''}</p>",
        _overall_table(report),
        _nodes_table(report),
        "<h2>Plots</h2>",
        _figure("accuracy-cost", _accuracy_cost_plot(Figure, report, sweep)),
        _figure("escalation", _escalation_plot(Figure, report)),
        *(_figure(f"confusion-{c.node}", _confusion_plot(Figure, c)) for c in report.confusions),
    ]
    if sweep is not None:
        parts.append(_sweep_table(sweep))
    if comparison is not None:
        parts.append(_comparison_table(comparison))
    parts.append(_failing_table(report))
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        f"<title>{_e(title)}</title><style>{STYLE}</style>"
        f"<script>{CHECK_SCRIPT}</script></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def _figure(name: str, figure: Figure) -> str:
    buffer = io.StringIO()
    # No date and a fixed hash salt: the same report gives the same bytes.
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    return f"<figure class='plot' id='plot-{_e(name)}'>{svg}</figure>"


def _accuracy_cost_plot(
    figure_type: type[Figure], report: EvalReport, sweep: SweepReport | None
) -> Figure:
    figure = figure_type(figsize=(6.4, 4.2))
    axes = figure.subplots()
    points: list[tuple[str, str, float, float]] = []
    if sweep is not None:
        for option in sweep.options:
            if option.accuracy is not None and option.cost_per_run is not None:
                points.append((option.node, option.option, option.cost_per_run, option.accuracy))
    else:
        for node in report.nodes:
            if node.accuracy is not None and node.cost_per_run is not None:
                points.append((node.node, "", node.cost_per_run, node.accuracy))
    for index, name in enumerate(dict.fromkeys(p[0] for p in points)):
        mine = [p for p in points if p[0] == name]
        xs, ys = [p[2] for p in mine], [p[3] for p in mine]
        axes.plot(xs, ys, marker="o", linestyle="-" if sweep else "", label=name, color=f"C{index}")
        for _, label, x, y in mine:
            if label:
                axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if sweep is not None and sweep.target is not None:
        axes.axhline(sweep.target, color="grey", linestyle=":", label=f"target {sweep.target}")
    axes.set_xlabel("cost per run of the node (USD)")
    axes.set_ylabel("accuracy")
    axes.set_ylim(-0.05, 1.05)
    axes.set_title("Accuracy against cost, per node" + (" and tier" if sweep else ""))
    if points:
        axes.legend(fontsize=8)
    return figure


def _escalation_plot(figure_type: type[Figure], report: EvalReport) -> Figure:
    figure = figure_type(figsize=(6.4, 3.6))
    axes = figure.subplots()
    nodes = [n for n in report.nodes if n.runs]
    rates = [n.escalation_rate or 0.0 for n in nodes]
    axes.barh([n.node for n in nodes], rates, color="C1")
    axes.set_xlim(0, 1)
    axes.invert_yaxis()
    axes.set_xlabel("escalation rate (share of the node's runs that climbed)")
    axes.set_title("Escalation rate per node")
    return figure


def _confusion_plot(figure_type: type[Figure], confusion: Confusion) -> Figure:
    size = max(3.6, 0.7 * len(confusion.labels) + 2)
    figure = figure_type(figsize=(size, size * 0.85))
    axes = figure.subplots()
    axes.imshow(confusion.matrix, cmap="Blues")
    ticks = range(len(confusion.labels))
    axes.set_xticks(ticks, confusion.labels, rotation=45, ha="right")
    axes.set_yticks(ticks, confusion.labels)
    peak = max((max(row) for row in confusion.matrix), default=0)
    for i, row in enumerate(confusion.matrix):
        for j, count in enumerate(row):
            colour = "white" if count > peak / 2 else "black"
            axes.text(j, i, str(count), ha="center", va="center", color=colour)
    axes.set_xlabel(f"actual {confusion.field}")
    axes.set_ylabel(f"expected {confusion.field}")
    axes.set_title(f"{confusion.node}: confusion matrix")
    return figure


def _overall_table(report: EvalReport) -> str:
    overall = report.to_json()["overall"]
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in overall.items())
    return f"<h2>Overall</h2><table>{rows}</table>"


def _nodes_table(report: EvalReport) -> str:
    nodes = report.to_json()["nodes"]
    head = (
        "<tr><th>node</th><th>accuracy</th><th>labelled</th><th>runs</th>"
        "<th>escalation rate</th><th>by trigger</th><th>cost/run</th><th>p50 s</th>"
        "<th>p95 s</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{_e(node)}</td><td>{_fmt(n['accuracy'])}</td><td>{n['labelled']}</td>"
        f"<td>{n['runs']}</td><td>{_fmt(n['escalation_rate'])}</td>"
        f"<td>{_e(', '.join(f'{t} {r}' for t, r in n['escalations_by_trigger'].items()))}</td>"
        f"<td>{_fmt(n['cost_per_run_usd'])}</td><td>{_fmt(n['latency_p50_s'])}</td>"
        f"<td>{_fmt(n['latency_p95_s'])}</td></tr>"
        for node, n in nodes.items()
    )
    return f"<h2>Per node</h2><table>{head}{rows}</table>"


def _sweep_table(sweep: SweepReport) -> str:
    rows = []
    for node in sweep.nodes:
        best = sweep.recommend(node)
        for option in sweep.of(node):
            mark = " ✔" if best is not None and option.option == best.option else ""
            rows.append(
                f"<tr><td>{_e(node)}</td><td>{_e(option.option)}{mark}</td>"
                f"<td>{_fmt(option.accuracy)}</td><td>{_fmt(option.cost_per_run)}</td>"
                f"<td>{_fmt(option.escalation_rate)}</td></tr>"
            )
    return (
        f"<h2>Tier sweep (target {_fmt(sweep.target)})</h2><table><tr><th>node</th>"
        "<th>option</th><th>accuracy</th><th>cost/run</th><th>escalation rate</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _comparison_table(comparison: Comparison) -> str:
    rows = "".join(
        f"<tr><td>{_e(d.target)}</td><td>{d.cases}</td><td>{d.a:.3f}</td><td>{d.b:.3f}</td>"
        f"<td class='{'good' if d.low > 0 else 'bad' if d.high < 0 else ''}'>{d.delta:+.3f}</td>"
        f"<td>[{d.low:+.3f}, {d.high:+.3f}]</td></tr>"
        for d in comparison.deltas
    )
    return (
        f"<h2>B − A</h2><p>A: {_e(comparison.a)}<br>B: {_e(comparison.b)}<br>"
        f"{comparison.confidence:.0%} paired-bootstrap intervals, {comparison.resamples} "
        "resamples</p><table><tr><th>target</th><th>cases</th><th>A</th><th>B</th>"
        f"<th>delta</th><th>interval</th></tr>{rows}</table>"
    )


def _failing_table(report: EvalReport) -> str:
    rows = []
    for case in report.failing:
        why = "; ".join(
            f"{target}{'.' + c.path if c.path else ''}: {c.reason} (got {c.actual!r})"
            for target, checks in case.checks.items()
            for c in checks
            if not c.passed
        )
        rows.append(
            f"<tr><td>{_e(case.case_id)}</td><td>{case.line}</td>"
            f"<td><code>{_e(case.trace_id or '-')}</code></td>"
            f"<td style='text-align:left'>{_e(case.error or why)}</td></tr>"
        )
    return (
        f"<h2>Failing cases ({len(rows)})</h2><table><tr><th>case</th><th>line</th>"
        "<th>trace id</th><th>why</th></tr>" + "".join(rows) + "</table>"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
