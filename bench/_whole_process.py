"""Whole-process timing shared by neb_speed.py and pdos_speed.py: ours and a peer, each as a fresh
interpreter (imports and compilation included), twice, interleaved; ours' first run with an empty
compilation cache, its second with the cache the first filled (issue 18's "second invocation")."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Callable


def run_worker(argv: list[str], env: dict | None, label: str) -> dict:
    """Run `python argv...`; its last stdout line is a JSON dict, returned with the process's wall
    and CPU seconds added (`process_wall_s`, `process_cpu_s`). A failed worker exits with its stderr."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label} worker failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # children run one at a time: the delta is this one
    out["process_cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return out


def second_invocation(run: Callable[[str, dict], dict], ours: str, peer: str, cache_prefix: str) -> dict:
    """`run(which, env)` twice for `ours` and `peer`, interleaved, in a fresh compile-cache directory.

    Returns wall and CPU times of both invocations, the peer/ours ratios (> 1: we are faster), peak
    RSS and the raw runs (`runs[ours]`, `runs[peer]`)."""
    env = {**os.environ, "MLFFBENCH_CACHE_DIR": tempfile.mkdtemp(prefix=cache_prefix)}
    env.pop("MLFFBENCH_NO_COMPILE_CACHE", None)
    runs: dict[str, list] = {ours: [], peer: []}
    for _ in range(2):
        for which in runs:
            runs[which].append(run(which, env))
    o, p = runs[ours], runs[peer]
    return {"ours_first_s": o[0]["process_wall_s"], "ours_second_s": o[1]["process_wall_s"],
            "peer_first_s": p[0]["process_wall_s"], "peer_second_s": p[1]["process_wall_s"],
            "ratio_second_invocation": p[1]["process_wall_s"] / o[1]["process_wall_s"],
            "ratio_first_invocation": p[0]["process_wall_s"] / o[0]["process_wall_s"],
            "ours_second_cpu_s": o[1]["process_cpu_s"], "peer_second_cpu_s": p[1]["process_cpu_s"],
            "ratio_second_invocation_cpu": p[1]["process_cpu_s"] / o[1]["process_cpu_s"],
            "ours_peak_rss_MB": max(r["peak_rss_MB"] for r in o),
            "peer_peak_rss_MB": max(r["peak_rss_MB"] for r in p), "runs": runs,
            "note": "first ours process: empty compilation cache; second: the cache the first filled"}
