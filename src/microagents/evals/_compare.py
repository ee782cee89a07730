"""Two variants on one dataset, case by case: accuracy deltas with paired-bootstrap intervals.

Both sides are reports in their stable JSON shape (a fresh `EvalReport.to_json()` or a stored
eval), so a new run can be compared with one made last week. Cases pair by id; a target's
delta is the mean of (B − A) over the cases both sides scored, and its interval comes from
resampling those cases with replacement (a paired bootstrap), with a fixed seed so that the
same two reports always give the same interval.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._report import OUTPUT

OVERALL = "overall"
"""The target that passes when every labelled target of a case passed."""


@dataclass(frozen=True, slots=True)
class Delta:
    """B − A accuracy of one target (`overall`, `output` or a node id) over paired cases."""

    target: str
    cases: int
    a: float
    b: float
    low: float
    high: float

    @property
    def delta(self) -> float:
        return self.b - self.a

    @property
    def significant(self) -> bool:
        """The interval excludes zero: the difference is not noise at this confidence."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True, slots=True)
class Comparison:
    """Variant B against variant A."""

    a: str
    b: str
    confidence: float
    resamples: int
    deltas: tuple[Delta, ...]
    cost_per_case: tuple[float | None, float | None]

    def delta(self, target: str) -> Delta:
        for delta in self.deltas:
            if delta.target == target:
                return delta
        raise KeyError(target)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "cost_per_case_usd": {"a": self.cost_per_case[0], "b": self.cost_per_case[1]},
            "deltas": {
                d.target: {
                    "cases": d.cases,
                    "a": round(d.a, 4),
                    "b": round(d.b, 4),
                    "delta": round(d.delta, 4),
                    "low": round(d.low, 4),
                    "high": round(d.high, 4),
                    "significant": d.significant,
                }
                for d in self.deltas
            },
        }


def compare_reports(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare two reports' JSON (A the baseline, B the candidate)."""
    scores_a, scores_b = _scores(a), _scores(b)
    targets = [t for t in scores_a if t in scores_b]
    deltas = []
    for target in targets:
        pairs = [
            (scores_a[target][case], scores_b[target][case])
            for case in scores_a[target]
            if case in scores_b[target]
        ]
        if pairs:
            deltas.append(_bootstrap(target, pairs, confidence, resamples, seed))
    return Comparison(
        a=f"{a['variant']} ({a['eval_id']})",
        b=f"{b['variant']} ({b['eval_id']})",
        confidence=confidence,
        resamples=resamples,
        deltas=tuple(deltas),
        cost_per_case=(a["overall"]["cost_per_case_usd"], b["overall"]["cost_per_case_usd"]),
    )


def _scores(report: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Target → case id → 1 or 0, over the cases that ran; `overall` first, then `output`,
    then the nodes in the report's order."""
    scores: dict[str, dict[str, int]] = {OVERALL: {}, OUTPUT: {}}
    scores.update({node: {} for node in report["nodes"]})
    for case in report["cases"]:
        if case["status"] == "not_run":
            continue
        passed = [p for p in case["scores"].values() if p is not None]
        scores[OVERALL][case["case"]] = int(case["status"] == "ok" and all(passed))
        for target, ok in case["scores"].items():
            if ok is not None:
                scores.setdefault(target, {})[case["case"]] = int(ok)
    return {target: by_case for target, by_case in scores.items() if by_case}


def _bootstrap(
    target: str, pairs: list[tuple[int, int]], confidence: float, resamples: int, seed: int
) -> Delta:
    n = len(pairs)
    differences = [b - a for a, b in pairs]
    rng = random.Random(f"{seed}:{target}")  # per target, so adding a node changes no other
    means = sorted(sum(rng.choices(differences, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[int(tail * (resamples - 1))]
    high = means[int((1 - tail) * (resamples - 1) + 0.5)]
    mean_a = sum(a for a, _ in pairs) / n
    mean_b = sum(b for _, b in pairs) / n
    return Delta(target, n, mean_a, mean_b, low, high)
