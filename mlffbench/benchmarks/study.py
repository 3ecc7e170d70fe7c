"""`mlffbench study`: a data-engineering experiment. Which training data makes a force field generalize?

A study runs the paper's loop (generate -> train a committee -> battery) once per *recipe*, a
named variant of the `generate` protocol, with everything else fixed: the same number of training
frames (`frames`, via the train split's `max_frames`, so gains come from content, not size), the
same committee size, seeds, architecture and benchmarks. Optionally the `paper` recipe is repeated
at smaller sizes (a learning curve: what data alone buys).

Each recipe is an ordinary resumable run directory (`OUTDIR/recipes/<name>`), so a killed study
continues where it stopped: finished stages and benchmarks are reused by their hashes. The
comparison (`study.json`, `study.md`, `study.png`) takes each benchmark's headline metric (its
first scored metric) as mean +- std of the members' |error| (`error_magnitude`), the gain over
the baseline recipe, and whether that gain exceeds the noise (|gain| > sqrt(std_a^2 + std_b^2)).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, model_validator

from mlffbench.benchmarks import PASSED, battery
from mlffbench.config import StrictModel, load_config, resolve_path
from mlffbench.errors import UserError
from mlffbench.io import write_json

MARKER = ".mlffbench-study"


class RecipeConfig(StrictModel):
    """A variant of the generate protocol: a generate config file and/or dotted overrides on it."""

    config: str | None = None
    overrides: dict[str, Any] = {}
    description: str = ""


class StudyConfig(StrictModel):
    """Config of `mlffbench study` (see configs/study-quick.yaml).

    run: the base run config (units, LJ reference, generate/train stage configs, benchmark settings).
    frames: training frames per recipe (every recipe trains on exactly this many).
    members: committee size per recipe (>= 2 gives error bars; the issue asks >= 3).
    vary: how members differ ('seed' or 'bootstrap').
    benchmarks: the benchmarks to run per recipe.
    baseline: the recipe the gains are measured against.
    recipes: {name: RecipeConfig}.
    learning_curve: smaller frame counts at which the baseline recipe is repeated.
    """

    run: str = "configs/run-quick.yaml"
    seed: int = Field(0, ge=0)
    frames: int = Field(200, ge=4)
    members: int = Field(3, ge=1, le=16)
    vary: str = "seed"
    benchmarks: list[str] = Field(["lattice_constant", "vacancy_formation"], min_length=1)
    baseline: str = "paper"
    recipes: dict[str, RecipeConfig] = Field(min_length=1)
    learning_curve: list[int] = []
    train_overrides: dict[str, Any] = {}

    @model_validator(mode="after")
    def _baseline_listed(self):
        if self.baseline not in self.recipes:
            raise ValueError(f"baseline {self.baseline!r} is not one of the recipes")
        return self


def plan(cfg: StudyConfig) -> dict[str, tuple[RecipeConfig, int]]:
    """{task name: (recipe, training frames)}: every recipe, then the baseline's learning curve."""
    tasks = {name: (r, cfg.frames) for name, r in cfg.recipes.items()}
    for n in cfg.learning_curve:
        if n != cfg.frames:
            tasks[f"{cfg.baseline}@{n}"] = (cfg.recipes[cfg.baseline], n)
    return tasks


def recipe_run_config(cfg: StudyConfig, base, recipe: RecipeConfig, frames: int):
    """The base RunConfig with this recipe's generate stage and the study's training size and committee."""
    gen = base.generate.model_copy(update={
        "config": recipe.config or base.generate.config,
        "overrides": {**base.generate.overrides, **recipe.overrides}})
    train = base.train.model_copy(update={"overrides": {
        **base.train.overrides, **cfg.train_overrides, "splits.train.max_frames": frames,
        "ensemble.members": cfg.members, "ensemble.vary": cfg.vary}})
    return base.model_copy(update={"generate": gen, "train": train, "seed": cfg.seed, "model": None})


def validate_recipes(cfg: StudyConfig, base, tasks: dict, source: str = "config") -> None:
    """Every task's generate and train stage configs, validated before anything runs (UserError
    naming the recipe and key), so a bad recipe fails the study up front, not an hour in."""
    from mlffbench.benchmarks.runner import stage_configs

    for name, (recipe, frames) in tasks.items():
        if recipe.config and not resolve_path(recipe.config).is_file():
            raise UserError(f"{source}: recipes.{name}.config: file not found: {recipe.config}")
        try:
            stage_configs(recipe_run_config(cfg, base, recipe, frames), f"{source}: recipes.{name}")
        except UserError as exc:
            msg = str(exc)
            raise UserError(msg if f"recipes.{name}" in msg else f"{source}: recipes.{name}: {msg}") from None


def headline(bench_result: dict) -> tuple[str, dict] | None:
    """(metric name, metric) of a passed benchmark: its first scored metric, else its first metric."""
    if bench_result.get("state") != PASSED or not bench_result.get("metrics"):
        return None
    metrics = bench_result["metrics"]
    for name, m in metrics.items():
        if m.get("good") is not None:
            return name, m
    name = next(iter(metrics))
    return name, metrics[name]


def error_magnitude(m: dict) -> dict:
    """A headline metric as an error size: mean and std (ddof=1) of the members' |value|.

    The mean of signed member errors can cancel (members +8.7 and -4.7 meV/atom would read as a
    small error), so the table ranks recipes by the members' error magnitudes; the signed mean is
    kept as `signed_value`. A single potential: |value|, std 0 (or the metric's own std)."""
    import numpy as np

    members = [v for v in (m.get("members") or []) if v is not None and np.isfinite(v)]
    if len(members) >= 2:
        mag = np.abs(np.asarray(members, float))
        return {"value": float(mag.mean()), "std": float(mag.std(ddof=1)), "n": len(mag),
                "signed_value": m["value"], "members": members}
    return {"value": abs(m["value"]), "std": m.get("std") or 0.0, "n": m.get("n", 1), "signed_value": m["value"]}


def compare_recipes(docs: dict[str, dict], baseline: str) -> dict:
    """The study table: per benchmark and task, headline error mean +- std, gain over the baseline."""
    table: dict[str, dict] = {}
    for task, doc in docs.items():
        for bname, res in doc["benchmarks"].items():
            if "deselected" in (res.get("reason") or ""):
                continue  # not part of the study
            h = headline(res)
            row = table.setdefault(bname, {"metric": None, "unit": None, "tasks": {}})
            if h is None:
                row["tasks"][task] = {"state": res.get("state"), "reason": res.get("reason", "")}
                continue
            name, m = h
            row["metric"], row["unit"] = name, m.get("unit")
            row["tasks"][task] = {"state": PASSED, **error_magnitude(m), "score": res.get("score")}
    for row in table.values():
        base = row["tasks"].get(baseline, {})
        for task, t in row["tasks"].items():
            if "value" not in t or "value" not in base or task == baseline:
                continue
            gain = base["value"] - t["value"]  # positive: this recipe's error is smaller
            noise = math.hypot(base["std"], t["std"])
            t.update(gain=gain, noise=noise, gain_exceeds_noise=bool(abs(gain) > noise))
    return table


def markdown_table(table: dict, tasks: list[str], baseline: str) -> str:
    """The study table as Markdown: error mean +- std per task, gain over the baseline (* = beyond noise)."""
    lines = [f"| benchmark (headline error) | {' | '.join(tasks)} |", "|---" * (len(tasks) + 1) + "|"]
    for bname, row in table.items():
        cells = []
        for task in tasks:
            t = row["tasks"].get(task, {})
            if "value" not in t:
                cells.append(t.get("state", "-"))
                continue
            cell = f"{t['value']:.3g} ± {t['std']:.2g}"
            if "gain" in t:
                cell += f" ({t['gain']:+.2g}{'*' if t['gain_exceeds_noise'] else ''})"
            cells.append(cell)
        unit = "" if row["unit"] in (None, "1") else f" [{row['unit']}]"
        lines.append(f"| {bname}: {row['metric']}{unit} | {' | '.join(cells)} |")
    lines.append("")
    lines.append(f"Mean ± std of the members' |error| over the committee; in parentheses the gain over `{baseline}` (error reduction; "
                 "* = larger than the combined spread).")
    return "\n".join(lines) + "\n"


def plot_study(table: dict, tasks: list[str], path: Path) -> None:
    """One panel per benchmark: headline error per task with committee error bars (log scale)."""
    from mlffbench.plotting import PALETTE, pyplot, save

    plt = pyplot()
    rows = [(b, r) for b, r in table.items() if any("value" in t for t in r["tasks"].values())]
    if not rows:
        return
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.2), squeeze=False)
    for ax, (bname, row) in zip(axes[0], rows):
        xs = [k for k, t in enumerate(tasks) if "value" in row["tasks"].get(t, {})]
        vals = [row["tasks"][tasks[k]]["value"] for k in xs]
        errs = [row["tasks"][tasks[k]]["std"] for k in xs]
        ax.errorbar(xs, vals, yerr=errs, fmt="o", color=PALETTE[0], capsize=3)
        ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize=8)
        unit = "" if row["unit"] in (None, "1") else f" ({row['unit']})"
        ax.set_ylabel(f"{row['metric']}{unit}", fontsize=8)
        ax.set_title(bname, fontsize=9)
        if all(v > 0 for v in vals):
            ax.set_yscale("log")
    fig.tight_layout()
    save(fig, path)


def run_study(cfg: StudyConfig, outdir: Path, source: str = "config", overwrite: bool = False,
              progress: bool = False, log: Callable[[str], None] = print,
              recipes: list[str] | None = None) -> dict:
    """Every recipe's loop into OUTDIR/recipes/<task>, then the comparison. Resumable."""
    import shutil

    from mlffbench.benchmarks.runner import RunConfig, run_battery

    reg = battery()
    for name in cfg.benchmarks:
        if name not in reg:
            raise UserError(f"{source}: benchmarks: unknown benchmark {name!r} (known: {', '.join(reg)})")
    base_path = resolve_path(cfg.run)
    if not base_path.is_file():
        raise UserError(f"{source}: run: file not found: {cfg.run}")
    base = load_config(RunConfig, base_path)
    tasks = plan(cfg)
    check_recipes(tasks, recipes, source)
    validate_recipes(cfg, base, tasks, source)
    if outdir.exists() and any(outdir.iterdir()) and not (outdir / MARKER).is_file():
        if not overwrite:
            raise UserError(f"output directory {outdir} exists and is not an mlffbench study; "
                            "pass --overwrite to replace it")
        shutil.rmtree(outdir)
    elif overwrite and outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / MARKER).write_text("mlffbench study directory (resumable)\n")

    docs = {}
    for k, (task, (recipe, frames)) in enumerate(tasks.items(), 1):
        if recipes is not None and task not in recipes:
            continue  # run by another process (`mlffbench study --recipe`, `mlffbench sweep`)
        log(f"[recipe {k}/{len(tasks)}] {task}: {frames} training frames, {cfg.members} members")
        rcfg = recipe_run_config(cfg, base, recipe, frames)
        docs[task] = run_battery(rcfg, outdir / "recipes" / task, select=cfg.benchmarks, progress=progress,
                                 log=lambda m, t=task: log(f"  {t}: {m}"), source=f"{source}: recipes.{task}")
    if recipes is not None:  # some tasks only: no table (the run without --recipe writes it)
        return {"tasks": {t: {"summary": d["summary"]} for t, d in docs.items()}, "table": None}
    table = compare_recipes(docs, cfg.baseline)
    names = list(tasks)
    doc = {"study_version": 1, "baseline": cfg.baseline, "frames": cfg.frames, "members": cfg.members,
           "benchmarks": cfg.benchmarks, "tasks": {t: {"frames": f, "recipe": r.model_dump(mode="json"),
                                                         "summary": docs[t]["summary"]}
                                                     for t, (r, f) in tasks.items()},
           "table": table, "config": cfg.model_dump(mode="json")}
    write_json(outdir / "study.json", doc)
    (outdir / "study.md").write_text(f"# Data-engineering study\n\n{markdown_table(table, names, cfg.baseline)}")
    try:
        plot_study(table, names, outdir / "study.png")
    except Exception as exc:  # the table matters, the picture is a bonus
        log(f"study.png not written: {type(exc).__name__}: {exc}")
    return doc


def check_recipes(tasks: dict, recipes: list[str] | None, source: str = "config") -> None:
    """`recipes` (run only these tasks of `plan`; None = all) names tasks of the study, else UserError."""
    unknown = [r for r in (recipes or []) if r not in tasks]
    if unknown:
        raise UserError(f"{source}: --recipe {unknown[0]!r} is not a task of the study (tasks: {', '.join(tasks)})")
