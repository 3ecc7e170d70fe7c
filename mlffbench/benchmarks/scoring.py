"""Scores: raw model-vs-LJ errors -> 0..1, with thresholds declared by each benchmark.

Each benchmark declares its metrics (`Metric`: unit, ``good``, ``bad``, one-line ``rationale``)
where it is registered; a run config's ``metrics:`` file may override any of them (same layout:
``{benchmark: {metric: {good, bad, unit, rationale}}}``). The score of |error| x is 1 for x <= good, 0 for x >= bad, and linear in log10(x)
in between (errors span decades; a 2x better model should gain the same whatever the scale).
A benchmark's score is the mean of its scored metrics; metrics without a threshold are reported
but not scored. Scores exist only for 'passed' benchmarks: a failure is a state, not a zero.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field, model_validator

from mlffbench.config import StrictModel, read_yaml, validate
from mlffbench.errors import UserError



class Threshold(StrictModel):
    good: float = Field(gt=0)
    bad: float = Field(gt=0)
    unit: str
    rationale: str = Field(min_length=10)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.good < self.bad:
            raise ValueError("good must be smaller than bad")
        return self


def declared_thresholds(benchmarks: dict | None = None) -> dict[str, dict[str, Threshold]]:
    """{benchmark: {metric: Threshold}} from the benchmarks' own `metrics` declarations."""
    if benchmarks is None:
        from mlffbench.benchmarks import battery

        benchmarks = battery()
    out: dict[str, dict[str, Threshold]] = {}
    for name, bench in benchmarks.items():
        table = {m: Threshold(good=d.good, bad=d.bad, unit=d.unit, rationale=d.rationale)
                 for m, d in bench.metrics.items() if d.scored}
        if table:
            out[name] = table
    return out


def load_thresholds(path: str | Path | None = None, benchmarks: dict | None = None
                    ) -> dict[str, dict[str, Threshold]]:
    """The declared thresholds, overridden by the YAML file at `path` (UserError naming the key)."""
    out = declared_thresholds(benchmarks)
    if path is None:
        return out
    p = Path(path)
    for bench, metrics in read_yaml(p).items():
        if not isinstance(metrics, dict):
            raise UserError(f"{p}: {bench}: expected a mapping of metric names to thresholds")
        out.setdefault(bench, {}).update(
            {m: validate(Threshold, t if isinstance(t, dict) else {}, f"{p}: {bench}.{m}")
             for m, t in metrics.items()})
    return out


def score_value(x: float | None, th: Threshold) -> float | None:
    """|x| -> 0..1 (see module docstring); None when x is missing."""
    if x is None or not math.isfinite(x):
        return None
    x = abs(x)
    if x <= th.good:
        return 1.0
    if x >= th.bad:
        return 0.0
    return (math.log10(th.bad) - math.log10(x)) / (math.log10(th.bad) - math.log10(th.good))


def score_metrics(bench: str, metrics: dict, thresholds: dict) -> tuple[dict, float | None]:
    """Add 'score', 'good', 'bad' to each scored metric; return (metrics, benchmark score)."""
    table = thresholds.get(bench, {})
    scores = []
    out = {}
    for name, m in metrics.items():
        m = dict(m)
        th = table.get(name)
        if th is not None:
            if th.unit != m.get("unit"):
                raise UserError(f"thresholds: {bench}.{name}: unit {th.unit!r} but the benchmark "
                                f"reports {m.get('unit')!r}")
            s = score_value(m.get("value"), th)
            if m.get("n_nonfinite"):
                # a committee value from the members that could compute it (e.g. a hop rate from the
                # one member whose crystal stayed solid) would score the survivors, not the model
                s = None
                m["score_withheld"] = (f"{m['n_nonfinite']} of {m['n_nonfinite'] + m.get('n', 0)} "
                                       "members have no value")
            m.update(score=s, good=th.good, bad=th.bad, rationale=th.rationale)
            if s is not None:
                scores.append(s)
        out[name] = m
    return out, (sum(scores) / len(scores) if scores else None)
