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
import numbers
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, model_validator

from mlffbench.benchmarks import PASSED, battery
from mlffbench.config import StrictModel, load_config, resolve_path
from mlffbench.errors import UserError
from mlffbench.io import write_json

MARKER = ".mlffbench-study"
SHARED = "data-shared-from.txt"  # in a task directory: the task whose dataset it reuses


class RecipeConfig(StrictModel):
    """A variant of the generate protocol: a generate config file and/or dotted overrides on it."""

    config: str | None = None
    overrides: dict[str, Any] = {}
    description: str = ""


class ExtraConfig(StrictModel):
    """Benchmarks outside the default study: run only by `mlffbench study --extra`, and only on
    `tasks` (empty: the baseline recipe), on the committees the study already trained (generate
    and train are reused from the study's cache; nothing is retrained). For the costly ones
    (`hop_rates`: vacancy MD per member; `migration_barrier`: a string per member and a0),
    e.g. the paper's claim that the model trained without vacancies reproduces barrier and hop
    rates. Their settings come from the run config's benchmark block and `benchmark_overrides`."""

    tasks: list[str] = []
    benchmarks: list[str] = []


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
    train_overrides / generate_overrides: dotted overrides of every task's train / generate stage
        (a recipe's own generate overrides go on top).
    benchmark_overrides: {benchmark: settings} merged into the run config's benchmark block for every
        task (an `overrides` dict is merged key by key), e.g. smaller cells for the study.
    table_metrics: {benchmark: [metric, ...]}: further rows of the table besides each benchmark's
        headline (scored metrics as errors with gains; unscored ones as plain values).
    extra: ExtraConfig: benchmarks run only with `--extra`, on some tasks (see ExtraConfig).
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
    generate_overrides: dict[str, Any] = {}
    benchmark_overrides: dict[str, dict[str, Any]] = {}
    table_metrics: dict[str, list[str]] = {}
    extra: ExtraConfig = ExtraConfig()

    @model_validator(mode="after")
    def _baseline_listed(self):
        if self.baseline not in self.recipes:
            raise ValueError(f"baseline {self.baseline!r} is not one of the recipes")
        return self

    def extra_tasks(self) -> list[str]:
        """The tasks `--extra` adds benchmarks to (default: the baseline)."""
        return list(self.extra.tasks) or [self.baseline]


def task_benchmarks(cfg: StudyConfig, task: str, extra: bool) -> list[str]:
    """The benchmarks a task runs: the study's list, plus `extra.benchmarks` on the extra tasks
    when `extra` is on (the study's benchmarks keep their stored results either way)."""
    names = list(cfg.benchmarks)
    if extra and task in cfg.extra_tasks():
        names += [b for b in cfg.extra.benchmarks if b not in names]
    return names


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
        "overrides": {**base.generate.overrides, **cfg.generate_overrides, **recipe.overrides}})
    train = base.train.model_copy(update={"overrides": {
        **base.train.overrides, **cfg.train_overrides, "splits.train.max_frames": frames,
        "ensemble.members": cfg.members, "ensemble.vary": cfg.vary}})
    benches = {k: dict(v or {}) for k, v in base.benchmarks.items()}
    for name, extra in cfg.benchmark_overrides.items():
        block = benches.setdefault(name, {})
        for key, val in extra.items():
            block[key] = {**(block.get(key) or {}), **val} if key == "overrides" and isinstance(val, dict) else val
    return base.model_copy(update={"generate": gen, "train": train, "seed": cfg.seed, "model": None,
                                   "benchmarks": benches})


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

    members = _finite_members(m)
    if len(members) >= 2:
        mag = np.abs(np.asarray(members, float))
        return {"value": float(mag.mean()), "std": float(mag.std(ddof=1)), "n": len(mag),
                "signed_value": m["value"], "members": members}
    return {"value": abs(m["value"]), "std": m.get("std") or 0.0, "n": m.get("n", 1), "signed_value": m["value"]}


def _cell(m: dict, as_error: bool) -> dict:
    """One table cell from a metric: an error size (`error_magnitude`), or a plain value (signed
    mean +- std (ddof=1) over the members where it has them). A committee metric that some
    members could not compute (None / nan) records `members_with_value` = (k, K)."""
    cell = _cell_value(m, as_error)
    given, finite = m.get("members") or [], _finite_members(m)
    if given and len(finite) < len(given):
        cell["members_with_value"] = (len(finite), len(given))
    return cell


def _cell_value(m: dict, as_error: bool) -> dict:
    import numpy as np

    if as_error:
        return error_magnitude(m)
    members = _finite_members(m)
    if len(members) >= 2:
        return {"value": float(np.mean(members)), "std": float(np.std(members, ddof=1)), "n": len(members),
                "members": members}
    return {"value": m["value"], "std": m.get("std") or 0.0, "n": 1}


def _finite(x) -> bool:
    """Is `x` a number that is not nan/inf (JSON writes nan as null)?"""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _finite_members(m: dict) -> list[float]:
    """A metric's member values that are numbers (members that could not compute it are None/nan)."""
    return [v for v in (m.get("members") or []) if _finite(v)]


def _has_spread(t: dict) -> bool:
    """Does a cell carry an error bar (a committee's members, or the metric's own std)?"""
    return len(t.get("members") or []) >= 2 or bool(t.get("std"))


def compare_recipes(docs: dict[str, dict], baseline: str, extra: dict[str, list[str]] | None = None) -> dict:
    """The study table: per benchmark (its headline metric) and per `extra` {benchmark: [metric]}
    row, and per task, the error mean +- std and the gain over the baseline.

    A row's `kind` is 'error' (scored metrics: members' |error|, gain = baseline - task, positive =
    smaller error) or 'value' (unscored: signed mean +- std, no gain). `gain_exceeds_noise` is None
    where either side has no spread (a whole-committee metric without members)."""
    table: dict[str, dict] = {}
    for task, doc in docs.items():
        for bname, res in doc["benchmarks"].items():
            if "deselected" in (res.get("reason") or ""):
                continue  # not part of the study
            h = headline(res)
            rows = [(bname, h if h is None or _finite(h[1].get("value")) else None)]
            for mname in (extra or {}).get(bname, []):
                m = (res.get("metrics") or {}).get(mname) if h is not None else None
                rows.append((f"{bname}: {mname}", None if m is None or not _finite(m.get("value")) else (mname, m)))
            for key, hm in rows:
                row = table.setdefault(key, {"metric": None, "unit": None, "kind": "error", "tasks": {}})
                if hm is None:
                    if h is not None and key == bname and row["metric"] is None:
                        row.update(metric=h[0], unit=h[1].get("unit"))
                    why = (h[1].get("note") if h is not None else None) or res.get("reason", "")
                    row["tasks"][task] = {"state": res.get("state") if h is None else "no value", "reason": why}
                    continue
                name, m = hm
                as_error = key == bname or m.get("good") is not None
                row.update(metric=name, unit=m.get("unit"), kind="error" if as_error else "value")
                row["tasks"][task] = {"state": PASSED, **_cell(m, as_error), "score": res.get("score")}
    for row in table.values():
        base = row["tasks"].get(baseline, {})
        if row["kind"] != "error":
            continue
        for task, t in row["tasks"].items():
            if "value" not in t or "value" not in base or task == baseline:
                continue
            gain = base["value"] - t["value"]  # positive: this recipe's error is smaller
            noise = math.hypot(base["std"], t["std"])
            known = _has_spread(base) and _has_spread(t)
            t.update(gain=gain, noise=noise, gain_exceeds_noise=bool(abs(gain) > noise) if known else None)
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
            cell = f"{t['value']:.3g} ± {t['std']:.2g}" if _has_spread(t) else f"{t['value']:.3g}"
            if t.get("members_with_value"):
                cell += " ({} of {} members)".format(*t["members_with_value"])
            if "gain" in t:
                mark = {True: "*", False: "", None: "?"}[t["gain_exceeds_noise"]]
                cell += f" ({t['gain']:+.2g}{mark})"
            cells.append(cell)
        unit = "" if row["unit"] in (None, "1") else f" [{row['unit']}]"
        label = bname if ":" in bname else f"{bname}: {row['metric']}"
        lines.append(f"| {label}{unit} | {' | '.join(cells)} |")
    lines.append("")
    explained = set()  # a failed benchmark fills several rows (its table_metrics): one line each
    for bname, row in table.items():
        for task in tasks:
            t = row["tasks"].get(task, {})
            benchmark = bname.split(":")[0]
            if "value" not in t and t.get("reason") and (task, benchmark, t["reason"]) not in explained:
                explained.add((task, benchmark, t["reason"]))
                lines.append(f"- {t.get('state', 'no value')}, `{task}` {benchmark}: {t['reason']}")
    if lines[-1] != "":
        lines.append("")
    lines.append(f"Mean ± std of the members' |error| over the committee; in parentheses the gain over `{baseline}` (error reduction; "
                 "* = larger than the combined spread; ? = no spread to compare with). Value rows (unscored metrics) show the "
                 "signed mean ± std and no gain.")
    return "\n".join(lines) + "\n"


def rate_ratio_interval(n_model: int, t_model: float, n_ref: int, t_ref: float,
                        confidence: float = 0.95) -> tuple[float, float, float]:
    """(ratio, low, high): the ratio of two Poisson rates (n_model / t_model) / (n_ref / t_ref)
    with its exact conditional interval. Given n = n_model + n_ref, n_model is binomial with
    p = rho t_model / (rho t_model + t_ref), so the Clopper-Pearson interval of p maps to rho.
    Times in any one unit; low = 0 when n_model = 0, high = inf when n_ref = 0; nan without hops."""
    from scipy import stats

    n = n_model + n_ref
    if n == 0:
        return float("nan"), 0.0, float("inf")
    a = (1.0 - confidence) / 2.0
    p_lo = 0.0 if n_model == 0 else float(stats.beta.ppf(a, n_model, n_ref + 1))
    p_hi = 1.0 if n_ref == 0 else float(stats.beta.ppf(1.0 - a, n_model + 1, n_ref))
    scale = t_ref / t_model

    def rho(p: float) -> float:
        return float("inf") if p >= 1.0 else scale * p / (1.0 - p)

    ratio = float("inf") if n_ref == 0 else (n_model / t_model) / (n_ref / t_ref)
    return ratio, rho(p_lo), rho(p_hi)


def hop_rate_summary(result: dict) -> dict | None:
    """Model vs LJ vacancy hop rates from a passed `hop_rates` result (result.json content).

    Per temperature tag ('105K'): LJ's hops, simulated time (ps) and rate (1/ps) with the exact
    Poisson 95 % interval; per committee member the same plus the rate ratio model/LJ with its
    exact 95 % interval (`rate_ratio_interval`); and for the committee the pooled ratio (all
    members' hops over all members' time: the committee's mean rate) with its interval, and the
    mean +- std (ddof=1) over members of log10(ratio) (model spread; members with 0 hops left out).
    None if the benchmark did not pass."""
    import numpy as np

    from mlffbench.properties.rates import rate_with_interval

    if result.get("state") != PASSED or not result.get("reference"):
        return None
    ref = result["reference"]["rates"]
    model = result.get("model") or {}
    members = model.get("members") or [model]
    out = {}
    for tag, r in ref.items():
        t_ref = float(r["simulated_time"]["value"])
        row = {"temperature_K": float(r["temperature"]["value"]),
               "lj": rate_with_interval(r["hops"], t_ref), "members": []}
        for m in members:
            mr = m["rates"].get(tag)
            if mr is None:
                continue
            t_m = float(mr["simulated_time"]["value"])
            ratio, lo, hi = rate_ratio_interval(mr["hops"], t_m, r["hops"], t_ref)
            row["members"].append({**rate_with_interval(mr["hops"], t_m), "ratio": ratio,
                                   "ratio_low": lo, "ratio_high": hi})
        n_all = sum(m["hops"] for m in row["members"])
        t_all = sum(m["time"] for m in row["members"])
        ratio, lo, hi = rate_ratio_interval(n_all, t_all, r["hops"], t_ref)
        logs = [math.log10(m["ratio"]) for m in row["members"] if m["hops"] > 0 and np.isfinite(m["ratio"])]
        row["committee"] = {**rate_with_interval(n_all, t_all), "ratio": ratio, "ratio_low": lo, "ratio_high": hi,
                            "log10_ratio_mean": float(np.mean(logs)) if logs else float("nan"),
                            "log10_ratio_std": float(np.std(logs, ddof=1)) if len(logs) >= 2 else float("nan"),
                            "n_members_with_hops": len(logs)}
        out[tag] = row
    return out


def hop_rate_markdown(summaries: dict[str, dict]) -> str:
    """Markdown of `hop_rate_summary` per task: rates (1/ps) and ratios with 95 % intervals."""
    import numpy as np

    def iv(x: dict, key: str = "rate") -> str:
        return f"{x[key]:.3g} [{x[key + '_low']:.2g}, {x[key + '_high']:.2g}]"

    lines = ["| task | T (K) | potential | hops | time (ps) | rate (1/ps) [95 %] | model/LJ [95 %] |",
             "|---|---|---|---|---|---|---|"]
    for task, summ in summaries.items():
        for tag, row in summ.items():
            T = f"{row['temperature_K']:g}"
            lj = row["lj"]
            lines.append(f"| {task} | {T} | LJ | {lj['hops']} | {lj['time']:.0f} | {iv(lj)} | 1 |")
            for k, m in enumerate(row["members"]):
                lines.append(f"| {task} | {T} | member {k} | {m['hops']} | {m['time']:.0f} | {iv(m)} | "
                             f"{iv(m, 'ratio')} |")
            c = row["committee"]
            spread = (f"; log10 ratio over members {c['log10_ratio_mean']:+.2f} ± {c['log10_ratio_std']:.2f}"
                      if np.isfinite(c["log10_ratio_std"]) else "")
            lines.append(f"| {task} | {T} | committee (pooled) | {c['hops']} | {c['time']:.0f} | {iv(c)} | "
                         f"{iv(c, 'ratio')}{spread} |")
    lines.append("")
    lines.append("Exact Poisson 95 % intervals for each rate; the ratio's interval is the exact conditional "
                 "(binomial) one. Pooled: all members' hops over all members' time. The spread over members "
                 "is the model uncertainty, the intervals the sampling noise.")
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


def _cpu_s() -> float:
    """CPU seconds (user + system, all threads) of this process and its waited-for children."""
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def share_dataset(task_dir: Path, gcfg, done_dirs: list[Path]) -> Path | None:
    """Reuse an earlier task's generated dataset when its generate config is the same (the
    learning curve trains on the baseline's data): hard links (copies where links fail) into
    task_dir/data, which the run's generate stage then reuses by its config hash. Returns the
    source run directory, or None (nothing to share, or task_dir already has data)."""
    import os
    import shutil

    from mlffbench.benchmarks.runner import MARKER as RUN_MARKER
    from mlffbench.config import config_hash
    from mlffbench.io import read_json

    if (task_dir / "data" / "manifest.json").is_file():
        return None
    want = config_hash(gcfg)
    for d in done_dirs:
        man = d / "data" / "manifest.json"
        if man.is_file() and read_json(man).get("config_hash") == want:
            task_dir.mkdir(parents=True, exist_ok=True)
            (task_dir / RUN_MARKER).write_text("mlffbench run directory (resumable)\n")
            tmp = task_dir / ".data.sharing"
            shutil.rmtree(tmp, ignore_errors=True)

            def link(src, dst):
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)

            shutil.copytree(d / "data", tmp, copy_function=link)
            shutil.rmtree(task_dir / "data", ignore_errors=True)
            tmp.rename(task_dir / "data")
            (task_dir / SHARED).write_text(d.name + "\n")
            return d
    return None


def task_times(task_dir: Path, doc: dict, wall_s: float, cpu_s: float) -> dict:
    """Wall times of one task (s), kept across resumes in task_dir/study-times.json.

    stages: generate and train as first measured (a resumed run reports 0 for a reused stage, so
    the stored time is kept), each benchmark's own wall time (stored with its result); wall_s:
    their sum; cpu_s: CPU seconds of this process spent on the task, summed over invocations;
    last_invocation_s: wall time of the latest invocation (0-ish when everything was reused)."""
    from mlffbench.io import read_json

    path = task_dir / "study-times.json"
    old = read_json(path) if path.is_file() else {}
    man = read_json(task_dir / "manifest.json") if (task_dir / "manifest.json").is_file() else {}
    run_walls = man.get("wall_times_s") or {}
    stages = {}
    for st in ("generate", "train"):
        new = float(run_walls.get(st) or 0.0)
        stages[st] = new if new > 0 else float((old.get("stages") or {}).get(st, 0.0))
    if (task_dir / SHARED).is_file():
        stages["generate_shared_from"] = (task_dir / SHARED).read_text().strip()
    benches = {n: float(r.get("wall_time_s") or 0.0) for n, r in doc["benchmarks"].items()
               if "deselected" not in (r.get("reason") or "")}
    stages["battery"] = sum(benches.values())
    out = {"wall_s": stages["generate"] + stages["train"] + stages["battery"],
           "cpu_s": float(old.get("cpu_s", 0.0)) + cpu_s, "last_invocation_s": wall_s,
           "stages": stages, "benchmarks": benches}
    write_json(path, out)
    return out


def prepare_study_dir(outdir: Path, overwrite: bool) -> None:
    """Create (or, with overwrite, replace) OUTDIR; refuse a non-study directory without overwrite."""
    import shutil

    if outdir.exists() and any(outdir.iterdir()) and not (outdir / MARKER).is_file():
        if not overwrite:
            raise UserError(f"output directory {outdir} exists and is not an mlffbench study; "
                            "pass --overwrite to replace it")
        shutil.rmtree(outdir)
    elif overwrite and outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / MARKER).write_text("mlffbench study directory (resumable)\n")


def run_task(cfg: StudyConfig, rcfg, task_dir: Path, done_dirs: list[Path], progress: bool, log: Callable,
             source: str, select: list[str] | None = None) -> tuple[dict, dict]:
    """One task's run (its dataset shared from an earlier task where identical): (results doc, times)."""
    import time

    from mlffbench.benchmarks.runner import run_battery, stage_configs

    t0, c0 = time.perf_counter(), _cpu_s()
    shared = share_dataset(task_dir, stage_configs(rcfg, source)[0], done_dirs)
    if shared is not None:
        log(f"  {task_dir.name}: dataset shared from {shared.name} (same generate config)")
    doc = run_battery(rcfg, task_dir, select=select or cfg.benchmarks, progress=progress,
                      log=lambda m: log(f"  {task_dir.name}: {m}"), source=source)
    times = task_times(task_dir, doc, time.perf_counter() - t0, _cpu_s() - c0)
    log(f"  {task_dir.name}: {times['wall_s']:.0f} s (generate {times['stages']['generate']:.0f}, "
        f"train {times['stages']['train']:.0f}, battery {times['stages']['battery']:.0f}; "
        f"CPU {times['cpu_s']:.0f} s)")
    return doc, times


def times_table(times: dict[str, dict]) -> str:
    """Markdown: per task the wall time of each stage and the CPU time (s)."""
    bnames = sorted({b for t in times.values() for b in t["benchmarks"]})
    lines = ["| task | total wall (s) | generate | train | " + " | ".join(bnames) + " | CPU (s) |",
             "|---" * (len(bnames) + 5) + "|"]
    for task, t in times.items():
        st = t["stages"]
        gen = "shared" if st.get("generate_shared_from") else f"{st['generate']:.0f}"
        lines.append(f"| {task} | {t['wall_s']:.0f} | {gen} | {st['train']:.0f} | "
                     + " | ".join(f"{t['benchmarks'].get(b, 0.0):.0f}" for b in bnames) + f" | {t['cpu_s']:.0f} |")
    total = sum(t["wall_s"] for t in times.values())
    cpu = sum(t["cpu_s"] for t in times.values())
    lines.append(f"| all | {total:.0f} | | | " + " | " * len(bnames) + f"{cpu:.0f} |")
    return "\n".join(lines) + "\n"


def run_study(cfg: StudyConfig, outdir: Path, source: str = "config", overwrite: bool = False,
              progress: bool = False, log: Callable[[str], None] = print,
              recipes: list[str] | None = None, extra: bool = False) -> dict:
    """Every recipe's loop into OUTDIR/recipes/<task>, then the comparison. Resumable.

    extra: also run `cfg.extra.benchmarks` on `cfg.extra_tasks()` (from the cache: a finished
    study only runs the new benchmarks). Returns (and writes as study.json) the table, each
    task's summary and its wall/CPU times (s)."""
    from mlffbench.benchmarks.runner import RunConfig

    reg = battery()
    for name in cfg.benchmarks:
        if name not in reg:
            raise UserError(f"{source}: benchmarks: unknown benchmark {name!r} (known: {', '.join(reg)})")
    for name in [*cfg.benchmark_overrides, *cfg.table_metrics, *cfg.extra.benchmarks]:
        if name not in reg:
            raise UserError(f"{source}: unknown benchmark {name!r} in benchmark_overrides/table_metrics/extra")
    base_path = resolve_path(cfg.run)
    if not base_path.is_file():
        raise UserError(f"{source}: run: file not found: {cfg.run}")
    base = load_config(RunConfig, base_path)
    tasks = plan(cfg)
    check_recipes(tasks, recipes, source)
    bad = [t for t in cfg.extra.tasks if t not in tasks]
    if bad:
        raise UserError(f"{source}: extra.tasks: {bad[0]!r} is not a task of the study (tasks: {', '.join(tasks)})")
    validate_recipes(cfg, base, tasks, source)
    prepare_study_dir(outdir, overwrite)

    docs, times, done = {}, {}, []
    for k, (task, (recipe, frames)) in enumerate(tasks.items(), 1):
        if recipes is not None and task not in recipes:
            continue  # run by another process (`mlffbench study --recipe`, `mlffbench sweep`)
        log(f"[recipe {k}/{len(tasks)}] {task}: {frames} training frames, {cfg.members} members")
        rcfg = recipe_run_config(cfg, base, recipe, frames)
        task_dir = outdir / "recipes" / task
        docs[task], times[task] = run_task(cfg, rcfg, task_dir, done, progress, log, f"{source}: recipes.{task}",
                                           select=task_benchmarks(cfg, task, extra))
        done.append(task_dir)
    if recipes is not None:  # some tasks only: no table (the run without --recipe writes it)
        return {"tasks": {t: {"summary": d["summary"]} for t, d in docs.items()}, "table": None}
    return write_study(cfg, outdir, tasks, docs, times, log)


def write_study(cfg: StudyConfig, outdir: Path, tasks: dict, docs: dict, times: dict, log: Callable) -> dict:
    """study.json, study.md (findings and time tables) and study.png; returns study.json's content."""
    table = compare_recipes(docs, cfg.baseline, cfg.table_metrics)
    names = list(tasks)
    doc = {"study_version": 2, "baseline": cfg.baseline, "frames": cfg.frames, "members": cfg.members,
           "benchmarks": cfg.benchmarks,
           "tasks": {t: {"frames": f, "recipe": r.model_dump(mode="json"), "summary": docs[t]["summary"],
                         "times": times[t]} for t, (r, f) in tasks.items()},
           "wall_s": sum(t["wall_s"] for t in times.values()), "cpu_s": sum(t["cpu_s"] for t in times.values()),
           "table": table, "config": cfg.model_dump(mode="json")}
    hops = {t: h for t, d in docs.items()
            if (h := hop_rate_summary(d["benchmarks"].get("hop_rates") or {})) is not None}
    if hops:
        doc["hop_rates"] = hops
    write_json(outdir / "study.json", doc)
    hop_md = f"## Vacancy hop rates, model vs LJ\n\n{hop_rate_markdown(hops)}\n" if hops else ""
    (outdir / "study.md").write_text(f"# Data-engineering study\n\n{markdown_table(table, names, cfg.baseline)}\n"
                                     f"{hop_md}## Time per task (s; stages as first computed)\n\n{times_table(times)}")
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
