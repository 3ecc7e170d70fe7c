"""Test-suite plumbing for every test file (a plugin: `-p _shared_fixtures` in pyproject.toml's
addopts, found through its `pythonpath`): the order in which pytest-xdist hands out test files.

`make test` runs two xdist workers with `--dist loadfile --no-loadscope-reorder`: each file goes
whole to one worker, in collection order, and a worker takes the next file when it is nearly
idle. By default xdist would sort files by their number of tests, which sends a long single-test
file (test_sharding.py: one subprocess, ~1.5 min of CPU) to the very end, where it runs alone
on one core while the other idles. Here the files known to be long go first (roughly longest
first, the classic LPT rule: the short files fill the gaps at the end); every other file keeps
pytest's order. test_study.py goes first and test_sweep.py after test_sharding.py on the other
worker: the sweep's study test (and test_study_extra.py) run the same tiny study in fresh
processes, which then load the programs test_study.py compiled from the persistent compile cache
(~/.cache/mlffbench/jax) instead of compiling them again. (A worker takes its next file as soon
as it has <= 2 tests pending, so test_sharding.py's worker queues test_sweep.py at once.)

Costs measured on the shared 2-core machine (2026-12-02, issue 18); update the list when a file's
cost changes a lot (`--durations=25` in CI's log).
"""

from __future__ import annotations

# roughly longest first (see above); names are file names under tests/
SLOW_FIRST = (
    "test_study.py",           # the tiny study killed and resumed (warms the cache for the two below)
    "test_sharding.py",        # one subprocess on 2 forced host devices
    "test_sweep.py",           # Dask sweep with a killed worker; a study fanned out as sweep tasks
    "test_cg_end_to_end.py",   # the CG end-to-end fixture
    "test_study_extra.py",     # the tiny study again, then --extra
    "test_generate_recipes.py",  # generate with strain + vacancy recipes, then training on them
    "test_battery_models.py",  # lj/smooth battery + a trained model's battery
    "test_train.py",           # a 60-epoch overfit
)


def pytest_collection_modifyitems(session, config, items) -> None:
    """Stable sort: the SLOW_FIRST files in that order, then every other file as collected."""
    rank = {name: k for k, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
