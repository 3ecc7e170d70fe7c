"""`mlffbench run`: the paper's loop (generate -> train -> battery) or the battery on a given model.

Layout of OUTDIR::

    .mlffbench-run               marker: this directory is a (possibly unfinished) run
    data/                        generate output (full loop only)
    model/                       train output (full loop only)
    benchmarks/<name>/result.json, *.png, model/, reference/   one directory per benchmark
    results.json                 all benchmarks: state, reason, raw numbers with units, metrics, scores
    manifest.json                config/dataset/checkpoint hashes, versions, device, dtype, seeds, wall times
    scorecard.md                 the report (mlffbench report renders it again, also as HTML)

Resuming: each benchmark's directory is written to a temporary sibling and renamed when it is
complete, so a killed run leaves only whole results. Re-running the same command on the same
OUTDIR skips every benchmark whose stored `key` (a hash of its settings, the model's checkpoint,
the reference potential, the dataset, the seed and the benchmark's code version) matches and whose
outcome is final (passed, or failed for a physical reason); generate and train are skipped when
their config hash matches. Anything else is recomputed.

Concurrency: the battery computes each benchmark's LJ reference in one background thread that
runs ahead through the list, while the main thread runs the model (`ReferenceAhead`). XLA
compiles a program on one core and much of a benchmark is compiling, so on two cores the two
sides overlap; every number is the same as one after the other (each side is its own seeded,
deterministic computation). `reference_alongside: false` runs them one after the other.
"""

from __future__ import annotations

import gc
import shutil
import threading
import time
import traceback
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field

from mlffbench.benchmarks import (FAILED, NOT_AVAILABLE, NOT_RUN, PASSED, BenchContext, Benchmark,
                                  BenchmarkFailed, BenchmarkNotRun, BenchmarkResult, WorkflowSettings, battery)
from mlffbench.benchmarks.scoring import load_thresholds, score_metrics
from mlffbench.config import (PotentialConfig, StrictModel, UnitsConfig, config_hash, load_stage_config,
                              resolve_path)
from mlffbench.errors import SimulationError, UserError
from mlffbench.memory import PeakRSS, process_peak_rss_mb
from mlffbench.training.config import DataConfig
from mlffbench.io import (commit_dir, fresh_partial_dir, json_sha256, manifest, read_json, sha256_dir, sha256_file,
                          write_json)

MARKER = ".mlffbench-run"
RESULTS_VERSION = 1


class StageConfig(StrictModel):
    """A stage of the full loop run by another command's workflow.

    config: that command's YAML config (relative to the working directory or the repository).
    overrides: dotted-key overrides on top of it.
    """

    config: str | None = None
    overrides: dict[str, Any] = {}


class RunConfig(StrictModel):
    """Config of `mlffbench run` (see configs/run-quick.yaml).

    mode: 'quick' (CPU minutes) or 'paper'; benchmarks whose `modes` exclude it are deselected.
    seed: base seed (generate, train and every stochastic benchmark derive theirs from it).
    potential: the LJ oracle every model is compared with.
    model: default --model (None: the full loop trains one).
    model_dtype: dtype to load a learned model in (None: the model's own).
    dataset: LJ dataset (npz, generate OUTDIR, or any ASE-readable file: extxyz, ASE db, OUTCAR)
        for the test-set benchmark when --model is given.
    dataset_keys: how a dataset that is not an npz is read (energy_key, forces_key, stress_key,
        format; ASE's units), as `train`'s `data`.
    generate, train: stage configs of the full loop.
    metrics: a YAML file overriding score thresholds (default: each benchmark's declared ones).
    reference_alongside: compute the LJ reference of each benchmark in a second thread while the
        model's runs (faster on >= 2 cores; a benchmark's peak memory is then both sides'). False:
        one after the other.
    benchmarks: per-benchmark settings, keyed by benchmark name.
    """

    mode: Literal["quick", "paper"] = "quick"
    seed: int = Field(0, ge=0)
    units: UnitsConfig = UnitsConfig()
    potential: PotentialConfig = PotentialConfig()
    model: str | None = None
    model_dtype: Literal["float32", "float64"] | None = None
    dataset: str | None = None
    dataset_keys: DataConfig = DataConfig()
    generate: StageConfig = StageConfig()
    train: StageConfig = StageConfig()
    metrics: str | None = None
    reference_alongside: bool = True
    benchmarks: dict[str, dict[str, Any]] = {}


# ----------------------------------------------------------------------------------------------
# Config resolution (everything validated before OUTDIR is touched)
# ----------------------------------------------------------------------------------------------
def validate_section(model: type, data: Any, source: str, prefix: str):
    """Validate a config section; the one-line error names the full dotted key."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise UserError(f"{source}: {prefix}: expected a mapping")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join([prefix, *(str(p) for p in first["loc"])])
        if first["type"] == "extra_forbidden":
            raise UserError(f"{source}: {loc}: unknown key") from None
        got = first.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        raise UserError(f"{source}: {loc}: {first['msg'].removeprefix('Value error, ')}{shown}") from None


def bench_settings(cfg: RunConfig, source: str) -> dict[str, Any]:
    """Validated settings for every registered benchmark; unknown names are errors."""
    reg = battery()
    unknown = sorted(set(cfg.benchmarks) - set(reg))
    if unknown:
        raise UserError(f"{source}: benchmarks.{unknown[0]}: unknown benchmark "
                        f"(known: {', '.join(reg)})")
    out = {}
    for name, bench in reg.items():
        out[name] = validate_section(bench.settings_model, cfg.benchmarks.get(name, {}) or {},
                                     source, f"benchmarks.{name}")
        if isinstance(out[name], WorkflowSettings) and out[name].config:
            if not resolve_path(out[name].config).is_file():
                raise UserError(f"{source}: benchmarks.{name}.config: file not found: {out[name].config}")
    return out


def selection(cfg: RunConfig, settings: dict, select: list[str] | None, exclude: list[str] | None
              ) -> dict[str, str | None]:
    """{name: None if selected else the reason it is deselected}."""
    reg = battery()
    for flag, names in (("-b", select), ("-e", exclude)):
        for n in names or []:
            if n not in reg:
                raise UserError(f"{flag} {n}: unknown benchmark (known: {', '.join(reg)})")
    if select and exclude:
        raise UserError("give either -b/--benchmark or -e/--exclude, not both")
    out: dict[str, str | None] = {}
    for name in reg:
        s = settings[name]
        if select:
            out[name] = None if name in select else "deselected (not in -b)"
        elif exclude and name in exclude:
            out[name] = "deselected (-e)"
        elif not s.enabled:
            out[name] = "disabled in the config"
        elif cfg.mode not in s.modes:
            out[name] = f"not part of --mode {cfg.mode}"
        else:
            out[name] = None
    return out


# ----------------------------------------------------------------------------------------------
# Hashes and identities
# ----------------------------------------------------------------------------------------------
def settings_fingerprint(settings) -> dict:
    """The settings plus the content hash of any sub-config file they point to."""
    d = settings.model_dump(mode="json")
    d.pop("enabled", None)
    d.pop("modes", None)
    cfg = d.get("config")
    if cfg:
        d["config_sha256"] = sha256_file(resolve_path(cfg))
    return d


def bench_key(bench: Benchmark, settings, model_id: str, ref_id: str, dataset_hash: str | None,
              seed: int, units: dict) -> str:
    return json_sha256({"name": bench.name, "version": bench.version, "settings": settings_fingerprint(settings),
                 "model": model_id, "reference": ref_id, "seed": seed, "units": units,
                 "dataset": dataset_hash if bench.needs_dataset else None})


# ----------------------------------------------------------------------------------------------
# Running one benchmark
# ----------------------------------------------------------------------------------------------
def _run_one(bench: Benchmark, potential, ctx: BenchContext) -> tuple[str, str, dict, bool]:
    """(state, reason, raw, final) for one potential. `final`: the outcome is deterministic
    (worth keeping on resume); an unexpected error is not."""
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    try:
        return PASSED, "", bench.run(potential, ctx), True
    except BenchmarkNotRun as exc:
        return NOT_RUN, exc.reason, {}, True
    except BenchmarkFailed as exc:
        return FAILED, exc.reason, exc.raw, True
    except SimulationError as exc:
        return FAILED, str(exc), {}, True
    except UserError as exc:
        return FAILED, f"bad input: {exc}", {}, False
    except Exception as exc:  # the battery survives a broken piece and says what broke
        (ctx.workdir / "error.txt").write_text(traceback.format_exc())
        return FAILED, f"error: {type(exc).__name__}: {exc}".splitlines()[0][:300], {}, False


def committee_members(model) -> list:
    """The members of a committee model ([model] for a single one)."""
    from mlffbench.potentials.committee import members

    return list(members(model))


def committee_metrics(per_member: list[dict]) -> dict:
    """Each metric's mean over committee members, with std, n, ci95 and the member values.

    `exceeds_spread` says whether the committee's mean error is larger than its spread (std): an
    error the committee itself does not see coming.
    """
    from mlffbench.stats import from_samples

    out = {}
    for name in per_member[0]:
        vals = [m[name]["value"] for m in per_member if name in m and m[name].get("value") is not None]
        if len(vals) != len(per_member):
            continue
        q = from_samples(vals, per_member[0][name]["unit"])
        q["members"] = vals
        q["exceeds_spread"] = bool(abs(q["value"]) > q.get("std", 0.0))
        notes = sorted({m[name].get("note") for m in per_member if m[name].get("note")})
        if notes:
            q["note"] = "; ".join(notes)
        out[name] = q
    return out


def skip_reason(bench: Benchmark, model, base_ctx: dict) -> str | None:
    """Why `bench` is not run on `model` at all (unavailable, a missing capability, no dataset)."""
    reason = bench.available() or bench.missing_capability(model)
    if reason is None and bench.needs_dataset and base_ctx.get("dataset") is None:
        reason = "no dataset (full loop, or set `dataset` in the run config)"
    return reason


def run_stage(bench: Benchmark, settings, role: str, potential, memo: dict, bdir_tmp: Path, base_ctx: dict,
              where: str | None = None) -> tuple[tuple[str, str, dict, bool], float, dict]:
    """((state, reason, raw, final), wall seconds, peak RSS) of one side of `bench`, written under
    bdir_tmp/<where> (default: the role)."""
    where = where or role
    ctx = BenchContext(settings=settings, workdir=bdir_tmp / where, role=role, memo=memo, benchmark=bench.name,
                       scratch=bdir_tmp.parent / f".{bench.name}.scratch" / where, **base_ctx)
    t1 = time.perf_counter()
    with PeakRSS() as mem:
        out = _run_one(bench, potential, ctx)
    return out, time.perf_counter() - t1, mem.as_dict()


class ReferenceAhead:
    """Runs reference stages (`run_stage` calls) in submission order in one daemon thread.

    A daemon thread, not a ThreadPoolExecutor: the executor's workers are joined at interpreter
    exit, so Ctrl-C during a benchmark would wait for the reference's current stage to finish.
    """

    THREAD_NAME = "mlffbench-reference"

    def __init__(self):
        self._jobs: dict[str, tuple[Callable, Future]] = {}
        self._order: list[str] = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, name: str, fn: Callable) -> None:
        with self._cv:
            self._jobs[name] = (fn, Future())
            self._order.append(name)
            self._cv.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self.THREAD_NAME, daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._order and not self._closed:
                    self._cv.wait()
                if not self._order:  # closed and nothing left: the thread ends
                    return
                name = self._order.pop(0)
            fn, fut = self._jobs[name]
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # delivered to the main thread by result()
                    fut.set_exception(exc)

    def __contains__(self, name: str) -> bool:
        return name in self._jobs

    def close(self) -> None:
        """Cancel the jobs not yet started; the thread ends after the one running, if any, which
        finishes on its own (not waited for: Ctrl-C stops the battery at once). An in-process
        caller that resumes the same OUTDIR after an interrupt joins the thread first (it is
        named `THREAD_NAME`; tests/test_run_battery.py)."""
        with self._cv:
            for name in self._order:
                self._jobs[name][1].cancel()
            self._order.clear()
            self._closed = True
            self._cv.notify()

    def result(self, name: str):
        """The job's return value (waiting for it); its exception, if it raised one."""
        return self._jobs[name][1].result()


def execute(bench: Benchmark, settings, model, reference, same: bool, bdir_tmp: Path, base_ctx: dict,
            memos: tuple[dict, dict], thresholds: dict, reference_stage: Callable | None = None) -> dict:
    """Run `bench` on the reference (LJ) and on the model; compare and score. Returns result.json.

    reference_stage: () -> `run_stage`'s value for the reference, computed in another thread
    (`ReferenceAhead`): the model runs first, meanwhile. None: the reference is computed here,
    first (a reference that fails then costs no model run)."""
    res = BenchmarkResult(bench.name, bench.title, bench.description)
    t0 = time.perf_counter()
    reason = skip_reason(bench, model, base_ctx)
    if reason is not None:
        res.reason, res.wall_time_s = reason, time.perf_counter() - t0
        return res.to_json()

    def stage(role: str, potential, memo: dict, where: str | None = None) -> tuple[str, str, dict, bool]:
        where = where or role
        out, res.wall_times_s[where], res.peak_rss[where] = run_stage(bench, settings, role, potential, memo,
                                                                      bdir_tmp, base_ctx, where)
        return out

    def finish(state: str, why: str, final: bool) -> dict:
        res.state, res.reason, res.final, res.wall_time_s = state, why, final, time.perf_counter() - t0
        return res.to_json()

    members = committee_members(model)

    def model_side() -> tuple[str, str, dict, bool]:
        if len(members) == 1 or bench.whole_committee:
            return stage("model", model, memos[0])
        raws = []  # a committee: every member through the same code, then mean +- spread of each metric
        for k, member in enumerate(members):
            m_state, m_why, raw_k, m_final = stage("model", member, memos[0].setdefault(k, {}), f"model/member{k}")
            raws.append(raw_k)
            if m_state != PASSED:
                return m_state, f"member {k}: {m_why}", {**raws[0], "members": raws}, m_final
        return PASSED, "", {**raws[0], "members": raws}, True

    reuse = same and not bench.whole_committee  # the model is the reference: its result is the model's
    model_first = reference_stage is not None and not reuse  # the reference is computed meanwhile
    model_out = model_side() if model_first else None
    if reference_stage is None:
        state, why, res.reference, final = stage("reference", reference, memos[1])
    else:
        (state, why, res.reference, final), res.wall_times_s["reference"], res.peak_rss["reference"] = \
            reference_stage()
    if state != PASSED:
        return finish(state, why if state == NOT_RUN else f"reference (LJ): {why}", final)
    if reuse:
        model_out = (PASSED, "", res.reference, True)
    m_state, m_why, res.model, m_final = model_out or model_side()
    if m_state != PASSED:
        return finish(m_state, m_why if m_state == NOT_RUN else f"model: {m_why}", m_final)
    try:
        if len(members) > 1 and not same and not bench.whole_committee:
            metrics = committee_metrics([bench.compare(raw, res.reference) for raw in res.model["members"]])
        else:
            metrics = bench.compare(res.model, res.reference)
        res.metrics, res.score = score_metrics(bench.name, metrics, thresholds)
    except UserError:
        raise
    except Exception as exc:
        (bdir_tmp / "error.txt").write_text(traceback.format_exc())
        return finish(FAILED, f"error in compare: {type(exc).__name__}: {exc}", False)
    if bench.plot is not None:
        try:
            res.plots = list(bench.plot(res.model, res.reference, bdir_tmp, base_ctx["units"]))
        except Exception as exc:  # a plot must never lose the numbers
            res.plot_error = f"{type(exc).__name__}: {exc}"
    return finish(PASSED, "", True)


# ----------------------------------------------------------------------------------------------
# OUTDIR and the full loop
# ----------------------------------------------------------------------------------------------
def prepare_outdir(outdir: Path, overwrite: bool) -> bool:
    """Create OUTDIR (or resume it). Returns True when resuming an earlier run."""
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"output path {outdir} exists and is not a directory")
    if outdir.exists() and any(outdir.iterdir()):
        if overwrite:
            shutil.rmtree(outdir)
        elif (outdir / MARKER).is_file():
            return True
        else:
            raise UserError(f"output directory {outdir} exists and is not an mlffbench run; "
                            "pass --overwrite to replace it")
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / MARKER).write_text("mlffbench run directory (resumable)\n")
    return False


def stage_generate(cfg: RunConfig, gcfg, outdir: Path, log: Callable, progress: bool) -> tuple[Path, float]:
    """OUTDIR/data from `mlffbench generate`'s workflow, reused when its config hash matches."""
    from mlffbench.io import atomic_outdir
    from mlffbench.workflows.generate import run_generate

    data = outdir / "data"
    if (data / "manifest.json").is_file() and read_json(data / "manifest.json").get("config_hash") == config_hash(gcfg):
        log("generate: dataset already complete, reused")
        return data, 0.0
    t0 = time.perf_counter()
    log("generate: LJ argon dataset ...")
    factory = _progress_factory(progress, "steps")
    with atomic_outdir(data, overwrite=True) as tmp:
        run_generate(gcfg, tmp, progress_factory=factory)
    return data, time.perf_counter() - t0


def stage_train(cfg: RunConfig, tcfg, data: Path, outdir: Path, log: Callable, progress: bool
                ) -> tuple[Path, float]:
    """OUTDIR/train from `mlffbench train`'s workflow (model in OUTDIR/train/model).

    Reused when it finished with the same config and dataset; an interrupted training resumes
    from its own per-epoch checkpoint (train's --resume), so no epoch is lost to a kill.
    """
    from mlffbench.workflows.train import run_train

    train_dir = outdir / "train"
    stamp = {"config_hash": config_hash(tcfg), "dataset_sha256": sha256_file(data / "dataset.npz")}
    done = outdir / "train.stage.json"
    if (train_dir / "model" / "model_card.json").is_file() and done.is_file() and read_json(done) == stamp:
        log("train: model already trained, reused")
        return train_dir / "model", 0.0
    t0 = time.perf_counter()
    resume = (train_dir / "checkpoint.msgpack").is_file() and (train_dir / "config.json").is_file()
    log("train: resuming the interrupted training ..." if resume else "train: default model ...")
    on_epoch = None
    if progress:
        on_epoch = lambda h: log(f"  epoch {h.get('epoch')}: " + ", ".join(  # noqa: E731
            f"{k} {v:.4g}" for k, v in h.items() if k != "epoch" and isinstance(v, float)))
    try:
        res = run_train(tcfg, data / "dataset.npz", train_dir, resume=resume, overwrite=not resume,
                        on_epoch=on_epoch, source="train config")
    except UserError:
        if not resume:
            raise
        res = run_train(tcfg, data / "dataset.npz", train_dir, overwrite=True, on_epoch=on_epoch,
                        source="train config")  # checkpoint of another config: start afresh
    if not res.get("finished", True):
        raise SimulationError("training stopped before its last epoch")
    write_json(done, stamp)
    return train_dir / "model", time.perf_counter() - t0


def given_dataset(cfg: RunConfig, source: str, units) -> tuple[Path, Any] | None:
    """(path, Dataset) of the config's `dataset`, read before OUTDIR is touched; None without one.

    An npz or generate OUTDIR is read as is; any other file with `ase.io.read` and `dataset_keys`
    (`units`: the run's UnitSystem). UserError (one line; for an ASE file naming the frame and key).
    """
    if not cfg.dataset:
        return None
    p = resolve_path(cfg.dataset)
    path = p / "dataset.npz" if p.is_dir() else p
    if not path.is_file():
        raise UserError(f"{source}: dataset: not found: {cfg.dataset}")
    if path.suffix == ".npz":
        from mlffbench.io import load_dataset

        return path, load_dataset(path)
    from mlffbench.training.data import read_ase_dataset

    k = cfg.dataset_keys
    return path, read_ase_dataset(path, k.energy_key, k.forces_key, k.stress_key, units, k.format)


def _progress_factory(enabled: bool, unit: str):
    if not enabled:
        return None
    from mlffbench.progress import progress_bar

    return lambda desc, total: progress_bar(desc, total, unit)


# ----------------------------------------------------------------------------------------------
# The battery
# ----------------------------------------------------------------------------------------------
def run_battery(cfg: RunConfig, outdir: Path, model_spec: str | None = None, select: list[str] | None = None,
                exclude: list[str] | None = None, overwrite: bool = False, progress: bool = False,
                log: Callable[[str], None] = print, source: str = "config") -> dict:
    """Run the loop (or the battery on `model_spec`) into `outdir`; returns results.json's content."""
    t_start = time.perf_counter()
    reg = battery()
    settings = bench_settings(cfg, source)
    chosen = selection(cfg, settings, select, exclude)
    thresholds = load_thresholds(resolve_path(cfg.metrics) if cfg.metrics else None, reg)
    units = cfg.units.unit_system()
    model_spec = model_spec or cfg.model
    full_loop = model_spec is None
    gcfg, tcfg = stage_configs(cfg, source) if full_loop else (None, None)  # validated before writing
    model = None if full_loop else load_model(cfg, model_spec)  # UserError before OUTDIR is touched
    given = None if full_loop else given_dataset(cfg, source, units)  # likewise

    resumed = prepare_outdir(outdir, overwrite)
    if resumed:
        log(f"resuming the run in {outdir}")
    wall: dict[str, float] = {}
    stage_rss: dict[str, dict] = {}  # peak RSS of generate and train (the battery's is per benchmark)
    hashes: dict[str, str | None] = {"dataset_sha256": None, "checkpoint_sha256": None}
    dataset_path: Path | None = None
    if full_loop:
        with PeakRSS() as mem:
            data, wall["generate"] = stage_generate(cfg, gcfg, outdir, log, progress)
        stage_rss["generate"] = mem.as_dict()
        dataset_path = data / "dataset.npz"
        with PeakRSS() as mem:
            model_dir, wall["train"] = stage_train(cfg, tcfg, data, outdir, log, progress)
        stage_rss["train"] = mem.as_dict()
        model_spec = str(model_dir)
    elif given is not None:
        dataset_path = given[0]

    from mlffbench.potentials import reference_potential
    reference = reference_potential(cfg.potential)
    model = model or load_model(cfg, model_spec)
    model_id, ref_id = model.fingerprint, reference.fingerprint
    if Path(model_spec).exists():
        hashes["checkpoint_sha256"] = sha256_dir(model_spec) if Path(model_spec).is_dir() else sha256_file(model_spec)
    dataset = given[1] if given is not None else None
    if dataset_path is not None:
        from mlffbench.io import load_dataset

        dataset = load_dataset(dataset_path) if dataset is None else dataset
        hashes["dataset_sha256"] = sha256_file(dataset_path)
    same = model_id == ref_id
    base_ctx = {"units": units, "seed": cfg.seed, "mode": cfg.mode, "dataset": dataset,
                "dataset_path": dataset_path, "reference_potential": reference, "progress": progress,
                "run_config": cfg}
    memos: tuple[dict, dict] = ({}, {})

    bench_root = outdir / "benchmarks"
    bench_root.mkdir(exist_ok=True)
    results: dict[str, dict] = {}
    keys: dict[str, str] = {}
    todo = [n for n in reg if chosen[n] is None]
    ahead = ReferenceAhead()
    tmps: dict[str, Path] = {}
    for name in todo:
        bench = reg[name]
        keys[name] = bench_key(bench, settings[name], model_id, ref_id, hashes["dataset_sha256"], cfg.seed,
                               units.as_dict())
        if stored_result(bench_root / name, keys[name]) is not None:
            continue
        tmps[name] = tmp = fresh_partial_dir(bench_root / name)
        if cfg.reference_alongside and skip_reason(bench, model, base_ctx) is None:
            ahead.submit(name, partial(run_stage, bench, settings[name], "reference", reference, memos[1], tmp,
                                       {**base_ctx, "progress": False}))
    committed: set[str] = set()
    try:
        for k, name in enumerate(todo, 1):
            bench, key, final_dir = reg[name], keys[name], bench_root / name
            if name not in tmps:
                results[name] = old = stored_result(final_dir, key)
                log(f"[{k}/{len(todo)}] {name}: {old['state']} (stored result reused)")
                continue
            log(f"[{k}/{len(todo)}] {name} ...")
            tmp = tmps[name]
            res = execute(bench, settings[name], model, reference, same, tmp, base_ctx, memos, thresholds,
                          reference_stage=partial(ahead.result, name) if name in ahead else None)
            res.update(key=key, settings=settings[name].model_dump(mode="json"), resumed=False)
            write_json(tmp / "result.json", res)
            commit_dir(tmp, final_dir)
            committed.add(name)
            shutil.rmtree(bench_root / f".{name}.scratch", ignore_errors=True)
            gc.collect()  # the benchmark's large intermediates go before the next one starts
            results[name] = read_json(final_dir / "result.json")  # exactly what is stored
            score = "" if res["score"] is None else f", score {res['score']:.2f}"
            why = f" ({res['reason']})" if res["reason"] else ""
            log(f"[{k}/{len(todo)}] {name}: {res['state']}{why}{score} [{res['wall_time_s']:.1f} s]")
    finally:
        ahead.close()
        for name in set(tmps) - committed:  # an interrupted battery leaves no partial benchmark directory
            shutil.rmtree(tmps[name], ignore_errors=True)
    for name in reg:
        if chosen[name] is not None:
            b = reg[name]
            results[name] = BenchmarkResult(name, b.title, b.description, reason=chosen[name]).to_json()
    ordered = {name: results[name] for name in reg}
    wall["battery"] = time.perf_counter() - t_start - sum(wall.values())
    wall["total"] = time.perf_counter() - t_start
    return write_run_outputs(outdir, cfg, ordered, model, reference, model_spec, full_loop, wall, hashes, keys,
                             resumed, gcfg, tcfg, stage_rss=stage_rss)


def stage_configs(cfg: RunConfig, source: str):
    """(generate config, train config) of the full loop, validated (UserError naming the key)."""
    try:
        from mlffbench.workflows.generate import GenerateConfig
        from mlffbench.workflows.train import TrainConfig
    except ImportError as exc:
        raise UserError(f"the full loop needs generate and train ({exc}); pass --model") from None
    gcfg = load_stage_config(GenerateConfig, cfg.generate.config, cfg.generate.overrides, f"{source}: generate",
                             {"seed": cfg.seed, "units": cfg.units.model_dump(),
                              "potential": cfg.potential.model_dump()})
    tcfg = load_stage_config(TrainConfig, cfg.train.config, cfg.train.overrides, f"{source}: train",
                             {"seed": cfg.seed})
    return gcfg, tcfg


def stored_result(final_dir: Path, key: str) -> dict | None:
    """A stored result.json worth keeping on resume (same key, final outcome), or None."""
    stored = final_dir / "result.json"
    if not stored.is_file():
        return None
    try:
        old = read_json(stored)
    except UserError:
        return None
    if old.get("key") == key and old.get("final") and old.get("state") in (PASSED, FAILED):
        old["resumed"] = True
        return old
    return None


def write_run_outputs(outdir: Path, cfg: RunConfig, ordered: dict, model, reference, model_spec: str,
                      full_loop: bool, wall: dict, hashes: dict, keys: dict, resumed: bool, gcfg, tcfg,
                      stage_rss: dict | None = None) -> dict:
    """results.json, manifest.json and scorecard.md of a finished run; returns results.json's content."""
    units = cfg.units.unit_system()
    model_id, ref_id = model.fingerprint, reference.fingerprint
    doc = {
        "results_version": RESULTS_VERSION,
        "mode": cfg.mode,
        "full_loop": full_loop,
        "model": {"spec": model_spec, "id": model_id, **model.describe()},
        "reference": {"id": ref_id, **reference.describe()},
        "units": units.as_dict(),
        "summary": summarize(ordered),
        "benchmarks": ordered,
    }
    write_json(outdir / "results.json", doc)
    man = manifest("run", cfg, seed=cfg.seed, dtype=str(model.describe()["dtype"]), wall_times=wall,
                   **{k: v for k, v in hashes.items() if v})
    man.update(model_spec=model_spec, reference=reference.describe(), resumed=resumed,
               seeds={"run": cfg.seed, "generate": getattr(gcfg, "seed", None), "train": getattr(tcfg, "seed", None)},
               benchmark_keys=keys, benchmark_wall_times_s={n: r.get("wall_time_s") for n, r in ordered.items()},
               benchmark_peak_rss={n: r.get("peak_rss") for n, r in ordered.items() if r.get("peak_rss")},
               stage_peak_rss=stage_rss or {},
               process_peak_rss={"value": round(process_peak_rss_mb(), 1), "unit": "MiB"},
               stage_configs={"generate": None if gcfg is None else gcfg.model_dump(mode="json"),
                              "train": None if tcfg is None else tcfg.model_dump(mode="json")})
    write_json(outdir / "manifest.json", man)
    from mlffbench.report import render

    (outdir / "scorecard.md").write_text(render([outdir], fmt="md"))
    return doc


def load_model(cfg: RunConfig, spec: str):
    """The model under test from its spec, with the run's LJ cutoff and dtype."""
    from mlffbench.potentials import load_potential

    return load_potential(spec, cutoff=cfg.potential.cutoff_sigma, dtype=cfg.model_dtype,
                          r_onset=cfg.potential.r_onset_sigma)


def summarize(results: dict[str, dict]) -> dict:
    """Counts per state and the mean score of passed, scored benchmarks."""
    counts = {s: sum(1 for r in results.values() if r["state"] == s) for s in (PASSED, FAILED, NOT_RUN)}
    scores = [r["score"] for r in results.values() if r["state"] == PASSED and r.get("score") is not None]
    return {**counts, "scored": len(scores), "score": sum(scores) / len(scores) if scores else None}


__all__ = ["RunConfig", "run_battery", "summarize", "NOT_AVAILABLE"]
