"""`mlffbench sweep`: many `mlffbench run`s fanned out on a Dask cluster, merged into one OUTDIR.

A sweep config lists models (any `--model` form), benchmark selections and seeds; their product
is the task list, one `mlffbench run` each. Dask runs the tasks (we write no scheduler): a
`LocalCluster` of process workers with one thread each, an existing scheduler (`tcp://HOST:PORT`),
or a dask-jobqueue cluster (SLURM, PBS, LSF, SGE) from the config's `cluster:` section.

Every task runs in a fresh process on its worker (`python -m mlffbench run ...`: JAX does not
survive forking) with its threads pinned to one (XLA, OpenMP, MKL, OpenBLAS), so the numbers of
a task do not depend on where or next to what it ran: the merged numbers equal those of the same
tasks run serially, bit for bit.

Layout of OUTDIR::

    .mlffbench-sweep       marker: a (possibly unfinished) sweep
    sweep.json             the tasks (label, model, selection, seed, command)
    runs/<label>/          one ordinary `mlffbench run` OUTDIR per task (the run cache)
    results.json           every task's results.json, keyed by label
    report.md, report.json one report with every model side by side (`mlffbench report OUTDIR`)

Caching and resuming reuse `mlffbench run`'s: each benchmark of a task is stored under the key
`runner.bench_key` (benchmark code version, settings, model fingerprint, reference, dataset,
seed, units), written to a partial directory and renamed when complete (`io.fresh_partial_dir`,
`io.commit_dir`). Before submitting, the sweep computes those keys and skips every task whose
benchmarks are all stored with matching keys; a task whose worker died is re-run by Dask
(`retries`), and the re-run resumes from the task's committed benchmarks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field, model_validator

from mlffbench.config import StrictModel, load_config, resolve_path
from mlffbench.errors import UserError
from mlffbench.io import read_json, write_json

MARKER = ".mlffbench-sweep"
STUDY_DIR = "study"  # OUTDIR/study: the study's own OUTDIR
SWEEP_VERSION = 1

# One thread per task: XLA's CPU client, Eigen, OpenMP, MKL and OpenBLAS pools.
PINNED_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    "JAX_PLATFORMS": "cpu",
}


class JobqueueConfig(StrictModel):
    """A dask-jobqueue cluster (one worker process per job, one thread each).

    kind: the batch system; queue: partition/queue name; cores, memory: per job (memory as
    '4GB'); walltime: 'HH:MM:SS'; job_extra_directives: extra lines for the job script
    (e.g. ['--account=abc']); jobs: how many jobs to request; job_script_prologue: shell lines
    run before the worker starts (e.g. activating the environment).
    """

    kind: Literal["slurm", "pbs", "lsf", "sge"] = "slurm"
    queue: str | None = None
    cores: int = Field(1, ge=1)
    memory: str = "4GB"
    walltime: str = Field("01:00:00", pattern=r"^\d+:\d{2}(:\d{2})?$")
    job_extra_directives: list[str] = []
    job_script_prologue: list[str] = []
    jobs: int = Field(1, ge=1)


class StudySection(StrictModel):
    """Study recipes as sweep tasks: config: a `mlffbench study` config; recipes: its task names
    (recipes, 'paper@N' learning-curve points) or 'all'. One task per recipe (`mlffbench study
    --recipe NAME` into OUTDIR/study), then, with 'all', the study's table and plot (`mlffbench study`
    on the finished recipes: the serial command's output)."""

    config: str
    recipes: list[str] | Literal["all"] = "all"


class SweepConfig(StrictModel):
    """Config of `mlffbench sweep` (see configs/sweep-quick.yaml).

    run: the run config every task uses (units, LJ reference, benchmark settings).
    mode: quick | paper (every task's --mode).
    models: --model values (LJ names, model directories, *.yaml specs).
    benchmarks: benchmark selections; each is a list of names (one task per selection),
        [] = the run config's default battery.
    seeds: seeds; one task per seed.
    retries: how often Dask re-runs a task whose worker died or that failed.
    study: study recipes as tasks (see StudySection).
    cluster: a dask-jobqueue cluster (used when --scheduler is not given).
    """

    run: str = "configs/run-quick.yaml"
    mode: Literal["quick", "paper"] = "quick"
    models: list[str] = []
    benchmarks: list[list[str]] = [[]]
    seeds: list[int] = Field([0], min_length=1)
    retries: int = Field(2, ge=0, le=10)
    study: StudySection | None = None
    cluster: JobqueueConfig | None = None

    @model_validator(mode="after")
    def _seeds_nonnegative(self):
        if any(s < 0 for s in self.seeds):
            raise ValueError("seeds must be >= 0")
        if not self.models and self.study is None:
            raise ValueError("models: give at least one model (or a study: section)")
        return self


@dataclass
class Task:
    """One `mlffbench run`: its label (the directory under OUTDIR/runs), model, selection, seed."""

    label: str
    model: str
    benchmarks: list[str]
    seed: int
    keys: dict[str, str] = field(default_factory=dict)  # runner.bench_key per selected benchmark
    recipe: str | None = None  # a study task: its name in the study (then model is '')

    def as_json(self) -> dict:
        return {"label": self.label, "model": self.model, "benchmarks": self.benchmarks, "seed": self.seed,
                "keys": self.keys, **({"recipe": self.recipe} if self.recipe else {})}

    def run_dir(self, outdir: Path) -> Path:
        """The task's run directory: OUTDIR/runs/<label>, a study task's OUTDIR/study/recipes/<name>."""
        return outdir / STUDY_DIR / "recipes" / self.recipe if self.recipe else outdir / "runs" / self.label


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(text).stem if text.endswith((".yaml", ".yml")) else text).strip("_")


def plan(cfg: SweepConfig) -> list[Task]:
    """The tasks: models x benchmark selections x seeds, each with a unique label."""
    tasks, seen = [], set()
    for model in cfg.models:
        for k, sel in enumerate(cfg.benchmarks):
            for seed in cfg.seeds:
                label = f"{_slug(model.rstrip('/').split('/')[-1] if Path(model).exists() else model)}"
                label += f"-s{seed}" + (f"-b{k}" if len(cfg.benchmarks) > 1 else "")
                base, n = label, 2
                while label in seen:
                    label, n = f"{base}-{n}", n + 1
                seen.add(label)
                tasks.append(Task(label, model, list(sel), seed))
    return tasks


def study_tasks(cfg: SweepConfig, source: str = "config") -> list[Task]:
    """One task per study recipe of the config's study: section (validated: the study config, the
    names, every recipe's stage configs; UserError naming the problem)."""
    if cfg.study is None:
        return []
    from mlffbench.benchmarks.runner import RunConfig
    from mlffbench.benchmarks.study import StudyConfig, check_recipes, validate_recipes
    from mlffbench.benchmarks.study import plan as study_plan

    path = resolve_path(cfg.study.config)
    if not path.is_file():
        raise UserError(f"{source}: study.config: file not found: {cfg.study.config}")
    scfg = load_config(StudyConfig, path)
    base_path = resolve_path(scfg.run)
    if not base_path.is_file():
        raise UserError(f"{path}: run: file not found: {scfg.run}")
    names = study_plan(scfg)
    check_recipes(names, None if cfg.study.recipes == "all" else cfg.study.recipes, f"{source}: study.recipes")
    validate_recipes(scfg, load_config(RunConfig, base_path), names, str(path))
    chosen = list(names) if cfg.study.recipes == "all" else list(dict.fromkeys(cfg.study.recipes))
    return [Task(f"study-{_slug(n) or 'recipe'}-{k}", "", list(scfg.benchmarks), scfg.seed, recipe=n)
            for k, n in enumerate(chosen)]


def study_command(cfg: SweepConfig, outdir: Path, recipe: str | None) -> list[str]:
    """`python -m mlffbench study ...` into OUTDIR/study: one recipe, or (None) the whole study,
    which reuses the finished recipes and writes the table and plot."""
    cmd = [sys.executable, "-m", "mlffbench", "study", "-c", str(resolve_path(cfg.study.config)), "-o",
           str((outdir / STUDY_DIR).resolve()), "-q"]
    return cmd + (["--recipe", recipe] if recipe else [])


def task_keys(run_cfg, task: Task, source: str) -> dict[str, str]:
    """{benchmark: runner.bench_key} of the task's selected benchmarks (UserError for a bad model
    or benchmark name, before anything is started). The run's own cache keys, nothing new."""
    from mlffbench.benchmarks import battery
    from mlffbench.benchmarks.runner import bench_key, bench_settings, load_model, selection
    from mlffbench.io import sha256_file
    from mlffbench.potentials import reference_potential

    cfg = run_cfg.model_copy(update={"seed": task.seed})
    settings = bench_settings(cfg, source)
    chosen = selection(cfg, settings, task.benchmarks or None, None)
    try:
        model = load_model(cfg, task.model)
    except UserError as exc:
        raise UserError(f"{source}: models: {task.model}: {exc}") from None
    ref = reference_potential(cfg.potential)
    data_hash = None
    if cfg.dataset:
        p = resolve_path(cfg.dataset)
        p = p / "dataset.npz" if p.is_dir() else p
        data_hash = sha256_file(p) if p.is_file() else None
    reg = battery()
    return {n: bench_key(reg[n], settings[n], model.fingerprint, ref.fingerprint, data_hash, cfg.seed,
                         cfg.units.unit_system().as_dict())
            for n in reg if chosen[n] is None}


def task_done(run_dir: Path, keys: dict[str, str]) -> bool:
    """The task's run directory is complete: results.json exists and every selected benchmark is
    stored with its current key and a final outcome (`runner.stored_result`)."""
    from mlffbench.benchmarks.runner import stored_result

    if not (run_dir / "results.json").is_file():
        return False
    return all(stored_result(run_dir / "benchmarks" / n, k) is not None for n, k in keys.items())


def task_command(task: Task, run_config: Path, mode: str, run_dir: Path) -> list[str]:
    """`python -m mlffbench run ...` for one task (the same command a serial run uses)."""
    cmd = [sys.executable, "-m", "mlffbench", "run", "-c", str(run_config), "-o", str(run_dir), "--model",
           task.model, "--mode", mode, "--seed", str(task.seed), "-q"]
    for b in task.benchmarks:
        cmd += ["-b", b]
    return cmd


def task_env() -> dict[str, str]:
    """The environment of a task process: this one's, with every thread pool pinned to one."""
    return {**os.environ, **PINNED_ENV}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL this child when the worker that started it dies (no orphan keeps writing)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def execute_task(cmd: list[str], env: dict[str, str], cwd: str) -> dict:
    """Run one task's command in a fresh process (on a Dask worker); raise if it fails, so the
    engine retries it. Returns {returncode, wall_time_s, stderr tail}."""
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():  # fork + immediate exec: JAX's fork warning does not apply
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                              preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {tail}")
    return {"returncode": 0, "wall_time_s": time.perf_counter() - t0, "stderr_tail": tail}


# ----------------------------------------------------------------------------------------------
# Executors
# ----------------------------------------------------------------------------------------------
def jobqueue_cluster(c: JobqueueConfig):
    """The dask-jobqueue cluster object of the config (jobs are requested by `scale`)."""
    import dask_jobqueue

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster,
           "lsf": dask_jobqueue.LSFCluster, "sge": dask_jobqueue.SGECluster}[c.kind]
    return cls(queue=c.queue, cores=c.cores, processes=c.cores, memory=c.memory, walltime=c.walltime,
               job_extra_directives=c.job_extra_directives, job_script_prologue=c.job_script_prologue,
               worker_extra_args=["--nthreads", "1"])


def connect(scheduler: str, workers: int, cfg: SweepConfig):
    """(client, cluster or None): a LocalCluster ('local'), an existing scheduler (tcp://...), or
    the config's jobqueue cluster ('jobqueue'). UserError (one line) if it cannot be reached."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=40)
        return Client(cluster), cluster
    if scheduler == "jobqueue":
        cluster = jobqueue_cluster(cfg.cluster)
        cluster.scale(jobs=cfg.cluster.jobs)
        return Client(cluster), cluster
    if not re.match(r"^(tcp|tls|inproc|ws|wss)://", scheduler):
        raise UserError(f"--scheduler must be local or tcp://HOST:PORT (got {scheduler!r})")
    try:
        return Client(scheduler, timeout="5s"), None
    except (OSError, TimeoutError) as exc:
        raise UserError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({type(exc).__name__})") from None


# ----------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------
def prepare(cfg: SweepConfig, outdir: Path, source: str, overwrite: bool = False) -> tuple[Path, list[Task]]:
    """(run config path, tasks with their keys): everything validated, nothing written."""
    from mlffbench.benchmarks.runner import RunConfig

    run_path = resolve_path(cfg.run)
    if not run_path.is_file():
        raise UserError(f"{source}: run: file not found: {cfg.run}")
    run_cfg = load_config(RunConfig, run_path, {"mode": cfg.mode})
    tasks = plan(cfg)
    for t in tasks:
        t.keys = task_keys(run_cfg, t, source)
    tasks += study_tasks(cfg, source)
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"output path {outdir} exists and is not a directory")
    if outdir.exists() and any(outdir.iterdir()) and not (outdir / MARKER).is_file() and not overwrite:
        raise UserError(f"output directory {outdir} exists and is not an mlffbench sweep; "
                        "pass --overwrite to replace it")
    return run_path, tasks


def merge(outdir: Path, cfg: SweepConfig, tasks: list[Task], outcomes: dict[str, dict]) -> dict:
    """OUTDIR/results.json (every task's results.json by label) and the side-by-side report."""
    runs = {}
    for t in tasks:
        rdir = t.run_dir(outdir)
        res = read_json(rdir / "results.json") if (rdir / "results.json").is_file() else None
        runs[t.label] = {**t.as_json(), "dir": str(rdir.relative_to(outdir)), **outcomes.get(t.label, {}),
                         "results": res}
    doc = {"sweep_version": SWEEP_VERSION, "config": cfg.model_dump(mode="json"), "tasks": runs,
           "summary": {s: sum(1 for r in runs.values() if r.get("status") == s)
                       for s in ("computed", "cached", "failed")}}
    study_json = outdir / STUDY_DIR / "study.json"
    if cfg.study is not None:
        doc["study"] = {"dir": STUDY_DIR, **outcomes.get("study-table", {}),
                        "study": read_json(study_json) if study_json.is_file() else None}
    write_json(outdir / "results.json", doc)
    done = [t.run_dir(outdir) for t in tasks if runs[t.label]["results"] is not None]
    if done:
        from mlffbench.report import write_report

        write_report(done, "md", outdir / "report.md")
    return doc


def _bar(total: int, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from mlffbench.progress import console

    return Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled)


def run_sweep(cfg: SweepConfig, outdir: Path, scheduler: str | None = None, workers: int = 2,
              overwrite: bool = False, progress: bool = True, source: str = "config",
              log: Callable[[str], None] = print) -> dict:
    """Run every task of the sweep on Dask into OUTDIR/runs/<label>, then merge. Resumable."""
    run_path, tasks = prepare(cfg, outdir, source, overwrite)
    # a study task is always submitted: `mlffbench study --recipe` resumes it from its own cache
    todo = [t for t in tasks if overwrite or t.recipe or not task_done(t.run_dir(outdir), t.keys)]
    outcomes = {t.label: {"status": "cached"} for t in tasks if t not in todo}
    sched = scheduler or ("jobqueue" if cfg.cluster is not None else "local")
    client = cluster = None
    if todo:
        client, cluster = connect(sched, workers, cfg)  # UserError before OUTDIR is touched
    try:
        if overwrite and outdir.is_dir():
            shutil.rmtree(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / MARKER).write_text("mlffbench sweep directory (resumable)\n")
        (outdir / "runs").mkdir(exist_ok=True)
        if cfg.study is not None:  # the study's OUTDIR, made before its recipe processes start
            from mlffbench.benchmarks.study import MARKER as STUDY_MARKER

            (outdir / STUDY_DIR).mkdir(exist_ok=True)
            (outdir / STUDY_DIR / STUDY_MARKER).write_text("mlffbench study directory (resumable)\n")
        write_json(outdir / "sweep.json", {"sweep_version": SWEEP_VERSION, "config": cfg.model_dump(mode="json"),
                                           "tasks": [t.as_json() for t in tasks]})
        log(f"{len(tasks)} tasks, {len(tasks) - len(todo)} already complete (reused)")
        if todo:
            log(f"Dask dashboard: {client.dashboard_link} (scheduler {client.scheduler.address})")
            outcomes.update(_submit_and_wait(client, todo, run_path, cfg, outdir, progress))
            outcomes.update(_study_table(client, tasks, outcomes, cfg, outdir, log))
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return merge(outdir, cfg, tasks, outcomes)


def _submit_and_wait(client, todo: list[Task], run_path: Path, cfg: SweepConfig, outdir: Path,
                     progress: bool) -> dict[str, dict]:
    """Submit the tasks (Dask retries those whose worker died or that failed) and follow them on
    one Rich bar (done / running / failed, ETA)."""
    from distributed import wait

    env, cwd = task_env(), os.getcwd()

    def command(t: Task) -> list[str]:
        if t.recipe:
            return study_command(cfg, outdir, t.recipe)
        return task_command(t, run_path, cfg.mode, t.run_dir(outdir).resolve())
    futs = {client.submit(execute_task, command(t), env, cwd,
                          key=f"mlffbench-{t.label}-{next(iter(t.keys.values()))[:8] if t.keys else 'study'}",
                          retries=cfg.retries, pure=False): t for t in todo}
    out: dict[str, dict] = {}
    with _bar(len(futs), progress) as bar:
        bid = bar.add_task("", total=len(futs))
        pending = set(futs)
        while pending:
            try:
                wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            pending = {f for f in pending if not f.done()}
            done = [f for f in futs if f.status == "finished"]
            failed = [f for f in futs if f.status == "error"]
            running = sum(len(v) for v in client.processing().values())
            bar.update(bid, completed=len(done) + len(failed),
                       description=f"{len(done)} done, {running} running, {len(failed)} failed")
    for f, t in futs.items():
        if f.status == "finished":
            out[t.label] = {"status": "computed", "wall_time_s": f.result()["wall_time_s"]}
        else:
            out[t.label] = {"status": "failed", "reason": str(f.exception()).splitlines()[0][:300]}
    return out


def _study_table(client, tasks: list[Task], outcomes: dict, cfg: SweepConfig, outdir: Path,
                 log: Callable[[str], None]) -> dict[str, dict]:
    """Once every recipe task of an 'all' study finished: the whole `mlffbench study` as one more
    task (every recipe reused from its cache; it writes study.json, study.md, study.png exactly as
    the serial command does). {'study-table': outcome}, or {} when there is nothing to tabulate."""
    rec = [t for t in tasks if t.recipe]
    if cfg.study is None or cfg.study.recipes != "all" or not rec:
        if rec:
            log("study: a subset of the recipes ran; no table (list recipes: all for it)")
        return {}
    if any(outcomes.get(t.label, {}).get("status") == "failed" for t in rec):
        log("study: a recipe task failed; no table")
        return {"study-table": {"status": "failed", "reason": "a recipe task failed"}}
    fut = client.submit(execute_task, study_command(cfg, outdir, None), task_env(), os.getcwd(),
                        key=f"mlffbench-study-table-{time.time_ns()}", retries=cfg.retries, pure=False)
    try:
        return {"study-table": {"status": "computed", "wall_time_s": fut.result()["wall_time_s"]}}
    except Exception as exc:
        return {"study-table": {"status": "failed", "reason": str(exc).splitlines()[0][:300]}}
